#!/usr/bin/env python3
"""Write seed inputs for a fuzz target:
  seeds.py DIR [sftpd]   fuzz_sftpd: well-formed SFTP v3 request streams
                         (after INIT) that reach deep into the engine,
                         including escape attempts
  seeds.py DIR sftpc     fuzz_sftpc: server reply streams answering the
                         target's session in order (ids from 1), with and
                         without limits@openssh.com, with errors"""
import os
import struct
import sys

out = sys.argv[1]
target = sys.argv[2] if len(sys.argv) > 2 else "sftpd"
os.makedirs(out, exist_ok=True)


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def pk(t, rid, body=b""):
    p = bytes([t]) + struct.pack(">I", rid) + body
    return struct.pack(">I", len(p)) + p


H = b"\0\0\0\0\0\0\0\1"  # the first handle the engine hands out
seeds = {
    "upload": pk(3, 1, s("d/f") + struct.pack(">II", 0x1A, 0))
    + pk(6, 2, s(H) + struct.pack(">Q", 0) + s("hello"))
    + pk(200, 3, s("fsync@openssh.com") + s(H))
    + pk(4, 4, s(H)),
    "escape": pk(3, 1, s("../outside/secret") + struct.pack(">II", 0x1A, 0))
    + pk(3, 2, s("planted/secret") + struct.pack(">II", 0x12, 0))
    + pk(18, 3, s("d") + s("../x"))
    + pk(200, 4, s("posix-rename@openssh.com") + s("planted") + s("d/p"))
    + pk(13, 5, s("planted/secret")),
    "dirs": pk(14, 1, s("d/e") + struct.pack(">I", 0))
    + pk(11, 2, s("d"))
    + pk(12, 3, s(H))
    + pk(16, 4, s("./d/../d/e"))
    + pk(15, 5, s("d/e")),
    "attrs": pk(9, 1, s("d") + struct.pack(">IQII", 0x5, 0, 0o700, 0))
    + pk(17, 2, s("planted"))
    + pk(7, 3, s("planted"))
    + pk(19, 4, s("planted"))
    + pk(200, 5, s("statvfs@openssh.com") + s("/"))
    + pk(200, 6, s("limits@openssh.com")),
}


# --- fuzz_sftpc: replies ----------------------------------------------------
def rep(t, rid, body=b""):
    return pk(t, rid, body)


def version(exts):
    p = bytes([2]) + struct.pack(">I", 3)
    for name, ver in exts:
        p += s(name) + s(ver)
    return struct.pack(">I", len(p)) + p


def ok(rid, code=0, msg="Success"):
    return rep(101, rid, struct.pack(">I", code) + s(msg) + s("en"))


def attrs(rid, size):
    return rep(105, rid, struct.pack(">IQI", 0x5, size, 0o100644))


def name(rid, path):
    return rep(104, rid, struct.pack(">I", 1) + s(path) + s(path)
               + struct.pack(">I", 0))


def data(rid, n):
    return rep(103, rid, s(b"x" * n))


ALL = [("posix-rename@openssh.com", "1"), ("statvfs@openssh.com", "2"),
       ("fsync@openssh.com", "1"), ("limits@openssh.com", "1")]
LIMITS = rep(201, 1, struct.pack(">QQQQ", 262144, 261120, 261120, 64))
STATVFS = struct.pack(">11Q", 4096, 4096, 1000, 500, 400, 100, 50, 50, 1, 0,
                      255)
FH = s("fh")
# With limits: open 2, writes 3-5, fsync 6, fsetstat 7, close 8, stat 9,
# realpath 10, rename 11, statvfs 12, mkdir 13, open 14, fstat 15,
# read 16, close 17, remove 18.
after_close = (attrs(9, 110100) + name(10, "/") + ok(11)
               + rep(201, 12, STATVFS) + ok(13) + rep(102, 14, FH)
               + attrs(15, 1000))
client_seeds = {
    "session": version(ALL) + LIMITS + rep(102, 2, FH)
    + ok(3) + ok(4) + ok(5) + ok(6) + ok(7) + ok(8) + after_close
    + data(16, 1000) + ok(17) + ok(18),
    # Writes 4 before 3 (write 5 waits for room), then 7, 5, 6; a short
    # read, whose rest is asked again (17).
    "out_of_order": version(ALL) + LIMITS + rep(102, 2, FH)
    + ok(4) + ok(3) + ok(7) + ok(5) + ok(6) + ok(8) + after_close
    + data(16, 400) + data(17, 600) + ok(18) + ok(19),
    # The last write fails; then every kind of status.
    "errors": version(ALL) + LIMITS + rep(102, 2, FH)
    + ok(3) + ok(4) + ok(5, 4, "disk full") + ok(6) + ok(7)
    + ok(8, 3, "denied") + ok(9, 2, "No such file") + name(10, "/")
    + ok(11, 8, "") + ok(12, 8, "") + ok(13, 4, "exists")
    + rep(102, 14, FH) + attrs(15, 10) + ok(16, 1, "End of file")
    + ok(17) + ok(18),
    # Without extensions: open 1, writes 2-7 (32768 each at most),
    # fsetstat 8, close 9, stat 10, realpath 11, rename 12, mkdir 13,
    # open 14, fstat 15, read 16, close 17, remove 18.
    "no_extensions": version([]) + rep(102, 1, FH)
    + b"".join(ok(i) for i in range(2, 10)) + attrs(10, 110100)
    + name(11, "/") + ok(12) + ok(13) + rep(102, 14, FH) + attrs(15, 1000)
    + data(16, 1000) + ok(17) + ok(18),
}
if target == "sftpc":
    seeds = client_seeds
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
