/* The QMP balloon backend: a guest's balloon moved through QEMU's QMP monitor (qmp.h's
 * client), behind the core's balloon interface (core/balloon_backend.h). */
#ifndef BELLOWS_QMP_BALLOON_H
#define BELLOWS_QMP_BALLOON_H

#include "host-daemon/core/balloon_backend.h"

/* Opens the QMP balloon of a guest from its settings (cfg->qmp_path; the reconnect backoff
 * of daemon_cfg). What the daemon is given for the guests of the file and the control
 * socket. */
extern const struct balloon_factory qmp_balloon_factory;

#endif
