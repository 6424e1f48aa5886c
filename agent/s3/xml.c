/*
 * The bounded XML reader of S3's answers (see xml.h), on expat.
 */
#include "config.h"

#include <errno.h>
#include <expat.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

#define DEPTH_MAX 16
#define NAME_MAX_ 128

struct reader {
    XML_Parser p;
    int depth;
    char names[DEPTH_MAX][NAME_MAX_];
    char text[S3_XML_TEXT_MAX + 1];
    size_t tlen;
    int r; /* why we stopped: -EPROTO, or the callback's return */
    int (*end)(void *arg, int depth, const char *parent, const char *name,
               const char *text);
    void *arg;
};

static void stop(struct reader *rd, int r)
{
    if (rd->r == 0)
        rd->r = r;
    XML_StopParser(rd->p, XML_FALSE);
}

/* The local name: "s3:Key" and "Key" are one to us. */
static const char *local(const char *name)
{
    const char *colon = strrchr(name, ':');

    return colon ? colon + 1 : name;
}

static void XMLCALL on_start(void *data, const XML_Char *name,
                             const XML_Char **attrs)
{
    struct reader *rd = data;
    const char *n = local(name);

    if (rd->r)
        return; /* stopped: expat may still call a handler or two */
    if (rd->depth >= DEPTH_MAX || strlen(n) >= NAME_MAX_) {
        stop(rd, -EPROTO);
        return;
    }
    strcpy(rd->names[rd->depth++], n);
    rd->tlen = 0; /* a parent's text around its children is not kept */
    rd->text[0] = '\0';
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    struct reader *rd = data;
    int r;

    if (rd->r || rd->depth == 0)
        return; /* stopped, or the end of an element we refused */
    r = rd->end(rd->arg, rd->depth,
                rd->depth > 1 ? rd->names[rd->depth - 2] : "",
                rd->names[rd->depth - 1], rd->text);
    rd->depth--;
    rd->tlen = 0;
    rd->text[0] = '\0';
    if (r)
        stop(rd, r);
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
    struct reader *rd = data;

    if (rd->r)
        return;
    if (rd->tlen + (size_t)len > S3_XML_TEXT_MAX) {
        stop(rd, -EPROTO);
        return;
    }
    memcpy(rd->text + rd->tlen, s, (size_t)len);
    rd->tlen += (size_t)len;
    rd->text[rd->tlen] = '\0';
}

static void XMLCALL on_doctype(void *data, const XML_Char *name,
                               const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    stop(data, -EPROTO); /* S3 never sends one */
}

int s3_xml_read(const char *buf, size_t len,
                int (*end)(void *arg, int depth, const char *parent,
                           const char *name, const char *text),
                void *arg)
{
    struct reader *rd;
    int r = -ENOMEM;

    if (len > (size_t)0x7fffffff)
        return -EPROTO;
    rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return -ENOMEM;
    rd->end = end;
    rd->arg = arg;
    rd->p = XML_ParserCreate(NULL);
    if (rd->p == NULL)
        goto out;
    XML_SetUserData(rd->p, rd);
    XML_SetElementHandler(rd->p, on_start, on_end);
    XML_SetCharacterDataHandler(rd->p, on_text);
    XML_SetStartDoctypeDeclHandler(rd->p, on_doctype);
    if (XML_Parse(rd->p, buf, (int)len, XML_TRUE) != XML_STATUS_OK)
        r = rd->r ? rd->r : -EPROTO;
    else
        r = rd->r;
out:
    if (rd->p)
        XML_ParserFree(rd->p);
    free(rd);
    return r;
}
