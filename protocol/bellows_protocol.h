/* bellows wire protocol v1: message structs, encoder, decoder and stream framer.
 *
 * Pure code: buffers in, structs out and back. No I/O, no clocks, no event loop,
 * no logging. Shared by bellows-agent (guest) and bellowsd (host).
 * The format is specified in docs/protocol.md: each frame is an RFC 7464 JSON text
 * sequence record, 0x1E (RS), one JSON object, 0x0A (LF), at most BP_MAX_FRAME bytes.
 */
#ifndef BELLOWS_PROTOCOL_H
#define BELLOWS_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BP_PROTOCOL_VERSION 1

/* Hard maximum of one frame on the wire, RS and LF included. */
#define BP_MAX_FRAME 4096
/* Longest payload (the JSON text between RS and LF). */
#define BP_MAX_PAYLOAD (BP_MAX_FRAME - 2)

/* Frame delimiters (RFC 7464). */
#define BP_RS '\x1e'
#define BP_LF '\n'

/* Longest agent version and boot id strings, without their NUL. */
#define BP_MAX_AGENT_LEN 63
#define BP_MAX_BOOT_ID_LEN 63

/* Largest integer accepted in any field: 2^53, the range a JSON double holds exactly. */
#define BP_MAX_INT (UINT64_C(1) << 53)
/* mono_ns is the one exception: 2^53 ns is only 104 days of guest uptime, so it may go up
 * to 2^63 - 1 (jansson holds integers as int64_t exactly). */
#define BP_MAX_MONO_NS ((uint64_t)INT64_MAX)

/* welcome.report_interval_ms: 0 (keep the agent's own) or within these bounds. */
#define BP_MIN_REPORT_INTERVAL_MS 1000
#define BP_MAX_REPORT_INTERVAL_MS 3600000

enum bp_level {
    BP_LEVEL_NONE = 0, /* only in reports: no pressure right now */
    BP_LEVEL_LOW = 1,
    BP_LEVEL_MEDIUM = 2,
    BP_LEVEL_CRITICAL = 3,
};

/* Pressure sources; also used as bit flags (1 << source) in hello.sources. */
enum bp_source {
    BP_SOURCE_VMPRESSURE = 0,
    BP_SOURCE_PSI = 1,
};
#define BP_SOURCE_COUNT 2

/* Agent capabilities, bit flags in hello.caps. Unknown capability names are ignored. */
#define BP_CAP_REPORT (1u << 0)   /* sends periodic reports */
#define BP_CAP_SETTINGS (1u << 1) /* applies settings from the host's welcome */

enum bp_msg_type {
    BP_MSG_HELLO = 1,    /* guest -> host, first message after each (re)connect */
    BP_MSG_WELCOME = 2,  /* host -> guest, reply to hello, may carry settings */
    BP_MSG_PRESSURE = 3, /* guest -> host, a kernel pressure notification */
    BP_MSG_REPORT = 4,   /* guest -> host, periodic heartbeat with a snapshot */
};

/* The guest's memory at one moment. Sizes in KiB as in /proc/meminfo, counters as in
 * /proc/vmstat (since boot), PSI averages in percent (0..100), PSI totals in us. */
struct bp_mem {
    uint64_t mem_total_kb;
    uint64_t mem_free_kb;
    uint64_t mem_available_kb;
    uint64_t committed_as_kb;
    uint64_t swap_total_kb;
    uint64_t swap_free_kb;
    uint64_t pswpin;
    uint64_t pswpout;
    uint64_t pgmajfault;
    double psi_some_avg10;
    double psi_full_avg10;
    uint64_t psi_some_total_us;
    uint64_t psi_full_total_us;
};

struct bp_hello {
    uint32_t protocol_version;
    char agent[BP_MAX_AGENT_LEN + 1];     /* e.g. "bellows-agent 0.1.0" */
    char boot_id[BP_MAX_BOOT_ID_LEN + 1]; /* identifies one boot/instance of the agent */
    uint32_t sources;                     /* bit (1 << enum bp_source) per running source */
    uint32_t caps;                        /* BP_CAP_* */
};

struct bp_welcome {
    uint32_t protocol_version;
    uint32_t report_interval_ms; /* 0: keep the agent's own; else 1000..3600000 */
    uint32_t levels;             /* bit (1 << enum bp_level) per level wanted; 0: all */
};

struct bp_pressure {
    uint64_t seq;        /* per boot_id, increases by one for every pressure or report */
    uint64_t mono_ns;    /* guest CLOCK_MONOTONIC when the kernel notified */
    enum bp_level level; /* LOW, MEDIUM or CRITICAL */
    enum bp_source source;
    struct bp_mem mem;
};

struct bp_report {
    uint64_t seq;
    uint64_t mono_ns;
    enum bp_level level; /* the agent's current level, NONE if quiet */
    struct bp_mem mem;
};

struct bp_msg {
    enum bp_msg_type type;
    union {
        struct bp_hello hello;
        struct bp_welcome welcome;
        struct bp_pressure pressure;
        struct bp_report report;
    } u;
};

/* Why a frame was rejected. Every rejection is counted by the caller and never fatal. */
enum bp_error {
    BP_OK = 0,
    BP_ERR_JSON,         /* not one JSON object (syntax, NaN/inf, NUL, trailing data) */
    BP_ERR_VERSION,      /* "v" missing or not 1 */
    BP_ERR_TYPE,         /* "type" missing or not a string */
    BP_ERR_UNKNOWN_TYPE, /* a type this version does not know: ignore, not an attack */
    BP_ERR_FIELD,        /* a required field missing or of the wrong JSON type */
    BP_ERR_RANGE,        /* a number or string out of its allowed range; payload too long */
    BP_ERR_NOMEM,        /* allocation failed (jansson reports most as BP_ERR_JSON) */
    BP_ERR_SPACE,        /* encode: output buffer too small */
};

/* Short stable name of an error, e.g. "range". Never NULL. */
const char *bp_error_name(enum bp_error err);

/* "none", "low", "medium", "critical"; NULL for an invalid value. */
const char *bp_level_name(enum bp_level level);
/* Parse a level name; returns false when unknown. */
bool bp_level_parse(const char *name, enum bp_level *ret_level);
/* "vmpressure", "psi"; NULL for an invalid value. */
const char *bp_source_name(enum bp_source source);
bool bp_source_parse(const char *name, enum bp_source *ret_source);
/* "hello", "welcome", "pressure", "report"; NULL for an invalid value. */
const char *bp_msg_type_name(enum bp_msg_type type);
bool bp_msg_type_parse(const char *name, enum bp_msg_type *ret_type);
/* Parse a name written by bp_error_name(); returns false when unknown. */
bool bp_error_parse(const char *name, enum bp_error *ret_err);

/* Encode one message as a complete frame (RS, JSON, LF) into buf.
 * Returns BP_OK and sets *ret_len, or BP_ERR_SPACE / BP_ERR_NOMEM / BP_ERR_RANGE
 * (the message itself violates a limit); buf contents are unspecified on error. */
enum bp_error bp_encode(const struct bp_msg *msg, char *buf, size_t cap, size_t *ret_len);

/* Decode one frame's payload (the JSON between RS and LF, without them), at most
 * BP_MAX_PAYLOAD bytes. Unknown fields and unknown names in lists are ignored.
 * On success fills *ret_msg; on failure leaves it untouched, returns the error and,
 * when detail is not NULL, writes a short human-readable reason (NUL-terminated). */
enum bp_error bp_decode(const char *payload, size_t len, struct bp_msg *ret_msg, char *detail,
                        size_t detail_cap);

/* Stream framer: reassembles frames from a byte stream that may start mid-frame,
 * carry junk, split frames anywhere or hold several per read. Fixed memory. */
struct bp_framer_stats {
    uint64_t frames;     /* complete payloads delivered */
    uint64_t junk_bytes; /* bytes outside any frame, discarded */
    uint64_t oversized;  /* frames longer than BP_MAX_FRAME, discarded */
    uint64_t truncated;  /* frames cut short by a new RS or a reset, discarded */
    uint64_t resyncs;    /* runs of junk: times the framer lost its place */
};

struct bp_framer {
    size_t len;    /* bytes of the current frame payload held in buf */
    bool in_frame; /* an RS was seen and its LF not yet */
    bool overflow; /* the current frame passed the limit: drop until LF or RS */
    bool in_junk;  /* the last byte was discarded outside any frame */
    struct bp_framer_stats stats;
    char buf[BP_MAX_FRAME];
};

/* Called once per complete frame with its payload (no RS, no LF, possibly empty). The
 * payload is valid only during the call; the callback must not feed the same framer. */
typedef void (*bp_frame_cb)(const char *payload, size_t len, void *opaque);

void bp_framer_init(struct bp_framer *framer);
/* Feed bytes; calls on_frame for each frame completed by them, in order. */
void bp_framer_feed(struct bp_framer *framer, const char *data, size_t len, bp_frame_cb on_frame,
                    void *opaque);
/* Forget any partial frame (e.g. after a reconnect); statistics are kept. */
void bp_framer_reset(struct bp_framer *framer);

#endif
