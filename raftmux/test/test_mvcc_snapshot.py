# -*- test-case-name: raftmux.test.test_mvcc_snapshot -*-
"""
The key space's snapshot format (L{raftmux.mvcc.snapshot}): round trips
of everything, and refusal of anything damaged or foreign.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import rpc_pb2 as pb

# A key space with history, a lease, a tombstone and a compaction; the fuzz
# target's seeds are built from the same one.
from raftmux.fuzz.mvcc import busy
from raftmux.mvcc import KeySpace, Record, SnapshotError, snapshot
from raftmux.mvcc.leases import Lease


def record(mod, sub=0, create=None, version=1, lease=0, key=b"k", value=b"v"):
    return Record(key, value, mod if create is None else create, mod, sub, version, lease)


class RoundTripTests(SynchronousTestCase):

    def test_everything(self):
        """Revision, compact revision, index, history, leases, attachments, the log."""
        ks = busy()
        data = ks.snapshot()
        other = KeySpace()
        other.restore(data)
        self.assertEqual(other.snapshot(), data)
        self.assertEqual((other.revision, other.compactRevision, other.consistentIndex),
                         (6, 4, 77))
        self.assertEqual(other.leases(), ks.leases())
        self.assertEqual(other.eventsSince(b"\x00", b"\x00", 4), ks.eventsSince(b"\x00", b"\x00", 4))
        self.assertEqual(other.range(pb.RangeRequest(key=b"a", revision=4)),
                         ks.range(pb.RangeRequest(key=b"a", revision=4)))
        self.assertEqual(other.hashKV(), ks.hashKV())
        # and it goes on alike
        for k in (ks, other):
            k.put(pb.PutRequest(key=b"a", value=b"3"))
            k.compact(pb.CompactionRequest(revision=6))
        self.assertEqual(other.snapshot(), ks.snapshot())

    def test_fresh(self):
        other = busy()
        other.restore(KeySpace().snapshot())
        self.assertEqual(other.snapshot(), KeySpace().snapshot())
        self.assertEqual((other.revision, other.compactRevision), (1, -1))


class RefusalTests(SynchronousTestCase):

    def assertRefused(self, data):
        ks = busy()
        before = ks.snapshot()
        self.assertRaises(SnapshotError, ks.restore, data)
        self.assertEqual(ks.snapshot(), before)

    def test_truncated(self):
        data = busy().snapshot()
        for n in range(len(data)):
            self.assertRaises(SnapshotError, snapshot.decode, data[:n])

    def test_flippedByte(self):
        data = bytearray(busy().snapshot())
        for i in range(len(data)):
            damaged = bytearray(data)
            damaged[i] ^= 0x41
            self.assertRaises(SnapshotError, snapshot.decode, bytes(damaged))

    def test_trailing(self):
        data = busy().snapshot()
        self.assertRaises(SnapshotError, snapshot.decode, data + b"\x00")

    def test_foreign(self):
        """The node's old key/value snapshot and an etcd-looking blob are refused."""
        self.assertRefused(b"RMKVSNAP1" + b"\x00" * 40)
        self.assertRefused(b"")
        head = bytearray(KeySpace().snapshot())
        head[6] = 2
        self.assertRaises(SnapshotError, snapshot.decode, bytes(head))

    def test_invariants(self):
        """A well-checksummed snapshot whose content breaks the rules is refused."""
        bad = [
            (1, -1, [], [record(2)]),                               # record after the revision
            (3, -1, [], [record(3), record(2)]),                     # out of order
            (3, -1, [], [record(2), record(2)]),                     # repeated revision
            (3, -1, [], [record(2, create=0, version=0, value=b"x")]),  # tombstone with data
            (3, -1, [], [record(2, create=3)]),                      # created after modified
            (3, -1, [], [record(2, version=0)]),                     # live with version 0
            (3, 4, [], []),                                          # compacted in the future
            (0, -1, [], []),                                         # revision 0
            (3, -1, [Lease(0, 5)], []),                              # lease 0
            (3, -1, [Lease(1, 5), Lease(1, 6)], []),                 # repeated lease
        ]
        for revision, compacted, leases, records in bad:
            data = snapshot.encode(revision, compacted, 0, leases, records)
            self.assertRaises(SnapshotError, snapshot.decode, data)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_random(self, data):
        """Random bytes, and random bytes after our header, are refused cleanly."""
        self.assertRaises(SnapshotError, snapshot.decode, data)
        self.assertRaises(SnapshotError, snapshot.decode, b"RMMVCC\x01" + data)
