#!/usr/bin/env python3
"""Write seed inputs for fuzz_sftpd: well-formed SFTP v3 request streams
(after INIT) that reach deep into the engine, including escape attempts."""
import os
import struct
import sys

out = sys.argv[1]
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
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
