#!/usr/bin/env python3
"""A hostile SFTP v3 server for sshd's Subsystem line.  What it lies about
depends on the folder the agent lists (source.path), by its last name:

  evil       its listing of any folder holds names that try to leave the
             tree ("../evil", "/etc/passwd", "a/b") beside one honest file,
             ok.txt;
  evil-big   sizes past 2^63: huge.bin is listed with one, liar.bin is
             listed small but has one once opened; either reads as 4 MiB
             of "x" (more than a transfer's buffer) and then ends;
  evil-data  each READ is answered with more bytes than it asked for;
  evil-link  OPEN follows links: swap.txt, listed as a file, is a link
             when the client looks (LSTAT) and holds another file's
             bytes; late.txt becomes one after its first LSTAT.
  evil-deep  every folder holds a folder "d", without end (ok.txt is in
             the top one only);
  evil-wide  a folder's READDIR never ends: 100 new names each time.

Every folder also holds ok.txt, which a client that refuses the lies
still gets.  Standard library only."""
import struct
import sys

OK = b"hello from a hostile server\n"
NAMES = [b"../evil", b"/etc/passwd", b"a/b", b"ok.txt"]
SECRET = b"the bytes of a file the link points to\n"
FILE, DIR, LINK = 0o100644, 0o040755, 0o120777
BIG = 4 << 20

inp, out = sys.stdin.buffer, sys.stdout.buffer


def mode_of(path):
    """The evil* folder in path, or b"evil"."""
    for name in reversed(path.split(b"/")):
        if name.startswith(b"evil"):
            return name
    return b"evil"


def listing(mode, top=True):
    """(name, mode, size) of each entry of a folder listed in mode (top:
    the folder named evil*, not one below it)."""
    if mode == b"evil-deep":
        return [(b"d", DIR, 0)] + ([(b"ok.txt", FILE, len(OK))] if top else [])
    if mode == b"evil-big":
        return [(b"ok.txt", FILE, len(OK)), (b"huge.bin", FILE, (1 << 63) + 5),
                (b"liar.bin", FILE, 10)]
    if mode == b"evil-data":
        return [(b"ok.txt", FILE, len(OK))]
    if mode == b"evil-wide":
        return [(b"ok.txt", FILE, len(OK))]
    if mode == b"evil-link":
        return [(b"ok.txt", FILE, len(OK)), (b"swap.txt", FILE, len(SECRET)),
                (b"late.txt", FILE, len(SECRET))]
    return [(n, FILE, len(OK) if n == b"ok.txt" else 10) for n in NAMES]


def opened_size(mode, name):
    """The size FSTAT gives for name (its last component) in mode."""
    if name == b"liar.bin":
        return (1 << 64) - 1
    for n, _, size in listing(mode):
        if n == name:
            return size
    return 0


def content(name):
    if name in (b"swap.txt", b"late.txt"):
        return SECRET
    return OK if name == b"ok.txt" else b"x" * BIG


lstats = {}


def stat_of(path, lstat):
    """(mode, size) that (L)STAT gives for path: a listed file's, a
    link's (see evil-link), or a folder's."""
    name = base(path)
    for n, kind_, size in listing(mode_of(path)):
        if n != name:
            continue
        if lstat:
            lstats[path] = lstats.get(path, 0) + 1
            if name == b"swap.txt" or (name == b"late.txt" and
                                       lstats[path] > 1):
                return LINK, 20
        return kind_, size
    return DIR, 0


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


def base(path):
    return path.rsplit(b"/", 1)[-1]


def is_top(path):
    """Whether path is the evil* folder itself ("evil/." too)."""
    names = [n for n in path.split(b"/") if n not in (b"", b".")]
    return bool(names) and names[-1].startswith(b"evil")


listed = set()
wide = 0
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
        path, _ = take_string(p, 4)
        send(105, struct.pack(">I", rid) + attrs(*stat_of(path, kind == 7)))
    elif kind == 11:  # OPENDIR
        path, _ = take_string(p, 4)
        send(102, struct.pack(">I", rid) + string(b"d" + path))
    elif kind == 12:  # READDIR: one batch, then the end
        h, _ = take_string(p, 4)
        mode = mode_of(h[1:])
        if mode == b"evil-wide" and h in listed:
            wide += 100
            names = [(b"f%09d" % i, FILE, 1) for i in range(wide - 100, wide)]
        elif h in listed:
            status(rid, 1)
            continue
        else:
            names = listing(mode, is_top(h[1:]))
        listed.add(h)
        body = struct.pack(">II", rid, len(names))
        for name, kind_, size in names:
            body += string(name) + string(name) + attrs(kind_, size)
        send(104, body)
    elif kind == 4:  # CLOSE
        listed.discard(take_string(p, 4)[0])
        status(rid, 0)
    elif kind == 3:  # OPEN: the files listed, read-only
        path, _ = take_string(p, 4)
        if base(path) in (n for n, k, _ in listing(mode_of(path)) if k == FILE):
            send(102, struct.pack(">I", rid) + string(b"f" + path))
        else:
            status(rid, 2)
    elif kind == 8:  # FSTAT
        h, _ = take_string(p, 4)
        size = opened_size(mode_of(h[1:]), base(h))
        send(105, struct.pack(">I", rid) + attrs(FILE, size))
    elif kind == 5:  # READ
        h, at = take_string(p, 4)
        off, ln = struct.unpack_from(">QI", p, at)
        data = content(base(h))
        if mode_of(h[1:]) == b"evil-data":
            ln += 100
            data += b"y" * 100
        if off >= len(data):
            status(rid, 1)
        else:
            send(103, struct.pack(">I", rid) + string(data[off:off + ln]))
    else:
        status(rid, 8)
