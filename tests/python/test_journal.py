"""sftprelay_airflow.journal against a journal the real agent wrote
(t_airflow.sh makes it; JOURNAL and SRC name it and the source folder)."""
import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "airflow", "plugins"))
from sftprelay_airflow import journal as J  # noqa: E402

JOURNAL = os.environ["JOURNAL"]
SRC = os.environ["SRC"]
BRIEF = ["a/b/c/file_1.txt", "a/b/c/file_2.txt", "a/b/c/file_3.txt"]


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
                                       "delivered_at": f.delivered_at})

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
