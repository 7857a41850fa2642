# -*- test-case-name: raftmux.test.test_etcd_lease -*-
"""
The Lease service and the lessor (L{raftmux.etcd.lease},
L{raftmux.etcd.lessor}) over the fake node and a deterministic clock:
grants, revokes, expiry decided by the leader only and applied through
the log, renewals, TTLs reset by a leader change, checkpoints, the
keep-alive stream, followers asking the leader, and etcd's errors.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.lessor import ILeaseForwarder
from raftmux.etcd.testing import FakeEtcdNode, FakeResponder
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import errors
from raftmux.mvcc.errors import Code

T0 = 1700000000.0
LEADER = 0x1111


@implementer(ILeaseForwarder)
class FakeForwarder:
    """The leader as seen from a follower: canned answers, calls recorded."""

    def __init__(self):
        self.calls = []
        self.ttl = 42
        self.error = None

    def renew(self, leaderID, leaseID):
        self.calls.append(("renew", leaderID, leaseID))
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(self.ttl)

    def timeToLive(self, leaderID, request):
        self.calls.append(("timeToLive", leaderID, request.ID))
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(pb.LeaseTimeToLiveResponse(ID=request.ID, TTL=7, grantedTTL=9))


class LeaseTestCase(SynchronousTestCase):

    isLeader = True
    options = {}

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeEtcdNode(self.clock, isLeader=self.isLeader, leaderID=LEADER)
        self.forwarder = FakeForwarder()
        self.api = EtcdAPI(self.node, self.clock, leaseForwarder=self.forwarder, **self.options)
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.lease = self.api.lease

    def grant(self, ttl, id=0):
        return self.successResultOf(self.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=ttl, ID=id)))

    def put(self, key, leaseID):
        self.successResultOf(self.api.kv.Put(pb.PutRequest(key=key, value=b"v", lease=leaseID)))

    def exists(self, leaseID):
        return self.node.keySpace.lease(leaseID) is not None

    def revokes(self):
        return [r.lease_revoke.ID for r in self.node.proposed if r.HasField("lease_revoke")]

    def ttl(self, leaseID, keys=False):
        return self.successResultOf(self.lease.LeaseTimeToLive(
            pb.LeaseTimeToLiveRequest(ID=leaseID, keys=keys)))

    def assertEtcdError(self, d, cls):
        failure = self.failureResultOf(d, errors.EtcdError)
        self.assertIsInstance(failure.value, cls)
        self.assertEqual((failure.value.code, failure.value.message), (cls.code, cls.message))
        return failure.value


class GrantRevokeTests(LeaseTestCase):

    def test_grantAutoID(self):
        resp = self.grant(60)
        self.assertEqual(resp.TTL, 60)
        self.assertEqual(resp.ID >> 48, self.node.memberID & 0x7FFF)
        self.assertEqual(resp.header.member_id, self.node.memberID)
        self.assertTrue(self.exists(resp.ID))
        self.assertNotEqual(self.grant(60).ID, resp.ID)

    def test_grantErrors(self):
        self.grant(60, id=5)
        e = self.assertEtcdError(self.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60, ID=5)),
                                 errors.ErrLeaseExist)
        self.assertEqual((e.code, e.message),
                         (Code.FAILED_PRECONDITION, "etcdserver: lease already exists"))
        e = self.assertEtcdError(self.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=9000000001)),
                                 errors.ErrLeaseTTLTooLarge)
        self.assertEqual(e.code, Code.OUT_OF_RANGE)

    def test_minimumTTL(self):
        """etcd raises a short TTL to its minimum (2 s with default flags)."""
        self.assertEqual(self.grant(1).TTL, 2)
        self.assertEqual(self.grant(-5).TTL, 2)

    def test_revoke(self):
        leaseID = self.grant(60).ID
        self.put(b"a", leaseID)
        self.put(b"b", leaseID)
        resp = self.successResultOf(self.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=leaseID)))
        self.assertEqual(resp.header.revision, 4)
        self.assertIsNone(self.node.keySpace.get(b"a"))
        e = self.assertEtcdError(self.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=leaseID)),
                                 errors.ErrLeaseNotFound)
        self.assertEqual((e.code, e.message),
                         (Code.NOT_FOUND, "etcdserver: requested lease not found"))

    def test_leases(self):
        a = self.grant(60).ID
        self.clock.advance(1)
        b = self.grant(30).ID
        resp = self.successResultOf(self.lease.LeaseLeases(pb.LeaseLeasesRequest()))
        self.assertEqual([x.ID for x in resp.leases], [b, a])
        self.assertEqual(resp.header.revision, 1)


class ExpiryTests(LeaseTestCase):

    def test_expiresThroughTheLog(self):
        """The leader proposes the revoke once the TTL is over; the keys go."""
        leaseID = self.grant(5).ID
        self.put(b"a", leaseID)
        self.clock.pump([0.5] * 9)
        self.assertTrue(self.exists(leaseID))
        self.clock.pump([0.5] * 2)
        self.assertEqual(self.revokes(), [leaseID])
        self.assertFalse(self.exists(leaseID))
        self.assertIsNone(self.node.keySpace.get(b"a"))

    def test_renewExtends(self):
        leaseID = self.grant(5).ID
        self.clock.pump([0.5] * 8)
        self.assertEqual(self.successResultOf(self.api.lessor.renew(leaseID)), 5)
        self.clock.pump([0.5] * 9)
        self.assertTrue(self.exists(leaseID))
        self.clock.pump([0.5] * 2)
        self.assertFalse(self.exists(leaseID))

    def test_timeToLive(self):
        leaseID = self.grant(10).ID
        self.put(b"k2", leaseID)
        self.put(b"k1", leaseID)
        self.clock.advance(3.5)
        resp = self.ttl(leaseID, keys=True)
        self.assertEqual((resp.ID, resp.TTL, resp.grantedTTL), (leaseID, 6, 10))
        self.assertEqual(list(resp.keys), [b"k1", b"k2"])
        self.assertEqual(resp.header.member_id, self.node.memberID)
        self.assertEqual(list(self.ttl(leaseID).keys), [])

    def test_timeToLiveUnknown(self):
        """etcd answers TTL -1, not an error, for an unknown lease."""
        resp = self.ttl(12345)
        self.assertEqual((resp.ID, resp.TTL), (12345, -1))
        self.assertEqual(resp.header.cluster_id, self.node.clusterID)

    def test_failedRevokeIsRetried(self):
        """A revoke that did not get applied is proposed again 3 s later."""
        leaseID = self.grant(2).ID
        self.node.proposalError = errors.ErrTimeout()
        self.clock.pump([0.5] * 5)
        self.assertEqual(self.revokes(), [leaseID])
        self.node.proposalError = None
        self.clock.pump([0.5] * 4)
        self.assertEqual(self.revokes(), [leaseID])
        self.clock.pump([0.5])
        self.assertEqual(self.revokes(), [leaseID, leaseID])
        self.assertFalse(self.exists(leaseID))

    def test_revokesInFlightBounded(self):
        """At most 16 revokes in flight, at most 500 found per tick."""
        ids = [self.grant(2).ID for _ in range(600)]
        self.node.holdProposals = True
        self.clock.pump([0.5] * 5)
        self.assertEqual(len(self.revokes()), 16)
        self.node.applyPending()
        self.assertEqual(len(self.revokes()), 32)
        for _ in range(60):
            self.node.applyPending()
            self.clock.advance(0.5)
        self.assertEqual(sorted(self.revokes()), sorted(ids))
        self.assertEqual(self.node.keySpace.leases(), [])

    def test_renewOfExpiredWaitsForRevoke(self):
        """An expired lease's keep-alive waits for its revoke: then not found."""
        leaseID = self.grant(2).ID
        self.node.holdProposals = True
        self.clock.pump([0.5] * 5)
        d = self.api.lessor.renew(leaseID)
        self.assertNoResult(d)
        self.node.applyPending()
        self.failureResultOf(d, errors.ErrLeaseNotFound)


class FollowerTests(LeaseTestCase):

    isLeader = False

    def test_followerNeverRevokes(self):
        """Only the leader decides expiry."""
        leaseID = self.grant(2).ID
        self.clock.pump([0.5] * 40)
        self.assertEqual(self.revokes(), [])
        self.assertTrue(self.exists(leaseID))

    def test_newLeaderGivesFullTTL(self):
        """
        A leader change resets every lease: it expires the election timeout
        plus its full TTL after the new leader applied its term's first entry.
        """
        leaseID = self.grant(10).ID
        self.clock.advance(8)
        self.node.becomeLeader()
        self.clock.pump([0.5] * 21)
        self.assertTrue(self.exists(leaseID))
        self.clock.pump([0.5] * 2)
        self.assertFalse(self.exists(leaseID))

    def test_renewAsksLeader(self):
        leaseID = self.grant(10).ID
        self.assertEqual(self.successResultOf(self.api.lessor.renew(leaseID)), 42)
        self.assertEqual(self.forwarder.calls, [("renew", LEADER, leaseID)])
        resp = self.ttl(leaseID)
        self.assertEqual((resp.TTL, resp.grantedTTL), (7, 9))

    def test_leaderSaysNotFound(self):
        self.forwarder.error = errors.ErrLeaseNotFound()
        self.assertEqual(self.ttl(5).TTL, -1)

    def test_noLeader(self):
        """With no leader known, etcd answers "no leader" after its request timeout."""
        self.node.stepDown(0)
        d = self.api.lessor.renew(5)
        self.clock.pump([1.0] * 6)
        self.assertNoResult(d)
        self.clock.pump([1.0] * 2)
        e = self.assertEtcdError(d, errors.ErrNoLeader)
        self.assertEqual(e.code, Code.UNAVAILABLE)

    def test_leaderUnreachable(self):
        """Asking the leader fails until the timeout: ErrTimeout."""
        self.forwarder.error = ConnectionRefusedError()
        d = self.api.lessor.renew(5)
        self.clock.pump([1.0] * 8)
        self.assertEtcdError(d, errors.ErrTimeout)
        self.assertGreater(len(self.forwarder.calls), 3)


class PromotionTests(LeaseTestCase):

    def test_leaderNotYetPromoted(self):
        """Elected but not yet promoted: a keep-alive waits for the promotion."""
        leaseID = self.grant(10).ID
        self.api.lessor.demote()
        d = self.api.lessor.renew(leaseID)
        self.assertNoResult(d)
        self.api.lessor.leadershipChanged(True)
        self.assertEqual(self.successResultOf(d), 10)

    def test_waitAppliedTimeout(self):
        leaseID = self.grant(10).ID
        self.node.holdApplied = True
        d = self.api.lessor.renew(leaseID)
        self.clock.advance(1)
        e = self.assertEtcdError(d, errors.ErrTimeoutWaitAppliedIndex)
        self.assertEqual(e.message, "etcdserver: request timed out, waiting for the applied"
                                    " index took too long")

    def test_spreadOnPromote(self):
        """etcd's rate limit: of 1200 leases expiring together, 750 in the first second."""
        for _ in range(1200):
            self.grant(10)
        self.node.stepDown(LEADER)
        self.node.becomeLeader()
        lessor = self.api.lessor
        remaining = sorted(lessor.remaining(i.id) for i in self.node.keySpace.leases())
        first = remaining[0]
        self.assertEqual(first, 11)
        self.assertEqual(sum(1 for r in remaining if r < first + 1.0), 750)
        self.assertLess(remaining[-1], first + 2.0)

    def test_restore(self):
        """Leases gone in a restored snapshot stop; new ones start their TTL."""
        old = self.grant(10).ID
        other = FakeEtcdNode(self.clock)
        other.keySpace.leaseGrant(pb.LeaseGrantRequest(ID=77, TTL=20))
        self.node.restore(other.keySpace.snapshot())
        self.assertEqual(self.api.lessor.remaining(old), float("inf"))
        self.assertEqual(self.api.lessor.remaining(77), 20)


class CheckpointTests(LeaseTestCase):

    options = {"leaseCheckpointInterval": 5}

    def test_checkpointKeepsRemainingTTL(self):
        """With checkpoints, a new leader gives the checkpointed TTL, not the full one."""
        leaseID = self.grant(30).ID
        self.clock.pump([0.5] * 11)
        [cp] = [r.lease_checkpoint for r in self.node.proposed if r.HasField("lease_checkpoint")]
        self.assertEqual((cp.checkpoints[0].ID, cp.checkpoints[0].remaining_TTL), (leaseID, 25))
        self.assertEqual(self.node.keySpace.lease(leaseID).remainingTTL, 25)
        self.node.stepDown(LEADER)
        self.node.becomeLeader()
        self.assertEqual(self.api.lessor.remaining(leaseID), 26)

    def test_renewClearsCheckpoint(self):
        leaseID = self.grant(30).ID
        self.clock.pump([0.5] * 11)
        self.assertEqual(self.successResultOf(self.api.lessor.renew(leaseID)), 30)
        self.assertEqual(self.node.keySpace.lease(leaseID).remainingTTL, 0)
        self.assertEqual(self.api.lessor.remaining(leaseID), 30)

    def test_shortLeasesNotCheckpointed(self):
        self.grant(4)
        self.clock.pump([0.5] * 7)
        self.assertFalse([r for r in self.node.proposed if r.HasField("lease_checkpoint")])


class KeepAliveTests(LeaseTestCase):

    def open(self):
        responder = FakeResponder()
        return responder, self.lease.LeaseKeepAlive(responder)

    def test_answersInOrder(self):
        a = self.grant(10).ID
        b = self.grant(20).ID
        r, s = self.open()
        for leaseID in (a, 999, b):
            s.receive(pb.LeaseKeepAliveRequest(ID=leaseID))
        out = r.take()
        self.assertEqual([(m.ID, m.TTL) for m in out], [(a, 10), (999, 0), (b, 20)])
        self.assertEqual(out[0].header.revision, 1)
        self.assertEqual(out[0].header.member_id, self.node.memberID)
        s.requestsDone()
        self.assertTrue(r.finished)
        self.assertIsNone(r.error)

    def test_oneAtATime(self):
        """A request waits for the one before; half-close finishes after both."""
        a = self.grant(10).ID
        self.node.holdApplied = True
        r, s = self.open()
        s.receive(pb.LeaseKeepAliveRequest(ID=a))
        s.receive(pb.LeaseKeepAliveRequest(ID=a))
        s.requestsDone()
        self.assertEqual(r.messages, [])
        self.node.releaseApplied()
        self.assertEqual(len(r.messages), 1)
        self.node.releaseApplied()
        self.assertEqual(len(r.messages), 2)
        self.assertTrue(r.finished)

    def test_errorEndsStream(self):
        """An error other than "not found" ends the rpc with it."""
        a = self.grant(10).ID
        self.node.holdApplied = True
        r, s = self.open()
        s.receive(pb.LeaseKeepAliveRequest(ID=a))
        self.clock.advance(1)
        self.assertTrue(r.finished)
        self.assertIsInstance(r.error, errors.ErrTimeoutWaitAppliedIndex)
        s.receive(pb.LeaseKeepAliveRequest(ID=a))

    def test_cancelDropsAnswer(self):
        a = self.grant(10).ID
        self.node.holdApplied = True
        r, s = self.open()
        s.receive(pb.LeaseKeepAliveRequest(ID=a))
        s.cancel()
        self.node.releaseApplied()
        self.assertEqual((r.messages, r.finished), ([], False))

    def test_pausedOutput(self):
        """Nothing is sent while paused; requests pile up, then the client is stopped."""
        a = self.grant(10).ID
        r, s = self.open()
        r.pause()
        for _ in range(20):
            s.receive(pb.LeaseKeepAliveRequest(ID=a))
        self.assertEqual(r.messages, [])
        self.assertTrue(r.inboundPaused)
        r.resume()
        self.assertEqual(len(r.messages), 20)
        self.assertFalse(r.inboundPaused)

    def test_learnerRefused(self):
        self.node.setLearner(True)
        r, s = self.open()
        self.assertTrue(r.finished)
        self.assertIsInstance(r.error, errors.ErrNotSupportedForLearner)
        s.receive(pb.LeaseKeepAliveRequest(ID=1))
