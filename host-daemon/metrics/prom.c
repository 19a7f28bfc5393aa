/* Prometheus text format writer: families, samples, escaping, number formatting. */
#include "host-daemon/metrics/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* See prom.h. */
void prom_buf_init(struct prom_buf *b)
{
    memset(b, 0, sizeof(*b));
}

/* See prom.h. */
void prom_buf_free(struct prom_buf *b)
{
    free(b->data);
    prom_buf_init(b);
}

/* See prom.h. */
char *prom_buf_take(struct prom_buf *b, size_t *ret_len)
{
    char *text = NULL;
    if (!b->failed) {
        if (!b->data)
            b->data = calloc(1, 1);
        text = b->data;
        *ret_len = b->len;
        b->data = NULL;
    }
    prom_buf_free(b);
    return text;
}

/* Room for n more bytes and a NUL. */
static bool reserve(struct prom_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* See prom.h. */
void prom_printf(struct prom_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Text with the given characters escaped: backslash and newline always, the double
 * quote in label values only. */
static void put_escaped(struct prom_buf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (*s == '"' && quote)
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

static bool name_valid(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        bool digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != name))
            return false;
    }
    return true;
}

/* See prom.h. */
bool prom_metric_name_valid(const char *name)
{
    return name_valid(name);
}

/* See prom.h. */
bool prom_label_name_valid(const char *name)
{
    return name_valid(name) && strncmp(name, "__", 2) != 0;
}

/* See prom.h. */
void prom_family(struct prom_buf *b, const char *name, enum prom_type type, const char *help)
{
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    put_escaped(b, help, false);
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    puts_(b, type == PROM_COUNTER ? " counter\n" : " gauge\n");
}

static void put_series(struct prom_buf *b, const char *name, const struct prom_label *labels,
                       size_t n_labels)
{
    puts_(b, name);
    if (n_labels == 0)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < n_labels; i++) {
        if (i > 0)
            puts_(b, ",");
        puts_(b, labels[i].name);
        puts_(b, "=\"");
        put_escaped(b, labels[i].value ? labels[i].value : "", true);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

/* The shortest of %.15g and %.17g that reads back as the same double. */
static void format_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, cap, "%.17g", v);
}

/* See prom.h. */
void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels,
                 size_t n_labels, double value)
{
    char num[40];
    format_double(num, sizeof(num), value);
    put_series(b, name, labels, n_labels);
    puts_(b, " ");
    puts_(b, num);
    puts_(b, "\n");
}

/* See prom.h. */
void prom_sample_u64(struct prom_buf *b, const char *name, const struct prom_label *labels,
                     size_t n_labels, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, value);
    put_series(b, name, labels, n_labels);
    puts_(b, " ");
    puts_(b, num);
    puts_(b, "\n");
}
