/*
 * Figures for people (human.h).  A size is shown with one decimal in the
 * largest binary unit it reaches once rounded, so 1023.96 KiB is
 * "1.0 MiB", never "1024.0 KiB"; a duration with its two largest units.
 */
#include "config.h"

#include <stdio.h>

#include "sftprelay/human.h"

char *human_bytes(int64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB",
                                        "TiB", "PiB", "EiB"};
    double v = (double)n;
    size_t u = 0;

    if (n < 1024) {
        snprintf(buf, len, "%lld B", (long long)n);
        return buf;
    }
    v /= 1024;
    /* the next unit once the one decimal shown would read 1024.0 */
    while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

char *human_rate(int64_t bytes_per_s, char *buf, size_t len)
{
    char b[HUMAN_MAX];

    snprintf(buf, len, "%s/s", human_bytes(bytes_per_s, b, sizeof(b)));
    return buf;
}

char *human_duration(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "?");
    else if (s < 60)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", (long long)(s / 60),
                 (long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600),
                 (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%lldd%02lldh", (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
    return buf;
}
