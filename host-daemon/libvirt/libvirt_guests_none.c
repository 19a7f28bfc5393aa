/* bellowsd built without libvirt: the [libvirt] module is refused, the rest works. */
#include "host-daemon/libvirt/libvirt_guests.h"

#include <errno.h>

#include "host-daemon/util/log.h"

/* See libvirt_guests.h. */
bool libvirt_guests_available(void)
{
    return false;
}

/* See libvirt_guests.h. */
int libvirt_guests_attach(struct daemon *d)
{
    (void)d;
    log_error("[libvirt]: this bellowsd was built without libvirt (meson -Dlibvirt=enabled "
              "with libvirt-dev installed)");
    return -ENOTSUP;
}
