/*
 * Escaping for terminals and JSON.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sftprelay/text.h"

/*
 * Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the bytes
 * there are not one; *cp gets the code point.
 */
static int utf8_seq(const unsigned char *s, uint32_t *cp)
{
    int n, i;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond Unicode */
    if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) ||
        (n == 4 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        return 0;
    *cp = c;
    return n;
}

void text_print_safe(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    int n;

    while (*s) {
        n = utf8_seq(s, &cp);
        if (n == 0) {
            fprintf(f, "\\x%02x", *s++);
            continue;
        }
        if (cp == '\\')
            fputs("\\\\", f);
        else if (cp == '\n')
            fputs("\\n", f);
        else if (cp == '\t')
            fputs("\\t", f);
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            fprintf(f, cp < 0x80 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
        else
            fwrite(s, 1, (size_t)n, f);
        s += n;
    }
}

/*
 * Write s as a JSON string literal (NULL: null), each byte that is not part
 * of valid UTF-8 as U+FFFD.  With escaped, those bytes are "\xHH" instead
 * and a backslash is "\\" (both then escaped for JSON: "\\xHH", "\\\\").
 */
static void json_string(FILE *f, const char *str, int escaped)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    int n;

    if (str == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    while (*s) {
        n = utf8_seq(s, &cp);
        if (n == 0) {
            if (escaped)
                fprintf(f, "\\\\x%02x", *s);
            else
                fputs("\xef\xbf\xbd", f); /* U+FFFD */
            s++;
            continue;
        }
        if (cp == '\\' && escaped)
            fputs("\\\\\\\\", f);
        else if (cp == '"' || cp == '\\')
            fprintf(f, "\\%c", (char)cp);
        else if (cp == '\n')
            fputs("\\n", f);
        else if (cp == '\r')
            fputs("\\r", f);
        else if (cp == '\t')
            fputs("\\t", f);
        else if (cp < 0x20 || cp == 0x7f)
            fprintf(f, "\\u%04x", (unsigned)cp);
        else
            fwrite(s, 1, (size_t)n, f);
        s += n;
    }
    fputc('"', f);
}

int text_utf8_len(const char *s)
{
    uint32_t cp;

    return utf8_seq((const unsigned char *)s, &cp);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int text_unpercent(const char *s, size_t n, int plus, char *out, size_t *len)
{
    size_t i, o = 0;
    int hi, lo;

    for (i = 0; i < n; i++) {
        if (plus && s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] != '%') {
            out[o++] = s[i];
        } else {
            if (i + 2 >= n)
                return -EINVAL; /* "%" or "%X" at the end */
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        }
    }
    out[o] = '\0';
    *len = o;
    return 0;
}

int text_is_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    int n;

    while (*s) {
        n = utf8_seq(s, &cp);
        if (n == 0)
            return 0;
        s += n;
    }
    return 1;
}

void text_print_json(FILE *f, const char *str)
{
    json_string(f, str, 0);
}

void text_print_json_bytes(FILE *f, const char *str)
{
    json_string(f, str, 1);
}

void text_print_json_name(FILE *f, const char *key, const char *name)
{
    fprintf(f, "\"%s\": ", key);
    text_print_json(f, name);
    if (name != NULL && !text_is_utf8(name)) {
        fprintf(f, ", \"%s_bytes\": ", key);
        text_print_json_bytes(f, name);
    }
}
