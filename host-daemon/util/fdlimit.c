/* RLIMIT_NOFILE: what the guests need, and raising the soft limit to the hard one. */
#include "host-daemon/util/fdlimit.h"

#include <sys/resource.h>

/* See fdlimit.h. */
uint64_t fdlimit_needed(uint64_t guest_fds)
{
    return guest_fds + FDLIMIT_RESERVE;
}

/* See fdlimit.h. */
uint64_t fdlimit_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}
