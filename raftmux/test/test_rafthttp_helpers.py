# -*- test-case-name: raftmux.test.test_rafthttp_helpers -*-
"""
IDs, version headers and URL picking (TestURLPicker*, TestCompareMajorMinorVersion,
TestServerVersion, TestCheckVersionCompatibility, TestCheckStreamSupport, spec 11).
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.rafthttp.headers import (
    MalformedVersion,
    checkVersionCompatibility,
    parseVersion,
    requestHeaders,
    supportsStreams,
)
from raftmux.rafthttp.ids import clusterID, formatID, memberID, parseID
from raftmux.rafthttp.urlpick import URLPicker


class IDTests(SynchronousTestCase):
    def test_memberAndClusterIDs(self):
        """The IDs etcd derived in the live runs (spec 11)."""
        self.assertEqual(memberID(["http://localhost:2380"]), 0x8e9e05c52164694d)
        e1 = memberID(["http://127.0.0.1:23801"], "tok")
        p2 = memberID(["http://127.0.0.1:23802"], "tok")
        self.assertEqual((e1, p2), (0x4036b1db24775ea0, 0x2737ecedbf2a9065))
        self.assertEqual(clusterID([e1, p2]), 0xa70b7b723c713c11)
        self.assertEqual(clusterID([0x8e9e05c52164694d]), 0xcdf818194e3a8c32)

    @given(st.integers(0, 2 ** 64 - 1))
    def test_roundTrip(self, id):
        self.assertEqual(parseID(formatID(id)), id)
        self.assertEqual(parseID(formatID(id).encode()), id)

    def test_bad(self):
        for text in ("", "xyz", "1" * 17, "-1", " 1", b"\xff"):
            self.assertIsNone(parseID(text), text)


class VersionTests(SynchronousTestCase):
    def test_parse(self):
        """Missing reads as 2.0.0; prerelease and build are kept apart and ignored."""
        self.assertEqual(parseVersion(None), (2, 0, 0))
        self.assertEqual(parseVersion(b"3.4.23"), (3, 4, 23))
        self.assertEqual(parseVersion("2.1.0-alpha.1+build"), (2, 1, 0))
        for bad in ("3.4", "3.4.x", "03.4.1", "", "v3.4.0"):
            self.assertRaises(MalformedVersion, parseVersion, bad)

    def test_compatibility(self):
        """Same ok, one minor lower ok, next major ok, too low or too high not."""
        ok = checkVersionCompatibility
        self.assertTrue(ok(b"3.4.23", b"3.0.0"))
        self.assertTrue(ok(b"3.3.0", b"3.0.0"))
        self.assertTrue(ok(b"4.0.0", b"3.0.0"))
        self.assertTrue(ok(b"3.0.0-rc", None))
        self.assertFalse(ok(b"2.3.0", b"2.0.0"))
        self.assertFalse(ok(None, None))
        self.assertFalse(ok(b"4.0.0", b"3.5.0"))

    def test_streamSupport(self):
        for v in ("2.1.0", "2.1.9", "2.1.0-alpha", "3.4.23"):
            self.assertTrue(supportsStreams(v))
        self.assertFalse(supportsStreams(None))

    def test_requestHeaders(self):
        h = requestHeaders(0x10, 0xC1, ["http://a", "http://b"], to=0x20)
        self.assertEqual(h[b"X-PeerURLs"], [b"http://a,http://b"])
        self.assertEqual(h[b"X-Raft-To"], [b"20"])
        self.assertNotIn(b"X-PeerURLs", requestHeaders(1, 1, []))


class URLPickerTests(SynchronousTestCase):
    def test_pickTwice(self):
        picker = URLPicker(["http://b:1", "http://a:1"])
        self.assertEqual(picker.pick(), "http://a:1")
        self.assertEqual(picker.pick(), "http://a:1")

    def test_update(self):
        picker = URLPicker(["http://a:1", "http://b:1"])
        picker.unreachable("http://a:1")
        picker.update(["http://c:1", "http://d:1"])
        self.assertEqual(picker.pick(), "http://c:1")

    @given(st.lists(st.integers(0, 99), min_size=1, max_size=6, unique=True),
           st.lists(st.integers(0, 99), max_size=20))
    def test_unreachable(self, ports, failures):
        """Only a failure of the current URL moves on, by exactly one."""
        picker = URLPicker(["http://h:%d" % (p,) for p in ports])
        for port in failures:
            before = picker.pick()
            picker.unreachable("http://h:%d" % (port,))
            if before == "http://h:%d" % (port,) and len(ports) > 1:
                self.assertNotEqual(picker.pick(), before)
            elif before != "http://h:%d" % (port,):
                self.assertEqual(picker.pick(), before)

    def test_bad(self):
        self.assertRaises(ValueError, URLPicker, [])
        self.assertRaises(ValueError, URLPicker, ["ftp://x"])
