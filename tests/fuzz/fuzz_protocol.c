/* libFuzzer target for the protocol's untrusted side: the framer and the decoder.
 * Besides "no crash, no leak, no undefined behaviour" it checks three properties:
 *   - the framer gives the same frames and statistics however the input is cut;
 *   - whatever decodes re-encodes (the decoder accepts nothing the encoder refuses);
 *   - decode(encode(m)) encodes to the same bytes again (a canonical, stable form). */
#include "protocol/bellows_protocol.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct seen {
    uint64_t frames;
    uint64_t decoded;
    uint64_t hash; /* of every payload, in order */
};

static void check_round_trip(const struct bp_msg *msg)
{
    char first[BP_MAX_FRAME], second[BP_MAX_FRAME];
    size_t first_len = 0, second_len = 0;
    CHECK(bp_encode(msg, first, sizeof(first), &first_len) == BP_OK);
    CHECK(first_len <= BP_MAX_FRAME && first[0] == BP_RS && first[first_len - 1] == BP_LF);

    struct bp_msg again;
    char detail[128];
    enum bp_error err = bp_decode(first + 1, first_len - 2, &again, detail, sizeof(detail));
    if (err != BP_OK) {
        fprintf(stderr, "own encoding refused: %s (%s): %.*s\n", bp_error_name(err), detail,
                (int)first_len - 2, first + 1);
        abort();
    }
    CHECK(again.type == msg->type);
    CHECK(bp_encode(&again, second, sizeof(second), &second_len) == BP_OK);
    CHECK(first_len == second_len && memcmp(first, second, first_len) == 0);
}

static void on_frame(const char *payload, size_t len, void *opaque)
{
    struct seen *seen = opaque;
    CHECK(len <= BP_MAX_PAYLOAD);
    seen->frames++;
    for (size_t i = 0; i < len; i++)
        seen->hash = (seen->hash ^ (unsigned char)payload[i]) * 1099511628211ull;
    seen->hash = (seen->hash ^ 0x100) * 1099511628211ull; /* frame boundary */

    struct bp_msg msg;
    memset(&msg, 0, sizeof(msg));
    char detail[128];
    enum bp_error err = bp_decode(payload, len, &msg, detail, sizeof(detail));
    CHECK(err == BP_OK || bp_error_name(err)[0] != '\0');
    CHECK(memchr(detail, '\0', sizeof(detail)) != NULL);
    if (err == BP_OK) {
        seen->decoded++;
        check_round_trip(&msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *bytes = (const char *)data;

    /* The whole input as one read. */
    static struct bp_framer whole, cut;
    struct seen seen_whole = {0, 0, 14695981039346656037ull};
    bp_framer_init(&whole);
    bp_framer_feed(&whole, bytes, size, on_frame, &seen_whole);

    /* The same input in pieces whose sizes come from the input itself. */
    struct seen seen_cut = {0, 0, 14695981039346656037ull};
    bp_framer_init(&cut);
    size_t step = size ? 1 + data[size - 1] % 31 : 1;
    for (size_t off = 0; off < size;) {
        size_t n = step < size - off ? step : size - off;
        bp_framer_feed(&cut, bytes + off, n, on_frame, &seen_cut);
        off += n;
        step = 1 + (step * 7 + n) % 97;
    }
    CHECK(seen_cut.frames == seen_whole.frames && seen_cut.hash == seen_whole.hash);
    CHECK(seen_cut.decoded == seen_whole.decoded);
    CHECK(memcmp(&cut.stats, &whole.stats, sizeof(whole.stats)) == 0);
    CHECK(whole.stats.frames == seen_whole.frames);

    /* The whole input straight into the decoder, as a caller without the framer would. */
    struct seen direct = {0, 0, 0};
    on_frame(bytes, size <= BP_MAX_PAYLOAD ? size : BP_MAX_PAYLOAD, &direct);
    return 0;
}
