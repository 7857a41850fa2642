# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
The KV service (L{raftmux.etcd.kv}) over the fake node: etcd's checks
before proposing, linearizable and serializable reads, read-only txns
answered locally, the proposal envelope (request IDs, size limit, apply
gap), headers, learners, and etcd's exact errors.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.idgen import IDGenerator
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import errors
from raftmux.mvcc.errors import Code

T0 = 1700000000.0


def opPut(key, value=b""):
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))


def opRange(key, **kw):
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, **kw))


class KVTestCase(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeEtcdNode(self.clock)
        self.api = EtcdAPI(self.node, self.clock, **self.apiOptions())
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.kv = self.api.kv

    def apiOptions(self):
        return {}

    def put(self, key, value=b"v", **kw):
        return self.successResultOf(self.kv.Put(pb.PutRequest(key=key, value=value, **kw)))

    def assertEtcdError(self, d, cls):
        """``d`` failed with etcd's ``cls``: same code and message."""
        failure = self.failureResultOf(d, errors.EtcdError)
        self.assertIsInstance(failure.value, cls)
        self.assertEqual((failure.value.code, failure.value.message), (cls.code, cls.message))
        return failure.value


class HeaderTests(KVTestCase):

    def test_putHeader(self):
        """A Put's header carries the IDs, the term and the new revision."""
        resp = self.put(b"a")
        self.assertEqual(resp.header, pb.ResponseHeader(
            cluster_id=self.node.clusterID, member_id=self.node.memberID,
            revision=2, raft_term=2))

    def test_rangeHeaderFollowsTerm(self):
        """The header's raft_term is the node's current term."""
        self.put(b"a")
        self.node.becomeLeader()
        resp = self.successResultOf(self.kv.Range(pb.RangeRequest(key=b"a")))
        self.assertEqual((resp.header.raft_term, resp.header.revision), (3, 2))
        self.assertEqual(resp.kvs[0].value, b"v")

    def test_nestedTxnHeaders(self):
        """A txn's nested responses keep the key space's revision-only headers."""
        self.put(b"a")
        resp = self.successResultOf(self.kv.Txn(pb.TxnRequest(
            success=[opPut(b"b"), opRange(b"a")])))
        self.assertEqual(resp.header.revision, 3)
        self.assertEqual(resp.header.member_id, self.node.memberID)
        self.assertEqual(resp.responses[1].response_range.header,
                         pb.ResponseHeader(revision=3))


class CheckTests(KVTestCase):
    """etcd's gRPC-layer checks refuse before anything is proposed."""

    def test_rangeEmptyKey(self):
        e = self.assertEtcdError(self.kv.Range(pb.RangeRequest()), errors.ErrEmptyKey)
        self.assertEqual((e.code, e.message),
                         (Code.INVALID_ARGUMENT, "etcdserver: key is not provided"))

    def test_putChecks(self):
        self.assertEtcdError(self.kv.Put(pb.PutRequest(value=b"x")), errors.ErrEmptyKey)
        self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a", value=b"x", ignore_value=True)),
                             errors.ErrValueProvided)
        self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a", lease=5, ignore_lease=True)),
                             errors.ErrLeaseProvided)
        self.assertEqual(self.node.proposed, [])

    def test_deleteEmptyKey(self):
        self.assertEtcdError(self.kv.DeleteRange(pb.DeleteRangeRequest()), errors.ErrEmptyKey)
        self.assertEqual(self.node.proposed, [])

    def test_txnChecks(self):
        self.assertEtcdError(self.kv.Txn(pb.TxnRequest(success=[opPut(b"x"), opPut(b"x")])),
                             errors.ErrDuplicateKey)
        self.assertEtcdError(self.kv.Txn(pb.TxnRequest(success=[pb.RequestOp()])),
                             errors.ErrKeyNotFound)
        self.assertEtcdError(self.kv.Txn(pb.TxnRequest(compare=[pb.Compare()])),
                             errors.ErrEmptyKey)
        self.assertEqual(self.node.proposed, [])

    def test_keySpaceErrors(self):
        """Errors the apply gives come back with etcd's code and message."""
        e = self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a", lease=77)),
                                 errors.ErrLeaseNotFound)
        self.assertEqual((e.code, e.message),
                         (Code.NOT_FOUND, "etcdserver: requested lease not found"))
        self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a", ignore_value=True)),
                             errors.ErrKeyNotFound)
        self.assertEtcdError(self.kv.Range(pb.RangeRequest(key=b"a", revision=5)),
                             errors.ErrFutureRev)


class TooManyOpsTests(KVTestCase):

    def apiOptions(self):
        return {"maxTxnOps": 2}

    def test_maxTxnOps(self):
        """--max-txn-ops counts the longest of compares, success and failure."""
        self.successResultOf(self.kv.Txn(pb.TxnRequest(success=[opPut(b"a"), opPut(b"b")])))
        e = self.assertEtcdError(self.kv.Txn(pb.TxnRequest(
            success=[opPut(b"a"), opPut(b"b"), opPut(b"c")])), errors.ErrTooManyOps)
        self.assertEqual(e.message, "etcdserver: too many operations in txn request")


class ReadTests(KVTestCase):

    def test_linearizableRangeWaitsForReadIndex(self):
        """A default Range answers only after the node's read index."""
        self.put(b"a")
        self.node.holdReads = True
        d = self.kv.Range(pb.RangeRequest(key=b"a"))
        self.assertNoResult(d)
        self.put(b"a", b"later")
        self.node.releaseReads()
        self.assertEqual(self.successResultOf(d).kvs[0].value, b"later")

    def test_serializableRangeIsLocal(self):
        self.put(b"a")
        self.node.holdReads = True
        resp = self.successResultOf(self.kv.Range(pb.RangeRequest(key=b"a", serializable=True)))
        self.assertEqual(resp.kvs[0].value, b"v")

    def test_readIndexError(self):
        """The node's read error is the client's."""
        self.node.readError = errors.ErrTimeout()
        self.assertEtcdError(self.kv.Range(pb.RangeRequest(key=b"a")), errors.ErrTimeout)

    def test_readOnlyTxnIsNotProposed(self):
        """A txn that only reads is answered locally, after the read index."""
        self.put(b"a")
        proposed = len(self.node.proposed)
        self.node.holdReads = True
        d = self.kv.Txn(pb.TxnRequest(success=[opRange(b"a")]))
        self.assertNoResult(d)
        self.node.releaseReads()
        resp = self.successResultOf(d)
        self.assertTrue(resp.succeeded)
        self.assertEqual(resp.responses[0].response_range.kvs[0].value, b"v")
        self.assertEqual(len(self.node.proposed), proposed)

    def test_serializableTxn(self):
        """Every range serializable: no read index either."""
        self.put(b"a")
        self.node.holdReads = True
        resp = self.successResultOf(self.kv.Txn(pb.TxnRequest(
            success=[opRange(b"a", serializable=True)])))
        self.assertEqual(len(resp.responses), 1)

    def test_readOnlyTxnErrors(self):
        """A local txn's range errors are etcd's."""
        self.assertEtcdError(self.kv.Txn(pb.TxnRequest(success=[opRange(b"a", revision=9)])),
                             errors.ErrFutureRev)

    def test_writingTxnIsProposed(self):
        self.successResultOf(self.kv.Txn(pb.TxnRequest(success=[opPut(b"a")])))
        self.assertTrue(self.node.proposed[-1].HasField("txn"))


class CompactTests(KVTestCase):

    def test_compact(self):
        for i in range(4):
            self.put(b"k%d" % (i,))
        resp = self.successResultOf(self.kv.Compact(pb.CompactionRequest(revision=3)))
        self.assertEqual(resp.header.revision, 5)
        e = self.assertEtcdError(self.kv.Compact(pb.CompactionRequest(revision=3)),
                                 errors.ErrCompacted)
        self.assertEqual((e.code, e.message), (Code.OUT_OF_RANGE,
                         "etcdserver: mvcc: required revision has been compacted"))
        self.assertEtcdError(self.kv.Compact(pb.CompactionRequest(revision=50)),
                             errors.ErrFutureRev)
        self.assertEtcdError(self.kv.Range(pb.RangeRequest(key=b"k0", revision=2)),
                             errors.ErrCompacted)


class ProposalTests(KVTestCase):

    def apiOptions(self):
        return {"maxRequestBytes": 200}

    def test_requestIDs(self):
        """Each proposal carries a fresh ID with the member's 16-bit prefix."""
        self.put(b"a")
        self.put(b"b")
        ids = [r.header.ID for r in self.node.proposed]
        self.assertEqual(ids[1], ids[0] + 1)
        self.assertEqual(ids[0] >> 48, self.node.memberID & 0xFFFF)

    def test_requestTooLarge(self):
        """An encoded proposal over --max-request-bytes is refused, unproposed."""
        e = self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a", value=b"x" * 200)),
                                 errors.ErrRequestTooLarge)
        self.assertEqual((e.code, e.message),
                         (Code.INVALID_ARGUMENT, "etcdserver: request is too large"))
        self.assertEqual(self.node.proposed, [])
        self.put(b"a", b"x" * 150)

    def test_tooManyRequests(self):
        """Refused when the member is more than 5000 entries behind applying."""
        self.node.commitLag = 5001
        e = self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a")), errors.ErrTooManyRequests)
        self.assertEqual(e.code, Code.RESOURCE_EXHAUSTED)
        self.node.commitLag = 5000
        self.put(b"a")

    def test_proposalFailure(self):
        """A proposal the node fails (no leader, timeout) fails the rpc."""
        self.node.proposalError = errors.ErrTimeoutDueToLeaderFail()
        self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a")),
                             errors.ErrTimeoutDueToLeaderFail)

    def test_heldProposal(self):
        """The answer waits for the apply."""
        self.node.holdProposals = True
        d = self.kv.Put(pb.PutRequest(key=b"a"))
        self.assertNoResult(d)
        self.node.applyPending()
        self.assertEqual(self.successResultOf(d).header.revision, 2)


class LearnerTests(KVTestCase):
    """A learner serves serializable ranges and Status only."""

    def setUp(self):
        KVTestCase.setUp(self)
        self.put(b"a")
        self.node.setLearner(True)

    def test_refused(self):
        e = self.assertEtcdError(self.kv.Range(pb.RangeRequest(key=b"a")),
                                 errors.ErrNotSupportedForLearner)
        self.assertEqual((e.code, e.message),
                         (Code.UNAVAILABLE, "etcdserver: rpc not supported for learner"))
        self.assertEtcdError(self.kv.Put(pb.PutRequest(key=b"a")),
                             errors.ErrNotSupportedForLearner)
        self.assertEtcdError(self.api.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=5)),
                             errors.ErrNotSupportedForLearner)
        self.assertEtcdError(self.api.cluster.MemberList(pb.MemberListRequest()),
                             errors.ErrNotSupportedForLearner)

    def test_allowed(self):
        resp = self.successResultOf(self.kv.Range(pb.RangeRequest(key=b"a", serializable=True)))
        self.assertEqual(resp.count, 1)
        status = self.successResultOf(self.api.maintenance.Status(pb.StatusRequest()))
        self.assertTrue(status.isLearner)


class IDGeneratorTests(SynchronousTestCase):

    def test_etcdLayout(self):
        """Member bits, then milliseconds, then a counter, as etcd's idutil."""
        ids = IDGenerator(0x1234ABCD, 1700000000.123)
        millis = 1700000000123
        expected = (0xABCD << 48) | ((millis & ((1 << 40) - 1)) << 8)
        self.assertEqual(ids.next(), expected + 1)
        self.assertEqual(ids.next(), expected + 2)

    def test_leaseIDsPositive(self):
        ids = IDGenerator(0xFFFF, 1.0)
        for _ in range(3):
            i = ids.nextLeaseID()
            self.assertTrue(0 < i < 1 << 63)
