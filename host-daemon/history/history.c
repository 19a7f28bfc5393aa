/* Per-guest and host history rings and their columnar JSON views. */
#include "host-daemon/history/history.h"

#include <errno.h>
#include <math.h>
#include <string.h>

_Static_assert(sizeof(struct history_sample) == 20, "a guest sample is 20 bytes");
_Static_assert(sizeof(struct history_host_sample) == 24, "a host sample is 24 bytes");

/* See history.h. */
uint32_t history_kib(bool known, uint64_t bytes)
{
    if (!known)
        return HISTORY_UNKNOWN;
    uint64_t kib = bytes / 1024;
    return kib >= HISTORY_UNKNOWN ? HISTORY_UNKNOWN - 1 : (uint32_t)kib;
}

/* See history.h. */
uint16_t history_psi(bool known, double percent)
{
    if (!known || !(percent >= 0))
        return UINT16_MAX;
    if (percent > 100)
        percent = 100;
    return (uint16_t)lround(percent * 100);
}

/* See history.h. */
int history_guest_init(struct history_guest *h, size_t n_samples, size_t n_decisions)
{
    memset(h, 0, sizeof(*h));
    int r = ring_init(&h->samples, sizeof(struct history_sample), n_samples);
    if (r == 0)
        r = ring_init(&h->decisions, sizeof(struct history_decision), n_decisions);
    if (r < 0)
        history_guest_free(h);
    return r;
}

/* See history.h. */
void history_guest_free(struct history_guest *h)
{
    ring_free(&h->samples);
    ring_free(&h->decisions);
}

/* See history.h. */
void history_guest_note_level(struct history_guest *h, unsigned level)
{
    if (level > 3)
        return;
    if (level > h->pending_level)
        h->pending_level = (uint8_t)level;
}

/* See history.h. */
void history_guest_sample(struct history_guest *h, const struct history_sample *s)
{
    struct history_sample copy = *s;
    if (h->pending_level > copy.level)
        copy.level = h->pending_level;
    h->pending_level = 0;
    ring_push(&h->samples, &copy);
}

/* See history.h. */
void history_guest_decision(struct history_guest *h, const struct history_decision *d)
{
    ring_push(&h->decisions, d);
}

/* See history.h. */
void history_guest_decision_result(struct history_guest *h, uint64_t seq, const char *result)
{
    /* Newest first: a result comes soon after its move. */
    for (size_t i = h->decisions.count; i-- > 0;) {
        struct history_decision *d = (struct history_decision *)ring_at(&h->decisions, i);
        if (d->seq == seq) {
            d->result = result;
            return;
        }
    }
}

/* See history.h. */
size_t history_guest_bytes(const struct history_guest *h)
{
    return sizeof(*h) + ring_bytes(&h->samples) + ring_bytes(&h->decisions);
}

static json_t *kib_json(uint32_t kib)
{
    return kib == HISTORY_UNKNOWN ? json_null() : json_integer((json_int_t)kib * 1024);
}

static json_t *psi_json(uint16_t psi)
{
    return psi == UINT16_MAX ? json_null() : json_real(psi / 100.0);
}

/* An object of named empty arrays; NULL when out of memory. */
static json_t *columns(const char *const *names, size_t n, json_t **ret_arrays)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        ret_arrays[i] = json_array();
        if (json_object_set_new(j, names[i], ret_arrays[i]) < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* Append to every array; false when any append failed. */
static bool append_row(json_t **arrays, json_t **values, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arrays[i], values[i]) < 0)
            ok = false;
    return ok;
}

/* See history.h. */
json_t *history_guest_json(const struct history_guest *h, uint32_t since)
{
    static const char *const names[] = {"t", "actual", "target", "used", "psi_some", "level"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    json_t *arrays[N];
    json_t *j = columns(names, N, arrays);
    if (!j)
        return NULL;
    for (size_t i = 0; i < h->samples.count; i++) {
        const struct history_sample *s = ring_at(&h->samples, i);
        if (s->t < since)
            continue;
        json_t *row[N] = {json_integer(s->t),    kib_json(s->actual_kib), kib_json(s->target_kib),
                          kib_json(s->used_kib), psi_json(s->psi_some),   json_integer(s->level)};
        if (!append_row(arrays, row, N))
            goto fail;
    }
    json_t *decisions = json_array();
    if (json_object_set_new(j, "decisions", decisions) < 0)
        goto fail;
    for (size_t i = 0; i < h->decisions.count; i++) {
        const struct history_decision *d = ring_at(&h->decisions, i);
        if (d->t_ms < (int64_t)since * 1000)
            continue;
        json_t *e =
            json_pack("{sIsIsssssssIsI}", "seq", (json_int_t)d->seq, "t", (json_int_t)d->t_ms,
                      "action", d->action, "reason", d->reason, "result", d->result, "from",
                      (json_int_t)d->from_kib * 1024, "to", (json_int_t)d->to_kib * 1024);
        if (json_array_append_new(decisions, e) < 0)
            goto fail;
    }
    return j;
fail:
    json_decref(j);
    return NULL;
}

/* See history.h. */
int history_host_init(struct history_host *h, size_t n_samples)
{
    memset(h, 0, sizeof(*h));
    return ring_init(&h->samples, sizeof(struct history_host_sample), n_samples);
}

/* See history.h. */
void history_host_free(struct history_host *h)
{
    ring_free(&h->samples);
}

/* See history.h. */
void history_host_sample(struct history_host *h, const struct history_host_sample *s)
{
    ring_push(&h->samples, s);
}

/* See history.h. */
size_t history_host_bytes(const struct history_host *h)
{
    return sizeof(*h) + ring_bytes(&h->samples);
}

/* See history.h. */
json_t *history_host_json(const struct history_host *h, uint32_t since)
{
    static const char *const names[] = {"t",    "available", "total",   "budget",
                                        "held", "psi_some",  "pressure"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    json_t *arrays[N];
    json_t *j = columns(names, N, arrays);
    if (!j)
        return NULL;
    for (size_t i = 0; i < h->samples.count; i++) {
        const struct history_host_sample *s = ring_at(&h->samples, i);
        if (s->t < since)
            continue;
        json_t *row[N] = {json_integer(s->t),       kib_json(s->available_kib),
                          kib_json(s->total_kib),   kib_json(s->budget_kib),
                          kib_json(s->held_kib),    psi_json(s->psi_some),
                          json_integer(s->pressure)};
        if (!append_row(arrays, row, N)) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}
