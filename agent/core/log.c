/*
 * Logging to stderr or syslog.  Lines are written with one write(2) so
 * that worker threads never interleave within a line.
 *
 * SIGHUP sets the level and reopens syslog while other threads log (the
 * status endpoint's thread lives across reloads): the level and the
 * destination are atomics, and the ident is written only when it
 * changes, which it never does after start-up.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/log.h"

static _Atomic int cur_level = LOG_LVL_INFO;
static _Atomic int use_syslog;
static char log_ident[64] = "sftprelay";

static const char *const level_names[] = {
    [LOG_LVL_ERROR] = "error",
    [LOG_LVL_WARN] = "warn",
    [LOG_LVL_INFO] = "info",
    [LOG_LVL_DEBUG] = "debug",
};

static const int syslog_prio[] = {
    [LOG_LVL_ERROR] = LOG_ERR,
    [LOG_LVL_WARN] = LOG_WARNING,
    [LOG_LVL_INFO] = LOG_INFO,
    [LOG_LVL_DEBUG] = LOG_DEBUG,
};

void log_init(const char *ident, int to_syslog)
{
    if (strcmp(log_ident, ident) != 0)
        snprintf(log_ident, sizeof(log_ident), "%s", ident);
    if (use_syslog)
        closelog();
    use_syslog = to_syslog;
    if (use_syslog)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
    cur_level = level;
}

enum log_level log_get_level(void)
{
    return (enum log_level)cur_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
    char msg[2048], line[2300], stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, saved = errno, lvl = cur_level;

    if ((int)level > lvl)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (use_syslog) {
        if (lvl >= LOG_LVL_DEBUG)
            syslog(syslog_prio[level], "%s: %s", func, msg);
        else
            syslog(syslog_prio[level], "%s", msg);
        errno = saved;
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    if (lvl >= LOG_LVL_DEBUG)
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: %s: %s\n", stamp,
                     ts.tv_nsec / 1000000, log_ident, (int)getpid(),
                     level_names[level], func, msg);
    else
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: %s\n", stamp,
                     ts.tv_nsec / 1000000, log_ident, (int)getpid(),
                     level_names[level], msg);
    if (n > (int)sizeof(line))
        n = sizeof(line);
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}
