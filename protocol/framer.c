/* Stream framer: RS ... LF frames out of a byte stream that may start mid-frame, carry
 * junk, split frames anywhere or hold several per read. Fixed memory, never fails. */
#include "protocol/bellows_protocol.h"

#include <string.h>

void bp_framer_init(struct bp_framer *framer)
{
    memset(framer, 0, sizeof(*framer));
}

/* Drop the frame in progress, if any; an RS with nothing after it yet is not counted. */
static void abandon(struct bp_framer *f)
{
    if (f->in_frame && !f->overflow && f->len > 0)
        f->stats.truncated++;
    f->in_frame = false;
    f->overflow = false;
    f->len = 0;
}

void bp_framer_reset(struct bp_framer *framer)
{
    abandon(framer);
    framer->in_junk = false;
}

static void junk(struct bp_framer *f)
{
    f->stats.junk_bytes++;
    if (!f->in_junk) {
        f->in_junk = true;
        f->stats.resyncs++;
    }
}

void bp_framer_feed(struct bp_framer *framer, const char *data, size_t len, bp_frame_cb on_frame,
                    void *opaque)
{
    struct bp_framer *f = framer;

    for (size_t i = 0; i < len; i++) {
        char c = data[i];

        if (c == BP_RS) {
            /* A new RS always starts a new frame, so a reconnecting agent's hello is never
             * lost behind the remains of a frame cut by the hang-up. */
            abandon(f);
            f->in_frame = true;
            f->in_junk = false;
        } else if (!f->in_frame) {
            junk(f);
        } else if (c == BP_LF) {
            if (!f->overflow) {
                f->stats.frames++;
                on_frame(f->buf, f->len, opaque);
            }
            f->in_frame = false;
            f->overflow = false;
            f->len = 0;
        } else if (f->overflow) {
            /* the rest of an oversized frame: already counted, dropped up to its LF */
        } else if (f->len < BP_MAX_PAYLOAD) {
            f->buf[f->len++] = c;
        } else {
            f->overflow = true;
            f->len = 0;
            f->stats.oversized++;
        }
    }
}
