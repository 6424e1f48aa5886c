#!/usr/bin/env python3
"""s3_faults.py: an HTTP proxy in front of an S3 server that injects faults.

    s3_faults.py --to PORT [--listen PORT] [--control FILE]
                 [--fail-first N] [--fail-every N]
                 [--drop-after BYTES] [--drop-times N] [--delay-ms MS]
                 [--no-such-upload 0|1] [--internal-error 0|1]
                 [--etag-other 0|1] [--sse-kms 0|1]

Listens on 127.0.0.1 (PORT 0, the default: any free port), prints the port
on stdout once it accepts connections, and forwards every connection to
127.0.0.1:TO byte for byte: the request line and the headers as the client
sent them (Host included, so SigV4 signatures stay valid), then the body;
the answers come back untouched.  Clients send one request at a time on a
connection (no pipelining), which is what lets it answer in the server's
place.  Faults, counted over all connections, requests numbered from 1:

  fail_first N    answer the first N requests 503 SlowDown (an S3 XML error)
  fail_every N    answer every Nth request 503 SlowDown
  no_such_upload 1  answer those two 404 NoSuchUpload instead (AWS's word
                  for an upload gone: aborted, or expired by a lifecycle
                  rule)
  internal_error 1  answer them 500 InternalError instead (a server's
                  failure: S3 says retry)
  drop_after B    pass on B bytes of a request's body, then close both
                  connections (a part upload cut midway); only requests
                  with a body longer than B; drop_times of them (1)
  drop_times N    how many requests drop_after cuts
  delay_ms MS     wait MS before passing on each request
  etag_other 1    answer PUTs (PutObject, UploadPart) with an ETag that is
                  not the MD5 of their body (the server's answer is
                  otherwise passed on: the bytes are stored)
  sse_kms 1       the same, with x-amz-server-side-encryption: aws:kms, as
                  AWS answers for an object encrypted with SSE-KMS

After a fault the connection is closed (as a server does when it does not
read the body it refused).  The options set the faults at start; with
--control FILE, the faults are read again from FILE (lines "NAME VALUE",
as above) before each request, and a change of its text starts the
counting again.  Each request is logged on stderr: "N METHOD PATH: what",
with " (bytes=A-B)" after PATH when it has a Range header.
Python stdlib only; it runs until killed.
"""

import argparse
import socket
import socketserver
import sys
import threading
import time

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown'
            b'</Code><Message>Please reduce your request rate.</Message>'
            b'<RequestId>s3-faults</RequestId></Error>\n')
NOSUCHUPLOAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                b'NoSuchUpload</Code><Message>The specified upload does not '
                b'exist.</Message><RequestId>s3-faults</RequestId></Error>\n')
INTERNALERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                 b'InternalError</Code><Message>We encountered an internal '
                 b'error. Please try again.</Message><RequestId>s3-faults'
                 b'</RequestId></Error>\n')
OTHER_ETAG = b'"0123456789abcdef0123456789abcdef"'
KEYS = ("fail_first", "fail_every", "drop_after", "drop_times", "delay_ms",
        "no_such_upload", "internal_error", "etag_other", "sse_kms")


class Faults:
    """The faults in force and the counters, shared by all connections."""

    def __init__(self, initial, control):
        self.lock = threading.Lock()
        self.initial, self.control, self.text = initial, control, None
        self.reset(dict(initial))

    def reset(self, faults):
        self.faults, self.requests, self.dropped = faults, 0, 0

    def next_request(self):
        """Number this request; return (number, fault or None, faults)."""
        with self.lock:
            if self.control:
                try:
                    with open(self.control) as f:
                        text = f.read()
                except OSError:
                    text = ""
                if text != self.text:
                    self.text = text
                    faults = dict(self.initial)
                    for line in text.splitlines():
                        words = line.split()
                        if len(words) == 2 and words[0] in KEYS:
                            faults[words[0]] = int(words[1])
                    self.reset(faults)
            self.requests += 1
            n, f = self.requests, self.faults
            if n <= f["fail_first"] or (f["fail_every"] and
                                        n % f["fail_every"] == 0):
                return n, "503", f
            return n, None, f

    def take_drop(self):
        with self.lock:
            if self.dropped >= self.faults["drop_times"]:
                return False
            self.dropped += 1
            return True


def read_head(rfile):
    """The request line and headers, raw bytes, or b"" at end of stream."""
    lines = []
    while True:
        line = rfile.readline(65537)
        if not line:
            return b""
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def rewrite_head(head, kms):
    """An answer's head with OTHER_ETAG as ETag, and SSE-KMS if kms."""
    lines = [line for line in head.split(b"\r\n")
             if not line.lower().startswith(b"etag:")]
    extra = [b"ETag: " + OTHER_ETAG]
    if kms:
        extra.append(b"x-amz-server-side-encryption: aws:kms")
    return b"\r\n".join(lines[:1] + extra + lines[1:])


class Proxy(socketserver.BaseRequestHandler):
    rewrite = None  # None, or whether the next answer's head says SSE-KMS

    def handle(self):
        up = socket.create_connection(("127.0.0.1", self.server.to))
        back = threading.Thread(target=self.pump, args=(up,), daemon=True)
        back.start()
        rfile = self.request.makefile("rb")
        try:
            while self.one_request(rfile, up):
                pass
        except (OSError, ValueError):  # a reset, or a broken chunked body
            pass
        finally:
            for s in (up, self.request):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            back.join()
            up.close()

    def pump(self, up):
        """The server's answers, back to the client as they come (the
        head of one rewritten when one_request() asked)."""
        head = b""
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                if self.rewrite is not None:
                    head += data
                    end = head.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    data = rewrite_head(head[:end], self.rewrite) + head[end:]
                    self.rewrite, head = None, b""
                self.request.sendall(data)
        except OSError:
            pass
        try:
            self.request.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def one_request(self, rfile, up):
        """Pass on one request, or inject a fault; False: close."""
        head = read_head(rfile)
        if not head:
            return False
        n, fault, f = self.server.faults.next_request()
        what = head.split(b"\r\n", 1)[0].rsplit(b" ", 1)[0].decode("latin-1")
        if header(head, b"range"):
            what += " (%s)" % header(head, b"range").decode("latin-1")
        length = int(header(head, b"content-length") or 0)
        chunked = b"chunked" in (header(head, b"transfer-encoding") or b"")
        if fault == "503":
            status, body = b"503 Slow Down", SLOWDOWN
            if f["no_such_upload"]:
                status, body = b"404 Not Found", NOSUCHUPLOAD
            elif f["internal_error"]:
                status, body = b"500 Internal Server Error", INTERNALERROR
            log(n, what, status.decode())
            # Read what the client sends unasked, so that it reads the
            # answer rather than a reset; one that waits for 100-continue
            # sends nothing.
            if header(head, b"expect") is None:
                skip_body(rfile, length, chunked)
            self.request.sendall(
                b"HTTP/1.1 %s\r\nContent-Type: application/xml"
                b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
                    status, len(body), body))
            return False
        if f["delay_ms"]:
            time.sleep(f["delay_ms"] / 1000)
        if head.startswith(b"PUT ") and (f["etag_other"] or f["sse_kms"]):
            self.rewrite = bool(f["sse_kms"])  # before the answer can come
        up.sendall(head)
        cut = f["drop_after"]
        if cut and length > cut and self.server.faults.take_drop():
            log(n, what, "dropped after %d of %d body bytes" % (cut, length))
            copy(rfile, up, cut)
            return False
        log(n, what, "passed on")
        if chunked:
            copy_chunked(rfile, up)
        else:
            copy(rfile, up, length)
        return True


def copy(rfile, up, n):
    while n > 0:
        data = rfile.read(min(n, 65536))
        if not data:
            raise OSError("the client closed in the middle of a body")
        up.sendall(data)
        n -= len(data)


def copy_chunked(rfile, up):
    """A chunked body, passed on as it is, up to its last (empty) chunk."""
    while True:
        line = rfile.readline(65537)
        up.sendall(line)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        copy(rfile, up, size + 2)
    while True:  # trailers, up to the empty line
        line = rfile.readline(65537)
        up.sendall(line)
        if line in (b"\r\n", b"\n", b""):
            return


def skip_body(rfile, length, chunked):
    class Sink:
        def sendall(self, data):
            pass
    (copy_chunked(rfile, Sink()) if chunked else copy(rfile, Sink(), length))


def log(n, what, fault):
    print("%d %s: %s" % (n, what, fault), file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--control")
    for k in KEYS:
        ap.add_argument("--" + k.replace("_", "-"), type=int,
                        default=1 if k == "drop_times" else 0)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.listen), Proxy)
    srv.to = a.to
    srv.faults = Faults({k: getattr(a, k) for k in KEYS}, a.control)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
