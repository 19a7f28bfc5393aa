/* bellows-agent: pressure sources, snapshot, coalescing and the port on one libuv loop. */
#ifndef BELLOWS_AGENT_H
#define BELLOWS_AGENT_H

#include "guest-agent/coalesce.h"
#include "guest-agent/options.h"
#include "guest-agent/psi_trigger.h"
#include "guest-agent/snapshot.h"
#include "guest-agent/vmpressure.h"
#include "protocol/bellows_protocol.h"
#include "virtio/guest_port.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct agent {
    struct agent_options opts;
    uv_loop_t *loop;
    struct coalescer co;
    struct snapshot_reader snap;

    bool has_port, has_vmpressure, has_psi;
    struct guest_port port;
    struct vmpressure_source vmpressure;
    struct psi_source psi;

    uv_timer_t tick;  /* next coalescer deadline */
    uv_check_t batch; /* folds the notifications of one loop iteration */
    uv_signal_t sigterm, sigint;

    /* Notifications seen in this loop iteration, one slot per source. */
    struct {
        bool pending;
        enum bp_level level;
        uint64_t now_ns;
    } note[BP_SOURCE_COUNT];

    struct bp_framer framer;
    uint64_t seq;
    bool need_hello;
    int last_logged_err; /* the port error last logged, to log each change once */
    char boot_id[BP_MAX_BOOT_ID_LEN + 1];
    uint64_t bad_frames;
    bool stopping;
};

/* Start everything the options ask for on loop. Returns 0, or -1 after logging why. */
int agent_start(struct agent *a, uv_loop_t *loop, const struct agent_options *opts);

/* Close every handle; uv_run then returns. */
void agent_stop(struct agent *a);

#endif
