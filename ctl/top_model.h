/* What `bellowsctl top` shows, apart from the terminal: the daemon's `list` reply read into
 * rows, sorted the way virt-top's keys ask, and formatted as lines of text (the same
 * lines in the ncurses view and in batch mode). Pure: the clock is an argument. */
#ifndef BELLOWS_TOP_MODEL_H
#define BELLOWS_TOP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct top_guest {
    char name[64];
    unsigned level; /* 0 none .. 3 critical */
    bool paused;
    bool psi_known;
    double psi; /* PSI some avg10, % */
    bool actual_known, target_known, used_known, avail_known;
    uint64_t actual, target, floor, ceiling, used, avail; /* bytes */
    char state[16];  /* managed, paused, no-agent, no-qmp, no-libvirt */
    bool last_known; /* a move was made */
    char action[16];
    char reason[24];
    char result[16];
    int64_t last_ms; /* wall-clock ms of the last move */
};

struct top_frame {
    bool dry_run;
    bool host_known;
    double host_psi;
    uint64_t host_total, host_avail;
    bool host_pressure;
    bool budget_known, held_known;
    uint64_t budget, held; /* the host budget in force; what the guests' balloons hold */
    struct top_guest *guests;
    size_t n;
    size_t levels[4]; /* guests at each level */
};

enum top_sort {
    TOP_SORT_PRESSURE = 0, /* P: level, then PSI, highest first */
    TOP_SORT_MEMORY,       /* M: balloon size, largest first */
    TOP_SORT_TIME,         /* T: last move, most recent first */
    TOP_SORT_NAME,         /* N: name */
    TOP_SORT_COUNT
};

/* "pressure", "memory", "time", "name". */
const char *top_sort_name(enum top_sort s);

/* Read a `list` reply (its JSON text). Returns 0, or -EINVAL with a reason in err (a reply
 * with "ok": false gives its error). */
int top_frame_parse(const char *json_text, struct top_frame *ret, char *err, size_t err_cap);
void top_frame_free(struct top_frame *f);

void top_frame_sort(struct top_frame *f, enum top_sort by);

/* The two summary lines (like virt-top's header): time, guest counts, host. now_ms is
 * wall-clock ms; `time` is printed in local time. */
void top_format_summary(const struct top_frame *f, int64_t now_ms, enum top_sort by, char *line1,
                        char *line2, size_t cap);
/* The column header row and one guest's row, aligned with each other. */
void top_format_columns(char *buf, size_t cap);
void top_format_row(const struct top_guest *g, int64_t now_ms, char *buf, size_t cap);

/* CSV: the header and one row per guest (batch mode --csv). */
void top_format_csv_header(char *buf, size_t cap);
void top_format_csv_row(const struct top_guest *g, int64_t now_ms, char *buf, size_t cap);

#endif
