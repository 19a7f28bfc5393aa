/* Sizes as bellowsctl prints them: see size_text.h. */
#include "ctl/size_text.h"

#include <stdio.h>

/* See size_text.h. */
const char *ctl_size_text(bool known, uint64_t bytes, char *buf, size_t cap)
{
    if (!known)
        return "-";
    double mib = (double)bytes / (1024.0 * 1024.0);
    if (mib >= 1024)
        snprintf(buf, cap, "%.2fG", mib / 1024);
    else
        snprintf(buf, cap, "%.0fM", mib);
    return buf;
}

/* See size_text.h. */
const char *ctl_hold_text(bool held_known, uint64_t held, bool budget_known, uint64_t budget,
                          char *buf, size_t cap)
{
    char h[24], b[24];
    if (!held_known)
        snprintf(buf, cap, "%s", "");
    else if (budget_known)
        snprintf(buf, cap, "held %s of budget %s", ctl_size_text(true, held, h, sizeof(h)),
                 ctl_size_text(true, budget, b, sizeof(b)));
    else
        snprintf(buf, cap, "held %s, no budget", ctl_size_text(true, held, h, sizeof(h)));
    return buf;
}
