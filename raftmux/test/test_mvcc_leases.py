# -*- test-case-name: raftmux.test.test_mvcc_leases -*-
"""
Leases in L{raftmux.mvcc.KeySpace}: grant, attach, detach, revoke,
checkpoint, as etcd's lessor keeps them (``lease/lessor.go``).
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import DELETE, MAX_LEASE_TTL, KeySpace, LeaseInfo, errors


def grant(ks, leaseID, ttl=60):
    return ks.leaseGrant(pb.LeaseGrantRequest(ID=leaseID, TTL=ttl))


def put(ks, key, value=b"", **kw):
    return ks.put(pb.PutRequest(key=key, value=value, **kw))


def revoke(ks, leaseID):
    return ks.leaseRevoke(pb.LeaseRevokeRequest(ID=leaseID))


class GrantTests(SynchronousTestCase):

    def test_grant(self):
        """A grant answers its ID and TTL and writes no revision."""
        ks = KeySpace()
        applied = grant(ks, 7, 30)
        self.assertEqual((applied.response.ID, applied.response.TTL,
                          applied.response.header.revision), (7, 30, 1))
        self.assertEqual(applied.events, ())
        self.assertEqual(ks.lease(7), LeaseInfo(7, 30, 0, []))
        self.assertEqual(ks.revision, 1)

    def test_minimumTTL(self):
        """A TTL under the minimum (2 s by default, as etcd's) is raised to it."""
        self.assertEqual(grant(KeySpace(), 1, 1).response.TTL, 2)
        self.assertEqual(grant(KeySpace(), 1, -5).response.TTL, 2)
        self.assertEqual(grant(KeySpace(minLeaseTTL=5), 1, 3).response.TTL, 5)

    def test_errors(self):
        """ID 0, a TTL over etcd's maximum, an existing ID."""
        ks = KeySpace()
        self.assertRaises(errors.ErrLeaseNotFound, grant, ks, 0)
        self.assertRaises(errors.ErrLeaseTTLTooLarge, grant, ks, 1, MAX_LEASE_TTL + 1)
        grant(ks, 1, MAX_LEASE_TTL)
        self.assertRaises(errors.ErrLeaseExist, grant, ks, 1)
        self.assertEqual(errors.ErrLeaseExist.message, "etcdserver: lease already exists")

    def test_leasesSorted(self):
        ks = KeySpace()
        for i in (9, -3, 4):
            grant(ks, i)
        self.assertEqual([info.id for info in ks.leases()], [-3, 4, 9])
        self.assertIsNone(ks.lease(5))


class AttachTests(SynchronousTestCase):

    def setUp(self):
        self.ks = KeySpace()
        grant(self.ks, 1)
        grant(self.ks, 2)

    def keys(self, leaseID):
        return self.ks.lease(leaseID).keys

    def test_putAttaches(self):
        put(self.ks, b"a", lease=1)
        put(self.ks, b"b", lease=1)
        self.assertEqual(self.keys(1), [b"a", b"b"])
        self.assertEqual(self.ks.range(pb.RangeRequest(key=b"a")).kvs[0].lease, 1)

    def test_putMovesAndDetaches(self):
        """A put with another lease moves the key; without one, detaches it."""
        put(self.ks, b"a", lease=1)
        put(self.ks, b"a", lease=2)
        self.assertEqual((self.keys(1), self.keys(2)), ([], [b"a"]))
        put(self.ks, b"a")
        self.assertEqual(self.keys(2), [])

    def test_ignoreLeaseKeeps(self):
        put(self.ks, b"a", lease=1)
        put(self.ks, b"a", b"new", ignore_lease=True)
        self.assertEqual(self.keys(1), [b"a"])
        self.assertEqual(self.ks.range(pb.RangeRequest(key=b"a")).kvs[0].lease, 1)

    def test_deleteDetaches(self):
        put(self.ks, b"a", lease=1)
        self.ks.deleteRange(pb.DeleteRangeRequest(key=b"a"))
        self.assertEqual(self.keys(1), [])

    def test_unknownLease(self):
        """A put with an unknown lease fails and writes nothing."""
        self.assertRaises(errors.ErrLeaseNotFound, put, self.ks, b"a", lease=3)
        self.assertEqual(self.ks.revision, 1)

    def test_txnAttaches(self):
        self.ks.txn(pb.TxnRequest(success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"t", lease=2))]))
        self.assertEqual(self.keys(2), [b"t"])


class RevokeTests(SynchronousTestCase):

    def test_revokeDeletesKeysInOneRevision(self):
        """The lease's keys go in key order, one main revision, DELETE events."""
        ks = KeySpace()
        grant(ks, 1)
        for k in (b"c", b"a", b"b"):
            put(ks, k, k, lease=1)
        put(ks, b"other")
        applied = revoke(ks, 1)
        self.assertEqual(applied.response.header.revision, 6)
        self.assertEqual([(e.type, e.key, e.kv.modRevision, e.kv.sub, e.prevKv.value)
                          for e in applied.events],
                         [(DELETE, b"a", 6, 0, b"a"), (DELETE, b"b", 6, 1, b"b"),
                          (DELETE, b"c", 6, 2, b"c")])
        self.assertIsNone(ks.lease(1))
        resp = ks.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"))
        self.assertEqual([kv.key for kv in resp.kvs], [b"other"])

    def test_revokeEmpty(self):
        """A lease holding nothing goes without a revision."""
        ks = KeySpace()
        grant(ks, 1)
        put(ks, b"a", lease=1)
        put(ks, b"a")
        applied = revoke(ks, 1)
        self.assertEqual((applied.response.header.revision, applied.events), (3, []))

    def test_revokeUnknown(self):
        self.assertRaises(errors.ErrLeaseNotFound, revoke, KeySpace(), 1)


class CheckpointTests(SynchronousTestCase):

    def test_checkpoint(self):
        """Checkpoints record remaining TTLs; unknown leases are skipped."""
        ks = KeySpace()
        grant(ks, 1, 100)
        applied = ks.leaseCheckpoint(pb.LeaseCheckpointRequest(checkpoints=[
            pb.LeaseCheckpoint(ID=1, remaining_TTL=40),
            pb.LeaseCheckpoint(ID=2, remaining_TTL=5)]))
        self.assertEqual(applied.response.header.revision, 1)
        info = ks.lease(1)
        self.assertEqual((info.ttl, info.remainingTTL, info.effectiveTTL), (100, 40, 40))
        ks.leaseCheckpoint(pb.LeaseCheckpointRequest(checkpoints=[
            pb.LeaseCheckpoint(ID=1, remaining_TTL=0)]))
        self.assertEqual(ks.lease(1).effectiveTTL, 100)

    def test_snapshotKeepsLeases(self):
        """Leases, their checkpoints and their keys survive snapshot and restore."""
        ks = KeySpace()
        grant(ks, 1, 100)
        grant(ks, 2, 50)
        put(ks, b"a", lease=1)
        put(ks, b"b", lease=1)
        put(ks, b"b", lease=2)
        ks.leaseCheckpoint(pb.LeaseCheckpointRequest(checkpoints=[
            pb.LeaseCheckpoint(ID=2, remaining_TTL=7)]))
        other = KeySpace()
        other.restore(ks.snapshot())
        self.assertEqual(other.leases(), ks.leases())
        self.assertEqual(other.lease(2), LeaseInfo(2, 50, 7, [b"b"]))
        self.assertEqual([e.key for e in revoke(other, 1).events], [b"a"])


class AttachmentInvariantTests(SynchronousTestCase):
    """
    Whatever the sequence, a lease holds exactly the live keys whose
    current record names it, and a snapshot keeps that.
    """

    @settings(max_examples=150, deadline=None)
    @given(st.integers(5, 30).flatmap(lambda n: st.lists(st.tuples(
        st.sampled_from(["put", "put", "delete", "revoke", "grant", "txn", "compact"]),
        st.sampled_from([b"a", b"b", b"c"]), st.integers(0, 3)), min_size=n, max_size=n)))
    def test_invariant(self, steps):
        ks = KeySpace()
        for leaseID in (1, 2, 3):
            grant(ks, leaseID)
        for kind, key, n in steps:
            try:
                if kind == "put":
                    put(ks, key, lease=n)
                elif kind == "delete":
                    ks.deleteRange(pb.DeleteRangeRequest(key=key, range_end=b"\x00" if n else b""))
                elif kind == "revoke":
                    revoke(ks, n)
                elif kind == "grant":
                    grant(ks, n)
                elif kind == "txn":
                    ks.txn(pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(
                        key=key, ignore_lease=True, value=b"t"))]))
                else:
                    ks.compact(pb.CompactionRequest(revision=ks.revision - n))
            except errors.EtcdError:
                pass
            self.assertAttachments(ks)
        other = KeySpace()
        other.restore(ks.snapshot())
        self.assertEqual(other.leases(), ks.leases())

    def assertAttachments(self, ks):
        live = ks.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00")).kvs
        for info in ks.leases():
            self.assertEqual(info.keys, [kv.key for kv in live if kv.lease == info.id])
        known = {info.id for info in ks.leases()}
        for kv in live:
            self.assertTrue(kv.lease == 0 or kv.lease in known)
