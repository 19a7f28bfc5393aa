/* stderr logging with journald-friendly priority prefixes. */
#include "host-daemon/util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum log_level max_level = LOG_LEVEL_INFO;

static const struct {
    enum log_level level;
    const char *name;
} level_names[] = {
    {LOG_LEVEL_ERROR, "error"},
    {LOG_LEVEL_WARNING, "warning"},
    {LOG_LEVEL_INFO, "info"},
    {LOG_LEVEL_DEBUG, "debug"},
};

/* See log.h. */
const char *log_level_name(enum log_level level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (level_names[i].level == level)
            return level_names[i].name;
    return "?";
}

/* See log.h. */
bool log_level_parse(const char *name, enum log_level *ret_level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(level_names[i].name, name) == 0) {
            *ret_level = level_names[i].level;
            return true;
        }
    }
    return false;
}

/* See log.h. */
void log_set_level(enum log_level level)
{
    max_level = level;
}

/* See log.h. */
bool log_enabled(enum log_level level)
{
    return level <= max_level;
}

/* See log.h. */
void log_msg(enum log_level level, const char *fmt, ...)
{
    static int journal = -1;
    char line[1024];
    va_list ap;

    if (!log_enabled(level))
        return;
    /* systemd sets JOURNAL_STREAM when stderr is connected to the journal. */
    if (journal < 0)
        journal = getenv("JOURNAL_STREAM") != NULL;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (journal)
        fprintf(stderr, "<%d>%s\n", (int)level, line);
    else
        fprintf(stderr, "bellowsd: %s: %s\n", log_level_name(level), line);
}
