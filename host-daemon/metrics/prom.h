/* The Prometheus text exposition format (version 0.0.4), written into a growing buffer.
 *
 * Pure: no I/O, no clock. One family is a HELP line, a TYPE line and its samples, all
 * together; label values are escaped (\\, \", \n), HELP text too (\\, \n); values are
 * integers printed exactly, or doubles printed in the shortest form that reads back the
 * same, NaN and +Inf/-Inf as the format spells them. An allocation failure is sticky:
 * every later call does nothing and prom_buf_take() returns NULL. */
#ifndef BELLOWS_PROM_H
#define BELLOWS_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Content-Type of a scrape's reply. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum prom_type {
    PROM_GAUGE,
    PROM_COUNTER,
};

struct prom_label {
    const char *name;
    const char *value;
};

struct prom_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the text is incomplete */
};

void prom_buf_init(struct prom_buf *b);
void prom_buf_free(struct prom_buf *b);

/* The text written so far (NUL-terminated), handed over to the caller with its length;
 * NULL when an allocation failed. The buffer is empty afterwards. */
char *prom_buf_take(struct prom_buf *b, size_t *ret_len);

/* Whether name is a valid metric name ([a-zA-Z_][a-zA-Z0-9_]*; colons are reserved for
 * recording rules) or label name (the same, not starting with "__"). */
bool prom_metric_name_valid(const char *name);
bool prom_label_name_valid(const char *name);

/* Start a family: its HELP and TYPE lines. */
void prom_family(struct prom_buf *b, const char *name, enum prom_type type, const char *help);

/* One sample of the family last started: name{labels...} value. labels may be NULL when
 * n_labels is 0. */
void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels,
                 size_t n_labels, double value);
/* The same with an integer value, printed exactly (a double loses digits past 2^53). */
void prom_sample_u64(struct prom_buf *b, const char *name, const struct prom_label *labels,
                     size_t n_labels, uint64_t value);

/* Append formatted text as it is (for tests and one-off lines). */
void prom_printf(struct prom_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
