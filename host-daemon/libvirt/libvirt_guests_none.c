/* bellowsd built without libvirt: the [libvirt] backend is refused, the rest works. */
#include "host-daemon/libvirt/libvirt_guests.h"

#include <errno.h>

#include "host-daemon/util/log.h"

/* See daemon_libvirt.h. */
bool daemon_libvirt_available(void)
{
    return false;
}

/* See daemon_libvirt.h. */
int daemon_libvirt_start(struct daemon *d)
{
    (void)d;
    log_error("[libvirt]: this bellowsd was built without libvirt (meson -Dlibvirt=enabled "
              "with libvirt-dev installed)");
    return -ENOTSUP;
}

/* See daemon_libvirt.h. */
void daemon_libvirt_stop(struct daemon *d)
{
    (void)d;
}

/* See daemon_libvirt.h. */
int daemon_libvirt_set_balloon(struct daemon *d, struct guest *g, uint64_t bytes, char *err,
                               size_t err_cap)
{
    (void)d;
    (void)g;
    (void)bytes;
    (void)err;
    (void)err_cap;
    return -ENOTSUP;
}

/* See daemon_libvirt.h. */
int daemon_libvirt_actual(struct daemon *d, const struct guest *g, uint64_t *ret_bytes)
{
    (void)d;
    (void)g;
    (void)ret_bytes;
    return -ENOTSUP;
}

/* See daemon_libvirt.h. */
void daemon_libvirt_rescan_soon(struct daemon *d, const char *event, const char *uuid,
                                const char *domain)
{
    (void)d;
    (void)event;
    (void)uuid;
    (void)domain;
}
