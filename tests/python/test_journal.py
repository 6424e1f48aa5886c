"""sftprelay_airflow.journal against a journal the real agent wrote
(t_airflow.sh makes it; JOURNAL and SRC name it and the source folder)."""
import fnmatch
import hashlib
import os
import random
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "airflow", "plugins"))
from sftprelay_airflow import journal as J  # noqa: E402

JOURNAL = os.environ["JOURNAL"]
SRC = os.environ["SRC"]
BRIEF = ["a/b/c/file_1.txt", "a/b/c/file_2.txt", "a/b/c/file_3.txt"]


def copy_journal(dst):
    """A writable copy of the agent's journal, its schema and all, with no
    rows in files."""
    src = sqlite3.connect("file:" + JOURNAL + "?mode=ro", uri=True)
    out = sqlite3.connect(dst)
    src.backup(out)
    src.close()
    out.execute("DELETE FROM files")
    out.commit()
    return out


def add_rows(con, rows):
    """rows: (name as bytes, state, detected_at)."""
    con.executemany(
        "INSERT INTO files (path, size, mtime_ns, state, detected_at,"
        " next_attempt, sha256, delivered_at, last_error)"
        " VALUES (CAST(? AS TEXT), 1, 0, ?, ?, ?, ?, ?, ?)",
        [(name, st, at, at, "0" * 64 if st == "delivered" else None,
          at if st == "delivered" else None,
          "boom" if st == "failed" else None) for name, st, at in rows])
    con.commit()


def sha256(rel):
    with open(os.path.join(SRC, rel), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class JournalReads(unittest.TestCase):
    def setUp(self):
        self.j = J.Journal(JOURNAL)

    def test_state_of_a_delivered_file(self):
        f = self.j.state("a/b/c/file_1.txt")
        self.assertEqual(f.state, "delivered")
        self.assertEqual(f.size, os.path.getsize(os.path.join(SRC, f.path)))
        self.assertEqual(f.sha256, sha256(f.path))
        self.assertGreater(f.delivered_at, 0)
        self.assertEqual(f.as_xcom(), {"path": f.path, "size": f.size,
                                       "sha256": f.sha256,
                                       "delivered_at": f.delivered_at,
                                       "target_path": f.path,
                                       "delivered_sha256": f.sha256})

    def test_transformed_file_gives_both_names_and_digests(self):
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "journal.db")
            con = copy_journal(db)
            add_rows(con, [(b"report.csv", "delivered", 100)])
            con.execute("UPDATE files SET target_path = 'report.csv.gz',"
                        " delivered_sha256 = ? WHERE path = 'report.csv'",
                        ("1" * 64,))
            con.commit()
            con.close()
            x = J.Journal(db).state("report.csv").as_xcom()
        self.assertEqual((x["path"], x["target_path"]),
                         ("report.csv", "report.csv.gz"))
        self.assertEqual((x["sha256"], x["delivered_sha256"]),
                         ("0" * 64, "1" * 64))

    def test_older_journal_without_the_later_columns(self):
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "journal.db")
            con = copy_journal(db)
            add_rows(con, [(b"old.csv", "delivered", 100)])
            for col in ("sha256_state", "delivered_state", "delivered_sha256",
                        "target_path"):
                con.execute("ALTER TABLE files DROP COLUMN " + col)
            con.execute("PRAGMA user_version = 4")
            con.commit()
            con.close()
            x = J.Journal(db).state("old.csv").as_xcom()
        self.assertEqual(x["target_path"], "old.csv")
        self.assertEqual(x["delivered_sha256"], "0" * 64)

    def test_unknown_path(self):
        self.assertIsNone(self.j.state("no/such/file"))

    def test_prefix_and_glob(self):
        self.assertEqual([f.path for f in self.j.files(prefix="a/b/")], BRIEF)
        self.assertEqual([f.path for f in self.j.files(pattern="a/*/c/file_*.txt")],
                         BRIEF)
        self.assertEqual(self.j.files(prefix="a/b/c/file_9"), [])
        # a prefix's own glob characters are taken literally
        self.assertEqual(self.j.files(prefix="a/*"), [])

    def test_not_utf8_name(self):
        name = os.fsdecode(b"bytes-\xff.txt")
        f = self.j.state(name)
        self.assertIsNotNone(f)
        self.assertEqual(f.path, name)
        self.assertEqual(f.state, "delivered")

    def test_delivered_since(self):
        paths = [f.path for f in self.j.delivered_since(0)]
        for p in BRIEF:
            self.assertIn(p, paths)
        self.assertEqual(self.j.delivered_since(time.time() + 3600), [])

    def test_oldest_pending(self):
        age = self.j.oldest_pending_age()
        self.assertIsNotNone(age)  # late/new.txt waits for the target
        self.assertGreaterEqual(age, 0)
        self.assertGreater(self.j.oldest_pending_age(time.time() + 100), 99)


class NameForms(unittest.TestCase):
    """Names that are not UTF-8 leave as "sftprelay --json" writes them:
    the display form (U+FFFD per invalid byte) and path_bytes (the bytes
    as escaped text)."""

    def test_the_contract(self):
        self.assertEqual(J.name_fields(b"r\xe9sum\xe9.csv"),
                         {"path": "r\ufffdsum\ufffd.csv",
                          "path_bytes": "r\\xe9sum\\xe9.csv"})
        self.assertEqual(J.name_fields(os.fsdecode(b"a\\\xff"), "target_path"),
                         {"target_path": "a\\\ufffd",
                          "target_path_bytes": "a\\\\\\xff"})
        # valid UTF-8, U+FFFD and backslash and all: the name alone
        self.assertEqual(J.name_fields("r\xe9sum\ufffd\\.csv"),
                         {"path": "r\xe9sum\ufffd\\.csv"})
        self.assertEqual(J.name_fields(None), {"path": None})
        # one U+FFFD per byte, as the agent writes them
        self.assertEqual(J.display_name(b"x\xe2\x82y\xed\xa0\x80"), "x" + "\ufffd" * 2 + "y" + "\ufffd" * 3)

    def test_round_trip(self):
        for raw in (b"r\xe9sum\xe9.csv", b"\\x41", b"\\\xff\\", b"\xc3\xa9\xc3",
                    bytes(range(1, 256))):
            self.assertEqual(J.name_from_fields(J.name_fields(raw)), raw)
            self.assertEqual(J.unescape_name(J.escape_name(raw)), raw)
            json.dumps(J.name_fields(raw), ensure_ascii=False).encode("utf-8")
        for bad in ("\\q", "\\x4", "\\xg1", "a\\", "\\x+1"):
            with self.assertRaises(ValueError, msg=bad):
                J.unescape_name(bad)

    def test_state_by_bytes(self):
        f = J.Journal(JOURNAL).state(b"bytes-\xff.txt")
        self.assertEqual(f.path, os.fsdecode(b"bytes-\xff.txt"))
        self.assertEqual(f.as_xcom()["path_bytes"], "bytes-\\xff.txt")

    def test_status_json_last_error_path(self):
        for name, want in ((b"x-\xe9.txt", {"last_error_path": "x-\ufffd.txt",
                                            "last_error_path_bytes": "x-\\xe9.txt"}),
                           (b"x.txt", {"last_error_path": "x.txt"})):
            with tempfile.TemporaryDirectory() as d:
                db = os.path.join(d, "journal.db")
                con = copy_journal(db)
                add_rows(con, [(name, "failed", 0)])
                con.close()
                out = subprocess.run([os.environ["SFTPRELAY"], "-j", db, "status", "--json"],
                                     check=True, capture_output=True).stdout
            status = json.loads(out.decode("utf-8"))
            self.assertEqual({k: v for k, v in status.items()
                              if k.startswith("last_error_path")}, want)

    def test_same_as_sftprelay_list_json(self):
        # random names, the CLI's JSON and name_fields() agree member for member
        names = random_names(random.Random(3), 400)
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "journal.db")
            con = copy_journal(db)
            add_rows(con, [(n, "queued", 0) for n in names])
            con.close()
            out = subprocess.run([os.environ["SFTPRELAY"], "-j", db, "list", "--json"],
                                 check=True, capture_output=True).stdout
        rows = json.loads(out.decode("utf-8"))  # strict UTF-8
        self.assertEqual(sorted(J.name_from_fields(r) for r in rows), names)
        for r in rows:
            raw = J.name_from_fields(r)
            for key in ("path", "target_path"):
                got = {k: v for k, v in r.items() if k in (key, key + "_bytes")}
                self.assertEqual(got, J.name_fields(raw, key), raw)


class Unavailable(unittest.TestCase):
    def test_missing_journal_is_not_yet(self):
        j = J.Journal(JOURNAL + ".nope")
        with self.assertRaises(J.JournalUnavailable):
            j.state("x")
        d = J.delivered_decision(j, path="a/b/c/file_1.txt")
        self.assertFalse(d.done)
        self.assertIn("does not exist yet", d.reason)

    def test_not_a_journal_is_not_yet(self):
        bogus = JOURNAL + ".bogus"
        with open(bogus, "wb") as f:
            f.write(b"not a database at all" * 100)
        try:
            d = J.delivered_decision(J.Journal(bogus), pattern="*")
            self.assertFalse(d.done)
            self.assertFalse(d.failed)
        finally:
            os.unlink(bogus)

    def test_reader_does_not_write(self):
        before = os.stat(JOURNAL).st_mtime_ns
        J.Journal(JOURNAL).files()
        self.assertEqual(os.stat(JOURNAL).st_mtime_ns, before)


class Decisions(unittest.TestCase):
    def setUp(self):
        self.j = J.Journal(JOURNAL)

    def test_one_delivered_path(self):
        d = J.delivered_decision(self.j, path="a/b/c/file_2.txt")
        self.assertTrue(d.done)
        self.assertEqual([f.sha256 for f in d.files], [sha256("a/b/c/file_2.txt")])

    def test_pattern_all_delivered(self):
        d = J.delivered_decision(self.j, pattern="a/b/c/*.txt")
        self.assertTrue(d.done, d.reason)
        self.assertEqual(len(d.files), 3)

    def test_failed_file_fails_at_once(self):
        d = J.delivered_decision(self.j, path="blocked/x.txt")
        self.assertFalse(d.done)
        self.assertEqual([f.path for f in d.failed], ["blocked/x.txt"])
        self.assertIn("blocked/x.txt: failed", d.reason)

    def test_pending_file_waits(self):
        d = J.delivered_decision(self.j, path="late/new.txt")
        self.assertFalse(d.done)
        self.assertFalse(d.failed)
        self.assertIn("late/new.txt is queued", d.reason)

    def test_no_match_waits(self):
        d = J.delivered_decision(self.j, pattern="z/*")
        self.assertFalse(d.done)
        self.assertIn("no file matching z/* yet", d.reason)

    def test_newer_than_waits_for_a_new_version(self):
        d = J.delivered_decision(self.j, path="a/b/c/file_1.txt",
                                 newer_than=time.time() + 60)
        self.assertFalse(d.done)
        d = J.delivered_decision(self.j, path="a/b/c/file_1.txt", newer_than=0)
        self.assertTrue(d.done)

    def test_exactly_one_of_path_and_pattern(self):
        with self.assertRaises(ValueError):
            J.delivered_decision(self.j)
        with self.assertRaises(ValueError):
            J.delivered_decision(self.j, path="a", pattern="b")

    def test_backlog(self):
        self.assertTrue(J.backlog_decision(self.j, 3600).done)
        late = J.backlog_decision(self.j, 10, now=time.time() + 3600)
        self.assertFalse(late.done)
        self.assertIn("has waited", late.reason)


# Names: bytes that are not UTF-8 (lone, truncated, overlong, encoded
# surrogates), U+FFFF (SQLite reads it as U+FFFD), and each of the
# characters fnmatch or GLOB treat specially.
NAME_PIECES = [b"a", b"b", b"z", b"/", b".", b"-", b"]", b"[", b"^", b"!",
               b"*", b"?", b"\\", b"\xff", b"\x80", b"\xc3", b"\xa9",
               b"\xc3\xa9", b"\xe2\x82", b"\xef\xbf\xbf", b"\xef\xbf\xbd",
               b"\xed\xa0\x80", b"\xc0\xaf", b"\x01", b"\x7f", b" "]
PATTERN_PIECES = ["a", "b", "z", "/", ".", "-", "]", "[", "^", "!", "\\",
                  "*", "?", "**", "\udcff", "\udc80", "\udcc3", "\xe9",
                  "\uffff", "\ufffd", "\ud800", "\x00", "\x7f", "[!a]",
                  "[^a]", "[]a]", "[!]a]", "[a-c]", "[z-a]", "[--/]", "[a-]",
                  "[-a]", "[]-^]", "[!]", "[]", "[\\]", "[/]", "[!/]", "[a-c-z]",
                  "[^]", "[*?]", "[\udcff]", "[!\udcff]", "[\x00-\uffff]",
                  "[a-\udcff]", "[!-]", "[-]", "[]]"]


def random_names(rnd, n):
    names = set()
    while len(names) < n:
        names.add(b"".join(rnd.choice(NAME_PIECES)
                           for _ in range(rnd.randint(1, 6))))
    return sorted(names)  # byte order, the journal's order


def random_pattern(rnd, names):
    if rnd.random() < 0.5:  # one made from a name, so that it matches some
        out = []
        for ch in os.fsdecode(rnd.choice(names)):
            r = rnd.random()
            out.append("?" if r < 0.15 else "*" if r < 0.25 else
                       "[%s%s]" % ("!" * (rnd.random() < 0.2), ch) if r < 0.35
                       else ch)
        return "".join(out)
    return "".join(rnd.choice(PATTERN_PIECES)
                   for _ in range(rnd.randint(1, 5)))


class PatternInSql(unittest.TestCase):
    """The pattern pushed into SQL (a range on path, GLOB for ASCII names,
    fnmatch in SQL for the others) against fnmatch.fnmatchcase."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.path = os.path.join(cls.dir, "journal.db")
        rnd = random.Random(5)
        cls.names = random_names(rnd, 1500)
        con = copy_journal(cls.path)
        add_rows(con, [(n, "queued", 0) for n in cls.names])
        con.close()
        cls.patterns = [random_pattern(rnd, cls.names) for _ in range(3000)]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def expected(self, pattern):
        return [n for n in self.names
                if fnmatch.fnmatchcase(os.fsdecode(n), pattern)]

    def test_match_is_fnmatch(self):
        con = sqlite3.connect(self.path)
        matched = 0
        for p in self.patterns:
            m = J._Match(pattern=p)
            m.install(con)
            got = [r[0] for r in con.execute(
                "SELECT CAST(path AS BLOB) FROM files WHERE " + m.sql +
                " ORDER BY path", m.args)]
            self.assertEqual(got, self.expected(p), repr(p))
            matched += bool(got)
        self.assertGreater(matched, len(self.patterns) // 4)
        con.close()

    def test_glob_is_fnmatch_on_ascii_names(self):
        # GLOB alone, no fnmatch in SQL: every name of bytes 0x01-0x7f
        con = sqlite3.connect(self.path)
        ascii_names = [n for n in self.names if max(n) < 0x80]
        self.assertGreater(len(ascii_names), 200)
        for p in self.patterns:
            g = J.glob_for_ascii(p)
            got = [] if g is None else [r[0] for r in con.execute(
                "SELECT CAST(path AS BLOB) FROM files WHERE path GLOB"
                " CAST(? AS TEXT) AND NOT " + J._NOT_ASCII + " ORDER BY path",
                (os.fsencode(g),))]
            want = [n for n in ascii_names
                    if fnmatch.fnmatchcase(os.fsdecode(n), p)]
            self.assertEqual(got, want, (p, g))
        con.close()

    def test_files_and_decision(self):
        j = J.Journal(self.path)
        for p in self.patterns[:200]:
            want = self.expected(p)
            self.assertEqual([os.fsencode(f.path) for f in j.files(pattern=p)],
                             want, repr(p))
            d = J.delivered_decision(j, pattern=p)
            self.assertFalse(d.done)
            if want:
                self.assertEqual(d.reason, ", ".join(
                    J.name_text(n) + " is queued" for n in want[:5]))
            else:
                self.assertEqual(d.reason, "no file matching %s yet" % J.name_text(p))

    def test_range_bounds(self):
        self.assertEqual(J._upper_bound(b"ab"), b"ac")
        self.assertEqual(J._upper_bound(b"a\xff\xff"), b"b")
        self.assertIsNone(J._upper_bound(b"\xff"))
        self.assertIsNone(J._upper_bound(b""))


class HundredThousand(unittest.TestCase):
    """Decisions over 100,000 rows, in the agent's own schema.  Only that
    they are right: how fast they are is bench/run intake's business."""

    N = 100000

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.path = os.path.join(cls.dir, "journal.db")
        cls.con = copy_journal(cls.path)
        rnd = random.Random(7)
        cls.rows = []
        for i in range(cls.N):
            r = rnd.random()
            st = "queued" if r < 0.6 else "sending" if r < 0.62 else "delivered"
            cls.rows.append((b"batch/d%02d/f%06d" % (i % 40, i), st, 1000 + i % 1000))
        # delivered elsewhere: a folder of their own, and one odd name
        cls.rows += [(b"done/f%04d" % i, "delivered", 500) for i in range(3000)]
        cls.rows.append((b"done/\xff-odd", "delivered", 500))
        add_rows(cls.con, cls.rows)
        cls.j = J.Journal(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.con.close()
        shutil.rmtree(cls.dir)

    def set_state(self, name, state):
        self.con.execute("UPDATE files SET state = ?, last_error = ?"
                         " WHERE path = CAST(? AS TEXT)",
                         (state, "boom" if state == "failed" else None, name))
        self.con.commit()

    def waiting(self, pattern, newer_than=-1):
        return [(n, st) for n, st, at in sorted(self.rows)
                if fnmatch.fnmatchcase(os.fsdecode(n), pattern)
                and st != "delivered" and at >= newer_than]

    def test_waiting(self):
        for p in ("batch/*", "batch/d1?/*", "batch/d07/*", "*/f00001?",
                  "*[!0-8]"):
            d = J.delivered_decision(self.j, pattern=p)
            self.assertFalse(d.done)
            self.assertEqual(d.files, [])
            self.assertEqual(d.reason, ", ".join(
                "%s is %s" % (J.name_text(n), st)
                for n, st in self.waiting(p)[:5]), p)

    def test_newer_than(self):
        d = J.delivered_decision(self.j, pattern="batch/*", newer_than=1999)
        self.assertEqual(d.reason, ", ".join(
            "%s is %s" % (J.name_text(n), st)
            for n, st in self.waiting("batch/*", 1999)[:5]))
        d = J.delivered_decision(self.j, pattern="batch/*", newer_than=2000)
        self.assertEqual(d.reason, "no file matching batch/* yet")

    def test_done_carries_every_row(self):
        for p, n in (("done/*", 3001), ("*/f000?", 10), ("done/\udcff*", 1)):
            d = J.delivered_decision(self.j, pattern=p)
            self.assertTrue(d.done, p)
            self.assertEqual(d.reason, "%d delivered" % n)
            self.assertEqual([f.path for f in d.files],
                             sorted((f.path for f in d.files), key=os.fsencode))
            self.assertEqual(len(d.files), n)
        self.assertEqual(d.files[0].path, os.fsdecode(b"done/\xff-odd"))

    def test_failed(self):
        names = [b"batch/d39/f099999", b"batch/d00/f000040"]
        for n in names:
            self.set_state(n, "failed")
        try:
            d = J.delivered_decision(self.j, pattern="batch/*")
            self.assertFalse(d.done)
            self.assertEqual([f.path for f in d.failed],
                             [os.fsdecode(n) for n in sorted(names)])
            self.assertEqual(d.reason, "; ".join(
                "%s: failed: boom" % J.name_text(n) for n in sorted(names)))
        finally:
            for n in names:
                self.set_state(n, "queued")


if __name__ == "__main__":
    unittest.main(verbosity=2)
