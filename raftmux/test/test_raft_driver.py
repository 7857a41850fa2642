# -*- test-case-name: raftmux.test.test_raft_driver -*-
"""Tests for ``raftmux.raft.driver.RaftDriver`` on a ``task.Clock``."""

import os
import random

from twisted.internet import defer, reactor
from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from raftmux.raft.config import Config
from raftmux.raft.core import ProposalDropped, StateLeader
from raftmux.raft.diskstorage import DiskStorage
from raftmux.raft.driver import (
    DriverStopped,
    NotLeader,
    NullStateMachine,
    ProposalOverwritten,
    ProposalTimeout,
    RaftDriver,
    RemovedMemberError,
)
from raftmux.raft.interfaces import IRaftObserver
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.rawnode import RawNode
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE, SNAPSHOT_FINISH, IRaft, ITransporter
from raftmux.rafthttp.testing import waitFor
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    EntryConfChange,
    Message,
    MsgAppResp,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgSnap,
    MsgVote,
    MsgVoteResp,
)

TICK = 0.1


def makeNode(id, peers, storage, seed=None, **kw):
    cfg = Config(id=id, storage=storage, peers=peers, electionTick=10, heartbeatTick=1,
                 random=random.Random(seed if seed is not None else id), **kw)
    return RawNode(cfg)


def message(type, to, frm, term, **kw):
    m = Message(type=type, to=to, term=term, **kw)
    setattr(m, "from", frm)
    return m


@implementer(ITransporter)
class NoPeers:
    """An ``ITransporter`` with no peers that drops everything."""

    def send(self, messages):
        pass

    def sendSnapshot(self, message, databaseFile):
        return succeed(False)

    def hasPeer(self, id):
        return False

    def removePeer(self, id):
        raise KeyError(id)


class RecordingTransport(NoPeers):
    """Records each ``send`` call; ``events`` may be shared with a storage."""

    def __init__(self, events=None):
        self.sent = []
        self.events = events if events is not None else []

    def send(self, messages):
        self.sent.append(list(messages))
        self.events.append(("send", [m.type for m in messages]))


class Applier(NullStateMachine):
    """An ``IStateMachine`` whose ``applyEntry`` is ``apply(entry)``."""

    def __init__(self, apply):
        self.apply = apply

    def applyEntry(self, entry):
        return self.apply(entry)


class RecordingStorage(MemoryStorage):
    """A ``MemoryStorage`` whose ``save`` records itself in ``events``."""

    def __init__(self, events):
        MemoryStorage.__init__(self)
        self.events = events

    def save(self, hardState, entries):
        self.events.append(("save", hardState, [(e.Index, e.Term) for e in entries]))
        if hardState is not None:
            self.setHardState(hardState)
        if entries:
            self.append(entries)


def turn(clock, n=5):
    """Run what is due now (the Ready calls), a few times over."""
    for _ in range(n):
        clock.advance(0)


class SingleNodeTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.applied = []

    def startDriver(self, storage, **kw):
        self.storage = storage
        self.node = makeNode(1, [1], storage, **kw)
        self.transport = RecordingTransport()
        self.driver = RaftDriver(self.node, storage, self.transport, self.clock,
                                 stateMachine=Applier(self.apply), tickInterval=TICK)
        self.driver.start()
        self.addCleanup(self.driver.stop)
        return self.driver

    def apply(self, entry):
        self.applied.append((entry.Index, entry.Data, self.pending.called))

    def electAndPropose(self):
        driver = self.driver
        verifyObject(IRaft, driver)
        # Randomized timeout in [10, 20) ticks: not before 10.
        for _ in range(9):
            self.clock.advance(TICK)
        self.assertNotEqual(self.node.raft.state, StateLeader)
        for _ in range(11):
            self.clock.advance(TICK)
        self.assertEqual(self.node.raft.state, StateLeader)
        self.pending = driver.propose(b"hello")
        self.assertFalse(self.pending.called)
        turn(self.clock)
        entry = self.successResultOf(self.pending)
        self.assertEqual(entry.Data, b"hello")
        # apply saw the entry before the Deferred fired.
        self.assertEqual(self.applied, [(entry.Index, b"hello", False)])
        self.assertEqual(driver.applied, entry.Index)
        self.assertEqual(self.storage.lastIndex(), entry.Index)
        self.assertEqual(self.storage.initialState()[0].commit, entry.Index)
        return entry

    def test_electsAndCommitsMemory(self):
        self.startDriver(MemoryStorage())
        self.electAndPropose()

    def test_electsAndCommitsDisk(self):
        path = self.mktemp()
        storage = DiskStorage(path)
        self.startDriver(storage)
        entry = self.electAndPropose()
        self.driver.stop()
        storage.close()
        reopened = DiskStorage(path)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.entries(entry.Index, entry.Index + 1)[0].Data, b"hello")
        self.assertEqual(reopened.initialState()[0].commit, entry.Index)

    def test_readIndexAfterApply(self):
        self.startDriver(MemoryStorage())
        entry = self.electAndPropose()
        d = self.driver.readIndex()
        seen = []
        d.addCallback(lambda index: seen.append((index, self.driver.applied)))
        turn(self.clock)
        [(index, applied)] = seen
        self.assertEqual(index, entry.Index)
        self.assertGreaterEqual(applied, index)

    def test_readIndexWaitsForApply(self):
        """
        A read state whose index is past what this Ready applies (one
        committed entry per Ready here) fires only once that index is.
        """
        self.startDriver(MemoryStorage(), maxCommittedSizePerReady=0)
        self.electAndPropose()
        order = []
        self.driver.stateMachine.apply = lambda entry: order.append((entry.Index, list(seen)))
        # Proposals of one turn are appended together when the Ready runs.
        last = self.node.raft.raftLog.lastIndex() + 3
        for data in (b"a", b"b", b"c"):
            self.driver.propose(data)
        seen = []
        self.driver.readIndex().addCallback(
            lambda index: seen.append((index, self.driver.applied)))
        turn(self.clock)
        # Not fired before the last entry was applied, fired right after.
        self.assertEqual(order, [(last - 2, []), (last - 1, []), (last, [])])
        self.assertEqual(seen, [(last, last)])

    def test_proposalsOfOneTurnShareOneAppend(self):
        """
        Proposals and reads made in one reactor turn are stepped together:
        one append (and so one MsgApp per follower), one ReadIndex.
        """
        self.startDriver(MemoryStorage())
        self.electAndPropose()
        before = self.node.raft.raftLog.lastIndex()
        ds = [self.driver.proposeForResult(b"v%d" % (i,)) for i in range(10)]
        reads = [self.driver.readIndex() for _ in range(5)]
        self.assertEqual(self.node.raft.raftLog.lastIndex(), before)
        turn(self.clock)
        results = [self.successResultOf(d) for d in ds]
        self.assertEqual([e.Index for e, _ in results], list(range(before + 1, before + 11)))
        self.assertEqual([e.Data for e, _ in results], [b"v%d" % (i,) for i in range(10)])
        self.assertEqual(len({self.successResultOf(r) for r in reads}), 1)
        self.assertEqual(self.driver._readSeq, 1)

    def test_proposeNotLeader(self):
        self.startDriver(MemoryStorage())
        self.failureResultOf(self.driver.propose(b"x"), NotLeader)

    def test_stopCancelsTimersAndFails(self):
        self.startDriver(MemoryStorage())
        for _ in range(20):
            self.clock.advance(TICK)
        # A read that cannot complete yet (no turn has run).
        d = self.driver.readIndex()
        self.driver.stop()
        self.failureResultOf(d, DriverStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.driver.propose(b"x"), DriverStopped)


class OrderTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.storage = RecordingStorage(self.events)
        self.node = makeNode(1, [1, 2, 3], self.storage)
        self.transport = RecordingTransport(self.events)
        self.driver = RaftDriver(self.node, self.storage, self.transport, self.clock,
                                 tickInterval=TICK)
        self.driver.start()
        self.addCleanup(self.driver.stop)

    def test_persistBeforeSend(self):
        """
        The HardState with the vote is saved before the MsgVotes leave; the
        new leader's entry is saved before its MsgApps leave.
        """
        for _ in range(20):
            self.clock.advance(TICK)
        self.assertEqual(self.events[0][0], "save")
        self.assertEqual((self.events[0][1].term, self.events[0][1].vote), (1, 1))
        self.assertEqual(self.events[1], ("send", [MsgVote, MsgVote]))
        del self.events[:]
        self.successResultOf(self.driver.process(
            message(MsgVoteResp, 1, 2, 1)))
        turn(self.clock)
        self.assertEqual(self.node.raft.state, StateLeader)
        kinds = [e[0] for e in self.events]
        self.assertEqual(kinds[:2], ["save", "send"])
        self.assertEqual(self.events[0][2], [(1, 1)])

    def test_persistSendApply(self):
        """A Ready that commits: save, then send, then apply, then advance."""
        for _ in range(20):
            self.clock.advance(TICK)
        self.successResultOf(self.driver.process(message(MsgVoteResp, 1, 2, 1)))
        turn(self.clock)
        self.driver.stateMachine = Applier(lambda e: self.events.append(("apply", e.Index)))
        d = self.driver.propose(b"x")
        turn(self.clock)
        del self.events[:]
        self.successResultOf(self.driver.process(
            message(MsgAppResp, 1, 2, 1, index=2)))
        turn(self.clock)
        self.assertEqual([e[0] for e in self.events], ["save", "send", "apply"])
        self.assertEqual(self.events[0][1].commit, 2)
        self.assertEqual(self.events[2], ("apply", 2))
        self.assertEqual(self.successResultOf(d).Index, 2)

    def test_persistFailureStops(self):
        """A failing save stops the driver; nothing of that Ready is sent."""
        def broken(hardState, entries):
            self.events.append(("save-failed",))
            raise OSError("disk gone")
        self.storage.save = broken
        d = self.driver.readIndex()
        for _ in range(20):
            self.clock.advance(TICK)
        self.assertEqual(self.events, [("save-failed",)])
        self.assertFalse(self.driver.running)
        self.assertIsInstance(self.driver.error.value, OSError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.failureResultOf(d, DriverStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_coalesced(self):
        """Messages stepped in one reactor turn give one Ready, one send."""
        for i in range(3):
            self.successResultOf(self.driver.process(
                message(MsgHeartbeat, 1, 2, 1, context=b"c%d" % (i,))))
        self.assertEqual(self.transport.sent, [])
        turn(self.clock)
        self.assertEqual(len(self.transport.sent), 1)
        self.assertEqual([m.type for m in self.transport.sent[0]], [MsgHeartbeatResp] * 3)
        self.assertEqual([m.context for m in self.transport.sent[0]], [b"c0", b"c1", b"c2"])

    def test_backPressure(self):
        """Past ``maxBatch`` stepped messages, process waits for the Ready."""
        self.driver.maxBatch = 2
        first = self.driver.process(message(MsgHeartbeat, 1, 2, 1))
        self.successResultOf(first)
        second = self.driver.process(message(MsgHeartbeat, 1, 2, 1))
        self.assertNoResult(second)
        turn(self.clock)
        self.successResultOf(second)
        self.assertEqual(len(self.transport.sent), 1)

    def test_reportsForwarded(self):
        calls = []
        self.node.reportUnreachable = lambda id: calls.append(("unreachable", id))
        self.node.reportSnapshot = lambda id, failed=False: calls.append(
            ("snapshot", id, failed))
        self.driver.reportUnreachable(2)
        self.driver.reportSnapshot(3, SNAPSHOT_FAILURE)
        self.driver.reportSnapshot(2, SNAPSHOT_FINISH)
        self.assertEqual(calls, [("unreachable", 2), ("snapshot", 3, True),
                                 ("snapshot", 2, False)])

    def test_snapshotDatabase(self):
        """With ``snapshotDatabase``, a MsgSnap goes to ``sendSnapshot``."""
        snaps = []
        self.transport.sendSnapshot = lambda m, path: snaps.append((m.to, path)) or \
            succeed(True)
        self.driver.snapshotDatabase = lambda m: "/db/%d" % (m.to,)
        self.driver._send([message(MsgSnap, 2, 1, 1), message(MsgHeartbeat, 3, 1, 1)])
        self.assertEqual(snaps, [(2, "/db/2")])
        self.assertEqual([[m.type for m in ms] for ms in self.transport.sent],
                         [[MsgHeartbeat]])

    def test_removedMember(self):
        self.driver.removed.add(3)
        self.failureResultOf(self.driver.process(message(MsgHeartbeat, 1, 3, 1)),
                             RemovedMemberError)
        self.assertTrue(self.driver.isIDRemoved(3))


class CollaboratorTests(SynchronousTestCase):
    """The driver is built with declared collaborators and uses only their interfaces."""

    def test_collaboratorsMustProvideTheirInterfaces(self):
        storage = MemoryStorage()
        node = makeNode(1, [1], storage)
        clock = Clock()
        with self.assertRaises(TypeError):
            RaftDriver(node, object(), NoPeers(), clock)
        with self.assertRaises(TypeError):
            RaftDriver(node, storage, object(), clock)
        with self.assertRaises(TypeError):
            RaftDriver(node, storage, NoPeers(), clock, stateMachine=object())
        driver = RaftDriver(node, storage, NoPeers(), clock)
        self.assertIsInstance(driver.stateMachine, NullStateMachine)

    def test_appliedStartsAtTheRawNodes(self):
        """A driver built on a restarted RawNode starts at its applied index."""
        from raftmux.raftpb import Snapshot
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 7, 2
        snap.metadata.conf_state.voters.append(1)
        restored = MemoryStorage()
        restored.applySnapshot(snap)
        driver = RaftDriver(makeNode(1, [1], restored, applied=7), restored, NoPeers(), Clock())
        self.assertEqual(driver.applied, 7)

    def test_syncEveryReadyThatMustSync(self):
        """
        ``sync()`` is called for every Ready that must be durable, whatever
        the storage (no probing for an ``fsync`` attribute).
        """
        calls = []

        class Counting(MemoryStorage):
            def sync(self):
                calls.append("sync")
        storage = Counting()
        clock = Clock()
        driver = RaftDriver(makeNode(1, [1], storage), storage, NoPeers(), clock,
                            tickInterval=TICK)
        driver.start()
        self.addCleanup(driver.stop)
        for _ in range(25):
            clock.advance(TICK)
        self.assertEqual(driver.rawNode.raft.state, StateLeader)
        self.assertEqual(len(calls), 1)  # the vote and the leader's first entry
        d = driver.propose(b"x")
        turn(clock)
        self.successResultOf(d)
        self.assertEqual(len(calls), 2)

    def test_removedMemberLeavesTheTransportOnlyIfAPeer(self):
        """A committed removal of an ID the transport never knew is not an error."""
        removed = []

        class Peers(NoPeers):
            def hasPeer(self, id):
                return id == 2

            def removePeer(self, id):
                removed.append(id)
        storage = MemoryStorage()
        clock = Clock()
        driver = RaftDriver(makeNode(1, [1], storage), storage, Peers(), clock,
                            tickInterval=TICK)
        driver.start()
        self.addCleanup(driver.stop)
        for _ in range(25):
            clock.advance(TICK)
        for gone in (3, 2):
            d = driver.proposeConfChange(ConfChange(type=ConfChangeRemoveNode, node_id=gone))
            turn(clock)
            self.successResultOf(d)
        self.assertTrue(driver.running)
        self.assertEqual(removed, [2])
        self.assertTrue(driver.isIDRemoved(3))


class Network:
    """Delivers each sent message to its driver's ``process`` on a later turn."""

    def __init__(self, clock):
        self.clock = clock
        self.drivers = {}
        self.dropped = set()
        self.rejected = []

    def transportFor(self, id):
        network = self

        class Transport(NoPeers):
            def send(self, messages):
                for m in messages:
                    if m.to in network.dropped or id in network.dropped:
                        continue
                    network.clock.callLater(0, network.deliver, m)
        return Transport()

    def deliver(self, m):
        driver = self.drivers.get(m.to)
        if driver is not None and driver.running:
            driver.process(m).addErrback(
                lambda f: self.rejected.append((m.to, getattr(m, "from"), f.type)))


class ClusterTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.network = Network(self.clock)
        self.applied = {}
        ids = [1, 2, 3]
        for id in ids:
            storage = MemoryStorage()
            self.applied[id] = []
            driver = RaftDriver(makeNode(id, ids, storage), storage,
                                self.network.transportFor(id), self.clock,
                                stateMachine=Applier(self.applied[id].append), tickInterval=TICK)
            self.network.drivers[id] = driver
            driver.start()
            self.addCleanup(driver.stop)

    def leaders(self):
        return [id for id, d in self.network.drivers.items()
                if d.rawNode.raft.state == StateLeader]

    def elect(self):
        for _ in range(40):
            self.clock.advance(TICK)
            turn(self.clock, 10)
            if self.leaders():
                break
        [leader] = self.leaders()
        return leader

    def test_replicate(self):
        leader = self.elect()
        driver = self.network.drivers[leader]
        ds = [driver.propose(b"v%d" % (i,)) for i in range(5)]
        turn(self.clock, 20)
        entries = [self.successResultOf(d) for d in ds]
        self.assertEqual([e.Data for e in entries], [b"v%d" % (i,) for i in range(5)])
        for _ in range(3):
            self.clock.advance(TICK)
            turn(self.clock, 10)
        expected = [(e.Index, e.Term, e.Data) for e in entries]
        for id in (1, 2, 3):
            self.assertEqual([(e.Index, e.Term, e.Data) for e in self.applied[id]], expected)

    def test_readIndexOnFollower(self):
        leader = self.elect()
        entry = None
        d = self.network.drivers[leader].propose(b"x")
        turn(self.clock, 20)
        entry = self.successResultOf(d)
        follower = [id for id in (1, 2, 3) if id != leader][0]
        fdriver = self.network.drivers[follower]
        seen = []
        fdriver.readIndex().addCallback(lambda i: seen.append((i, fdriver.applied)))
        for _ in range(3):
            self.clock.advance(TICK)
            turn(self.clock, 10)
        [(index, applied)] = seen
        self.assertGreaterEqual(index, entry.Index)
        self.assertGreaterEqual(applied, index)
        self.assertEqual(self.applied[follower][-1].Data, b"x")

    def test_proposalTimeout(self):
        leader = self.elect()
        self.network.dropped.add(leader)
        d = self.network.drivers[leader].propose(b"lost")
        for _ in range(int(5.0 / TICK) + 2):
            self.clock.advance(TICK)
            turn(self.clock, 3)
        self.failureResultOf(d, ProposalTimeout)

    def test_proposalOverwritten(self):
        """
        An isolated leader's uncommitted entry is replaced by the new
        leader's entry at the same index when it rejoins.
        """
        old = self.elect()
        self.network.dropped.add(old)
        d = self.network.drivers[old].propose(b"lost")
        index = self.network.drivers[old].rawNode.raft.raftLog.lastIndex()
        for _ in range(40):
            self.clock.advance(TICK)
            turn(self.clock, 10)
            if [id for id in self.leaders() if id != old]:
                break
        [new] = [id for id in self.leaders() if id != old]
        kept = self.network.drivers[new].propose(b"kept")
        turn(self.clock, 20)
        self.assertEqual(self.successResultOf(kept).Data, b"kept")
        self.assertNoResult(d)
        self.network.dropped.discard(old)
        for _ in range(5):
            self.clock.advance(TICK)
            turn(self.clock, 10)
        self.failureResultOf(d, ProposalOverwritten)
        self.assertNotIn(b"lost", [e.Data for e in self.applied[old]])
        self.assertEqual([e.Data for e in self.applied[old]], [b"kept"])
        self.assertGreaterEqual(self.network.drivers[old].applied, index)

    def test_removeMember(self):
        """A committed RemoveNode is applied: the member counts as removed."""
        leader = self.elect()
        gone = [id for id in (1, 2, 3) if id != leader][0]
        d = self.network.drivers[leader].proposeConfChange(
            ConfChange(type=ConfChangeRemoveNode, node_id=gone))
        turn(self.clock, 20)
        entry = self.successResultOf(d)
        self.assertEqual(entry.Type, EntryConfChange)
        for id, driver in self.network.drivers.items():
            if id != gone:
                self.assertTrue(driver.isIDRemoved(gone))
                self.assertNotIn(gone, driver.rawNode.raft.prs.voters)
        self.failureResultOf(
            self.network.drivers[leader].process(message(MsgHeartbeat, leader, gone, 9)),
            RemovedMemberError)
        self.assertEqual({(t, frm, typ) for t, frm, typ in self.network.rejected} - {
            (id, gone, RemovedMemberError) for id in (1, 2, 3)}, set())


@implementer(IRaftObserver)
class LeadershipLog:
    """Records what a driver tells its observers, with the applied index then."""

    def __init__(self, driver):
        self.driver = driver
        self.events = []

    def leaderChanged(self, leaderID, term):
        self.events.append(("leader", leaderID, term))

    def leadershipChanged(self, isLeader):
        self.events.append(("leading", isLeader, self.driver.applied,
                            self.driver.rawNode.raft.raftLog.lastIndex()))


class Refusing(NullStateMachine):
    """Refuses every conf change, as etcd's member table refuses a bad one."""

    def __init__(self):
        self.refused = []
        self.applied = []

    def validateConfChange(self, confChange, entry):
        self.refused.append((confChange.node_id, entry.Index))
        return False

    def confChangeApplied(self, confChange, entry, confState):
        self.applied.append(confChange)


class _ThreeDrivers:
    """Three drivers on one clock, each with a ``LeadershipLog`` observer."""

    def setUp(self):
        self.clock = Clock()
        self.network = Network(self.clock)
        self.applied = {}
        self.logs = {}
        self.machines = {}
        ids = [1, 2, 3]
        for id in ids:
            storage = MemoryStorage()
            self.applied[id] = []
            machine = self.machines[id] = self.machineFor(id)
            driver = RaftDriver(makeNode(id, ids, storage), storage,
                                self.network.transportFor(id), self.clock,
                                stateMachine=machine, tickInterval=TICK)
            self.logs[id] = LeadershipLog(driver)
            driver.addObserver(self.logs[id])
            self.network.drivers[id] = driver
            driver.start()
            self.addCleanup(driver.stop)

    def machineFor(self, id):
        return Applier(self.applied[id].append)

    def spin(self, turns=5):
        for _ in range(turns):
            self.clock.advance(TICK)
            turn(self.clock, 10)

    def leaders(self):
        return [id for id, d in self.network.drivers.items()
                if d.rawNode.raft.state == StateLeader]

    def elect(self):
        for _ in range(40):
            self.spin(1)
            if self.leaders():
                break
        [leader] = self.leaders()
        self.spin(2)
        return leader


class SubmitTests(_ThreeDrivers, SynchronousTestCase):
    """
    What an etcd-style server needs from the driver: proposals from any
    member (``submit``, ``submitConfChange``), leadership told to
    observers only once the term's first entry is applied, and a status
    snapshot.
    """

    def test_observersAreChecked(self):
        driver = self.network.drivers[1]
        self.assertRaises(TypeError, driver.addObserver, object())

    def test_leadershipAfterTheTermsFirstEntry(self):
        """
        The new leader's observers hear ``leadershipChanged(True)`` once its
        empty entry is applied (applied == the entry's index, never
        before), every member hears of the new leader; a leader that
        loses its quorum and steps down hears False.
        """
        leader = self.elect()
        driver = self.network.drivers[leader]
        term = driver.rawNode.raft.term
        leading = [e for e in self.logs[leader].events if e[0] == "leading"]
        self.assertEqual(len(leading), 1)
        _, isLeader, applied, _ = leading[0]
        self.assertTrue(isLeader)
        self.assertEqual(driver.rawNode.raft.raftLog.term(applied), term)
        self.assertEqual(driver.rawNode.raft.raftLog.term(applied - 1), 0)
        self.assertTrue(driver.leading)
        for id, log in self.logs.items():
            self.assertIn(("leader", leader, term), log.events)
            if id != leader:
                self.assertFalse([e for e in log.events if e[0] == "leading"])
        # Cut the leader off: check-quorum is off here, so it leads on until
        # it hears of a higher term; the others elect, then it rejoins.
        self.network.dropped.add(leader)
        for _ in range(40):
            self.spin(1)
            if [id for id in self.leaders() if id != leader]:
                break
        self.network.dropped.discard(leader)
        self.spin(5)
        self.assertEqual(self.logs[leader].events[-1][:2], ("leading", False))
        self.assertFalse(driver.leading)

    def test_submitFromAFollower(self):
        """
        ``submit`` on a follower forwards the proposal; every member
        applies it; proposals of one turn go as one MsgProp.
        """
        leader = self.elect()
        follower = [id for id in (1, 2, 3) if id != leader][0]
        fdriver = self.network.drivers[follower]
        ds = [fdriver.submit(b"f%d" % (i,)) for i in range(3)]
        turn(self.clock)
        for d in ds:
            self.assertIsNone(self.successResultOf(d))
        self.spin(3)
        for id in (1, 2, 3):
            self.assertEqual([e.Data for e in self.applied[id]], [b"f0", b"f1", b"f2"])
        # On the leader, too, and beside tracked proposals.
        ldriver = self.network.drivers[leader]
        tracked = ldriver.propose(b"t")
        untracked = ldriver.submit(b"u")
        turn(self.clock)
        self.assertIsNone(self.successResultOf(untracked))
        self.spin(2)
        self.assertEqual(self.successResultOf(tracked).Data, b"t")
        self.assertEqual([e.Data for e in self.applied[follower]][-2:], [b"t", b"u"])

    def test_submitWithoutLeaderIsDropped(self):
        d = self.network.drivers[1].submit(b"x")
        turn(self.clock)
        self.failureResultOf(d, ProposalDropped)
        self.network.drivers[2].stop()
        self.failureResultOf(self.network.drivers[2].submit(b"x"), DriverStopped)
        self.failureResultOf(self.network.drivers[3].submitConfChange(
            ConfChange(type=ConfChangeRemoveNode, node_id=2)), ProposalDropped)

    def test_submitConfChangeFromAFollower(self):
        leader = self.elect()
        follower = [id for id in (1, 2, 3) if id != leader][0]
        gone = [id for id in (1, 2, 3) if id not in (leader, follower)][0]
        d = self.network.drivers[follower].submitConfChange(
            ConfChange(type=ConfChangeRemoveNode, node_id=gone, id=77))
        self.assertIsNone(self.successResultOf(d))
        self.spin(3)
        for id in (leader, follower):
            self.assertTrue(self.network.drivers[id].isIDRemoved(gone))

    def test_status(self):
        leader = self.elect()
        self.spin(2)
        driver = self.network.drivers[leader]
        status = driver.status()
        self.assertEqual((status.id, status.lead, status.isLeader, status.isLearner),
                         (leader, leader, True, False))
        self.assertEqual(status.applied, status.committed)
        self.assertEqual((driver.lead, driver.term, driver.isLeader, driver.committed),
                         (leader, status.term, True, status.committed))
        progress = driver.progress()
        self.assertEqual(sorted(progress), [1, 2, 3])
        self.assertEqual(set(progress.values()), {status.committed})
        follower = [id for id in (1, 2, 3) if id != leader][0]
        fdriver = self.network.drivers[follower]
        fstatus = fdriver.status()
        self.assertEqual((fstatus.lead, fstatus.isLeader, fdriver.progress()),
                         (leader, False, None))
        self.assertEqual(fstatus.term, status.term)

    def test_transferLeadership(self):
        leader = self.elect()
        target = [id for id in (1, 2, 3) if id != leader][0]
        self.network.drivers[leader].transferLeadership(target)
        self.spin(5)
        self.assertEqual(self.leaders(), [target])
        self.assertTrue(self.network.drivers[target].leading)
        self.network.drivers[leader].stop()
        self.assertRaises(DriverStopped, self.network.drivers[leader].transferLeadership, 1)


class RefusedConfChangeTests(_ThreeDrivers, SynchronousTestCase):
    """Conf changes the state machines refuse change no member's raft."""

    def machineFor(self, id):
        return Refusing()

    def test_refusedEverywhere(self):
        leader = self.elect()
        gone = [id for id in (1, 2, 3) if id != leader][0]
        d = self.network.drivers[leader].proposeConfChange(
            ConfChange(type=ConfChangeRemoveNode, node_id=gone))
        self.spin(3)
        entry = self.successResultOf(d)
        for id, driver in self.network.drivers.items():
            self.assertEqual(self.machines[id].refused, [(gone, entry.Index)])
            self.assertEqual(self.machines[id].applied, [])
            self.assertFalse(driver.isIDRemoved(gone))
            self.assertIn(gone, driver.rawNode.raft.prs.voters)
        # A refused add leaves no trace either.
        self.network.drivers[leader].proposeConfChange(
            ConfChange(type=ConfChangeAddNode, node_id=9))
        self.spin(3)
        for driver in self.network.drivers.values():
            self.assertNotIn(9, driver.rawNode.raft.prs.voters)


class WatchedDiskStorage(DiskStorage):
    """A ``DiskStorage`` noting the last entry index each write put on disk."""

    def __init__(self, directory):
        DiskStorage.__init__(self, directory, fsync=False)
        self.written = 0
        self.threads = set()

    def writeSave(self, pending):
        import threading
        DiskStorage.writeSave(self, pending)
        self.threads.add(threading.current_thread().name)
        if pending.prepared is not None:
            self.written = max(self.written, pending.prepared[1][-1].Index)


class ThreadedPersistTests(TestCase):
    """
    ``persistInThread`` and ``leaderSendsFirst`` on the real reactor, three
    drivers on disk: what followers acknowledge is on their disk when the
    acknowledgement leaves; the leader sends entries before its own write
    completes; proposals replicate; ``idle()`` waits for a write in flight.
    """

    timeout = 30

    async def test_replicateWithWritesOnAThread(self):
        ids = [1, 2, 3]
        drivers, storages, applied, violations, early = {}, {}, {}, [], []

        def transportFor(id):
            class Transport(NoPeers):
                def send(self, messages):
                    storage = storages[id]
                    for m in messages:
                        if m.type == MsgAppResp and not m.reject and m.index > storage.written:
                            violations.append((id, m.index, storage.written))
                        if m.entries and m.entries[-1].Index > storage.written:
                            early.append((id, m.entries[-1].Index))
                        reactor.callLater(0, deliver, m)
            return Transport()

        def deliver(m):
            driver = drivers.get(m.to)
            if driver is not None and driver.running:
                driver.process(m).addErrback(lambda f: None)

        for id in ids:
            storage = storages[id] = WatchedDiskStorage(self.mktemp())
            self.addCleanup(storage.close)
            applied[id] = []
            node = makeNode(id, ids, storage)
            driver = drivers[id] = RaftDriver(
                node, storage, transportFor(id), reactor,
                stateMachine=Applier(applied[id].append), tickInterval=0.01,
                leaderSendsFirst=True, persistInThread=True)
            driver.start()
            self.addCleanup(driver.stop)
        await waitFor(reactor, lambda: any(d.leading for d in drivers.values()),
                      what="a leader")
        (leader,) = [d for d in drivers.values() if d.leading]
        for round in range(5):
            ds = [leader.propose(b"r%d-%d" % (round, i)) for i in range(10)]
            for d in ds:
                await d
        await waitFor(reactor, lambda: all(len(a) == 50 for a in applied.values()),
                      what="applied everywhere")
        self.assertEqual(violations, [])
        # The leader's MsgApps left before its own write of their entries.
        self.assertTrue([i for i, _ in early if i == leader.rawNode.raft.id])
        self.assertEqual({e.Data for e in applied[1]}, {e.Data for e in applied[2]})
        self.assertNotIn("MainThread", set().union(*(s.threads for s in storages.values())))
        for driver in drivers.values():
            await driver.idle()

    async def test_idleWaitsForAWriteInFlight(self):
        from twisted.internet.defer import Deferred
        storage = WatchedDiskStorage(self.mktemp())
        self.addCleanup(storage.close)
        release = Deferred()
        original = storage.writeSave

        def slowWrite(pending):
            from twisted.internet.threads import blockingCallFromThread
            blockingCallFromThread(reactor, lambda: release)
            original(pending)
        storage.writeSave = slowWrite
        node = makeNode(1, [1], storage)
        driver = RaftDriver(node, storage, NoPeers(), reactor, tickInterval=0.01,
                            persistInThread=True)
        driver.start()
        await waitFor(reactor, lambda: not driver.idle().called, what="a write in flight")
        idle = driver.idle()
        self.assertFalse(idle.called)
        driver.stop()
        release.callback(None)
        await idle
        self.assertTrue(driver.idle().called)


@implementer(IRaft)
class DriverOwner:
    """What owns a driver and its Transport: the Transport's ``IRaft``."""

    driver = None

    def process(self, message):
        return self.driver.process(message)

    def isIDRemoved(self, id):
        return self.driver.isIDRemoved(id)

    def reportUnreachable(self, id):
        self.driver.reportUnreachable(id)

    def reportSnapshot(self, id, status):
        self.driver.reportSnapshot(id, status)


class TransportTests(TestCase):
    """Three drivers on ``DiskStorage``, joined by real ``Transport``s over TCP."""

    async def _node(self, id):
        from raftmux.rafthttp import Transport
        storage = DiskStorage(self.mktemp())
        self.addCleanup(storage.close)
        applied = []
        site = Site(None)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        url = "http://127.0.0.1:%d" % (port.getHost().port,)
        snapdir = self.mktemp()
        os.makedirs(snapdir)
        # As the node does: the Transport delivers to its owner, which
        # hands every message to the driver built right after.
        owner = DriverOwner()
        transport = Transport(id, 0xC1, [url], owner, reactor=reactor,
                              snapshotDir=snapdir, probing=False)
        owner.driver = driver = RaftDriver(makeNode(id, [1, 2, 3], storage), storage,
                                           transport, reactor,
                                           stateMachine=Applier(applied.append),
                                           tickInterval=0.05)
        site.resource = transport.resource()
        self.addCleanup(transport.stop)
        return driver, applied, url

    async def _cluster(self):
        nodes = {id: await self._node(id) for id in (1, 2, 3)}
        for id, (driver, _, _) in nodes.items():
            for other, (_, _, url) in nodes.items():
                if other != id:
                    driver.transport.addPeer(other, [url])
        for driver, _, _ in nodes.values():
            driver.start()
            self.addCleanup(driver.stop)
        return nodes

    @defer.inlineCallbacks
    def test_replicateOverHTTP(self):
        nodes = yield defer.ensureDeferred(self._cluster())

        def leaders():
            return [id for id, (d, _, _) in nodes.items()
                    if d.rawNode.raft.state == StateLeader]
        yield defer.ensureDeferred(waitFor(reactor, lambda: len(leaders()) == 1,
                                           what="one leader"))
        leader = nodes[leaders()[0]][0]
        entries = []
        for i in range(3):
            entry = yield leader.propose(b"p%d" % (i,))
            entries.append((entry.Index, entry.Term, entry.Data))
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: all(len(a) == 3 for _, a, _ in nodes.values()),
            what="all applied"))
        for _, applied, _ in nodes.values():
            self.assertEqual([(e.Index, e.Term, e.Data) for e in applied], entries)
        index = yield leader.readIndex()
        self.assertGreaterEqual(index, entries[-1][0])
