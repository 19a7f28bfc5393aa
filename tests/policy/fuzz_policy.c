/* libFuzzer: the fuzzer's bytes choose every input to the policy (events, snapshots with
 * any numbers, balloon sizes, host readings, limit changes, pauses, time steps, which moves
 * are committed); drive.h checks the invariants after every decision and aborts on the
 * first one broken. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/policy/drive.h"

struct input {
    const uint8_t *data;
    size_t len;
    size_t pos;
};

/* The next 8 bytes (zero-padded at the end). */
static uint64_t next_bytes(void *ctx)
{
    struct input *in = ctx;
    uint64_t v = 0;
    size_t n = in->len - in->pos < 8 ? in->len - in->pos : 8;
    memcpy(&v, in->data + in->pos, n);
    in->pos += n;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static struct drive dr;
    struct input in = {data, len, 0};
    drive_init(&dr, next_bytes, &in);
    while (in.pos < in.len) {
        if (!drive_step(&dr)) {
            fprintf(stderr, "policy invariant broken: %s\n", dr.msg);
            abort();
        }
    }
    return 0;
}
