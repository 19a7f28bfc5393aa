/* bellowsd's log: one line per event on stderr, with a syslog priority prefix ("<3>") when
 * stderr is the journal so journald keeps the level. Programs log; library code does not. */
#ifndef BELLOWS_LOG_H
#define BELLOWS_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 3,   /* syslog's LOG_ERR */
    LOG_LEVEL_WARNING = 4, /* LOG_WARNING */
    LOG_LEVEL_INFO = 6,    /* LOG_INFO */
    LOG_LEVEL_DEBUG = 7,   /* LOG_DEBUG */
};

/* "error", "warning", "info", "debug"; parse returns false on an unknown name. */
const char *log_level_name(enum log_level level);
bool log_level_parse(const char *name, enum log_level *ret_level);

/* Set the most verbose level printed (default info). */
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* printf-style; a newline is added. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
