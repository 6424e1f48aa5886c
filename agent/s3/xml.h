/*
 * A small reader of S3's XML answers, on expat (agent/s3/xml.c).  Private
 * to agent/s3/.
 *
 * S3 answers are shallow records ("ListBucketResult/Contents/Key"), so
 * the reader hands each element's end to a callback with its parent's
 * name and the text directly inside it.  The answer comes from the
 * network: depth, name and text lengths are bounded and a DOCTYPE (the
 * door to entity tricks) is refused, so a hostile server gets -EPROTO,
 * never a crash or a memory blow-up.
 */
#ifndef SFTPRELAY_S3_XML_H
#define SFTPRELAY_S3_XML_H

#include <stddef.h>

#define S3_XML_TEXT_MAX 8192 /* an element's text: keys are 1024 bytes */

/*
 * Read len bytes of XML at buf.  end is called at the end of each
 * element with depth (1: the root), its parent's local name ("" for the
 * root), its own and the text directly inside it (NUL-ended).  A non-zero
 * return of end stops the reading and is returned.  Returns 0, or
 * -EPROTO for an answer that is not a bounded, well-formed document, or
 * -ENOMEM.
 */
int s3_xml_read(const char *buf, size_t len,
                int (*end)(void *arg, int depth, const char *parent,
                           const char *name, const char *text),
                void *arg);

#endif
