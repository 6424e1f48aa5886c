/*
 * Logging: one line per event to stderr (foreground) or syslog (daemon).
 *
 * The macros record the calling function; it is printed at debug level,
 * where it helps, and kept out of the way otherwise.  Nothing secret
 * (passwords, key passphrases) is ever passed to these functions: callers
 * log the name of a secret's file, never its content.
 */
#ifndef SFTPRELAY_LOG_H
#define SFTPRELAY_LOG_H

enum log_level {
    LOG_LVL_ERROR,
    LOG_LVL_WARN,
    LOG_LVL_INFO,
    LOG_LVL_DEBUG,
};

/*
 * Start logging as ident.  to_syslog selects syslog(3) instead of stderr.
 * May be called again (SIGHUP) to reopen.
 */
void log_init(const char *ident, int to_syslog);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "error", "warn", "info" or "debug".  Returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __func__, __VA_ARGS__)

#endif
