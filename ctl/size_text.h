/* The words bellowsctl prints for sizes, shared by `list` and `top`: "512M", "1.50G", and
 * the host line's "held X of budget Y". Pure. */
#ifndef BELLOWS_CTL_SIZE_TEXT_H
#define BELLOWS_CTL_SIZE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* bytes as "512M" (whole MiB) or "1.50G" (from 1 GiB on); "-" when !known. Returns buf,
 * or the literal "-". */
const char *ctl_size_text(bool known, uint64_t bytes, char *buf, size_t cap);

/* What the guests hold against the host budget: "held X of budget Y", or "held X, no
 * budget" while none is in force (off, or not computed yet); "" when held is not known.
 * Returns buf. */
const char *ctl_hold_text(bool held_known, uint64_t held, bool budget_known, uint64_t budget,
                          char *buf, size_t cap);

#endif
