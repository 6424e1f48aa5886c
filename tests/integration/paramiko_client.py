"""A second real SFTP client (paramiko) against "sftprelay serve": every
request the server offers, with the semantics a client expects, plus a
stalled client and a hostile one that must not hold up a working one.

usage: paramiko_client.py PORT KEY KNOWN_HOSTS USER ROOT
Prints "ok N - ..." lines; exits non-zero on the first failure."""
import io
import os
import socket
import stat
import sys
import threading
import time

import paramiko

port, key, known_hosts, user, root = sys.argv[1:6]
n = 0


def ok(what):
    global n
    n += 1
    print(f"ok {n} - {what}", flush=True)


def connect():
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", int(port), username=user, key_filename=key,
                   look_for_keys=False, allow_agent=False, timeout=10)
    return client


def refused(fn, *args):
    try:
        fn(*args)
    except (IOError, OSError):
        return True
    return False


client = connect()
sftp = client.open_sftp()

# open: write at any offset, read back, append, exclusive create
with sftp.open("f.bin", "w") as f:
    f.write(b"0123456789")
    f.seek(20)
    f.write(b"tail")
with sftp.open("f.bin", "r") as f:
    data = f.read()
assert data == b"0123456789" + b"\0" * 10 + b"tail", data
with sftp.open("f.bin", "a") as f:
    f.write(b"+more")
assert sftp.open("f.bin").read().endswith(b"tail+more")
with sftp.open("fresh.bin", "wx") as f:
    f.write(b"new")
assert refused(sftp.open, "fresh.bin", "wx"), "exclusive create of an existing file"
with sftp.open("f.bin", "r+") as f:
    f.seek(2)
    f.write(b"XY")
assert sftp.open("f.bin").read(6) == b"01XY45"
ok("open: write at offsets (with a hole), read, append, exclusive, r+")

# stat, lstat, fstat; setstat and fsetstat: mode, times, truncate
st = sftp.stat("f.bin")
assert st.st_size == 29 and stat.S_ISREG(st.st_mode), st
sftp.chmod("f.bin", 0o640)
sftp.truncate("f.bin", 4)  # before utime: truncating sets the mtime
sftp.utime("f.bin", (1000000000, 1000000000))
st = sftp.lstat("f.bin")
assert st.st_size == 4 and stat.S_IMODE(st.st_mode) == 0o640, st
assert st.st_mtime == 1000000000, st
with sftp.open("f.bin", "r+") as f:
    f.chmod(0o600)
    f.truncate(2)
    f.utime((1100000000, 1100000000))  # after truncate, as above
    assert f.stat().st_size == 2
assert os.stat(os.path.join(root, "f.bin")).st_mode & 0o777 == 0o600
assert os.stat(os.path.join(root, "f.bin")).st_mtime == 1100000000
ok("stat, lstat, fstat; setstat and fsetstat of mode, times and size")

# folders, rename, remove, realpath, readlink; links cannot be made
sftp.mkdir("d")
sftp.mkdir("d/e")
names = sorted(a.filename for a in sftp.listdir_attr("."))
assert {"d", "f.bin", "fresh.bin"} <= set(names), names
sftp.rename("fresh.bin", "d/moved.bin")
assert refused(sftp.rename, "f.bin", "d/moved.bin"), "rename replaced a file"
sftp.posix_rename("f.bin", "d/moved.bin")
assert sftp.open("d/moved.bin").read() == b"01"
assert sftp.normalize("d/e/../.") == "/d"
os.symlink("moved.bin", os.path.join(root, "d", "link"))
assert sftp.readlink("d/link") == "moved.bin"
assert refused(sftp.symlink, "/etc/passwd", "d/evil"), "symlink created"
assert refused(sftp.rmdir, "d"), "removed a folder that is not empty"
sftp.remove("d/link")
sftp.remove("d/moved.bin")
sftp.rmdir("d/e")
sftp.rmdir("d")
assert refused(sftp.stat, "d")
ok("mkdir, readdir, rename (v3 refuses to replace), posix-rename, "
   "realpath, readlink, remove, rmdir; symlink refused")

# a larger file both ways
blob = os.urandom(8 * 1024 * 1024 + 13)
sftp.putfo(io.BytesIO(blob), "blob.bin")
out = io.BytesIO()
sftp.getfo("blob.bin", out)
assert out.getvalue() == blob
ok("8 MiB put and get, byte-identical")

# A stalled client (half a packet, then nothing) and a hostile one (a
# 2 GiB length) must not hold up a working one.
stalled = connect()
ch = stalled.get_transport().open_session()
ch.invoke_subsystem("sftp")
ch.sendall(b"\x00\x00")  # half a length field, then silence
hostile = connect()
ch2 = hostile.get_transport().open_session()
ch2.invoke_subsystem("sftp")
ch2.sendall(b"\x7f\xff\xff\xff\x01")
t0 = time.time()
other = connect().open_sftp()
other.putfo(io.BytesIO(blob), "while-stalled.bin")
assert other.stat("while-stalled.bin").st_size == len(blob)
took = time.time() - t0
assert took < 20, took
ch2.settimeout(10)
assert ch2.recv(1) == b"", "the server kept the hostile session open"
ok(f"a working client is served ({took:.1f} s) while one stalls and "
   "one sends garbage (its session closed by the server)")
stalled.close()
hostile.close()
sftp.close()
client.close()
print(f"{n} passed, 0 failed")
