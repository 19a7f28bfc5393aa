/* Shared between the encoder and the decoder: capability names and field checks, so both
 * ends enforce the same limits. Not part of the public contract. */
#ifndef BELLOWS_PROTOCOL_INTERNAL_H
#define BELLOWS_PROTOCOL_INTERNAL_H

#include "protocol/bellows_protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capability names on the wire, indexed by bit number of BP_CAP_*. */
#define BP_CAP_COUNT 2
extern const char *const bp__cap_names[BP_CAP_COUNT];

/* Levels a welcome may ask for, and that a pressure frame may carry. */
#define BP_PRESSURE_LEVELS                                                                         \
    ((1u << BP_LEVEL_LOW) | (1u << BP_LEVEL_MEDIUM) | (1u << BP_LEVEL_CRITICAL))

/* 1..max bytes, each printable ASCII (0x20..0x7e). */
bool bp__valid_text(const char *s, size_t len, size_t max);
/* A PSI average: finite, 0..100. */
bool bp__valid_avg(double avg);
/* Checks every field of a message against its range; returns the failing field's name,
 * or NULL when the message is valid. */
const char *bp__invalid_field(const struct bp_msg *msg);

#endif
