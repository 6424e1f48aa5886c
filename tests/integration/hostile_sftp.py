#!/usr/bin/env python3
"""A hostile SFTP v3 server for sshd's Subsystem line: its listing of any
folder holds names that try to leave the tree ("../evil", "/etc/passwd",
"a/b") beside one honest file, ok.txt.  Standard library only."""
import struct
import sys

OK = b"hello from a hostile server\n"
NAMES = [b"../evil", b"/etc/passwd", b"a/b", b"ok.txt"]
FILE, DIR = 0o100644, 0o040755

inp, out = sys.stdin.buffer, sys.stdout.buffer


def attrs(mode, size=0):
    return struct.pack(">IQII", 0x1 | 0x4 | 0x8, size, mode, 0) + \
        struct.pack(">I", 1700000000)


def send(kind, body):
    out.write(struct.pack(">IB", len(body) + 1, kind) + body)
    out.flush()


def string(b):
    return struct.pack(">I", len(b)) + b


def status(rid, code):
    send(101, struct.pack(">II", rid, code) + string(b"") + string(b""))


def take_string(p, at):
    n = struct.unpack_from(">I", p, at)[0]
    return p[at + 4:at + 4 + n], at + 4 + n


listed = set()
while True:
    head = inp.read(5)
    if len(head) < 5:
        break
    n, kind = struct.unpack(">IB", head)
    p = inp.read(n - 1)
    if kind == 1:  # INIT
        send(2, struct.pack(">I", 3))
        continue
    rid = struct.unpack_from(">I", p)[0]
    if kind == 16:  # REALPATH
        path, _ = take_string(p, 4)
        send(104, struct.pack(">II", rid, 1) + string(path) + string(path) +
             attrs(DIR))
    elif kind in (7, 17):  # LSTAT, STAT
        send(105, struct.pack(">I", rid) + attrs(DIR))
    elif kind == 11:  # OPENDIR
        path, _ = take_string(p, 4)
        send(102, struct.pack(">I", rid) + string(b"d" + path))
    elif kind == 12:  # READDIR: one batch, then the end
        h, _ = take_string(p, 4)
        if h in listed:
            status(rid, 1)
            continue
        listed.add(h)
        body = struct.pack(">II", rid, len(NAMES))
        for name in NAMES:
            size = len(OK) if name == b"ok.txt" else 10
            body += string(name) + string(name) + attrs(FILE, size)
        send(104, body)
    elif kind == 4:  # CLOSE
        listed.discard(take_string(p, 4)[0])
        status(rid, 0)
    elif kind == 3:  # OPEN: only ok.txt, read-only
        path, _ = take_string(p, 4)
        if path.endswith(b"/ok.txt"):
            send(102, struct.pack(">I", rid) + string(b"f"))
        else:
            status(rid, 2)
    elif kind == 8:  # FSTAT
        send(105, struct.pack(">I", rid) + attrs(FILE, len(OK)))
    elif kind == 5:  # READ
        h, at = take_string(p, 4)
        off, ln = struct.unpack_from(">QI", p, at)
        if off >= len(OK):
            status(rid, 1)
        else:
            send(103, struct.pack(">I", rid) + string(OK[off:off + ln]))
    else:
        status(rid, 8)
