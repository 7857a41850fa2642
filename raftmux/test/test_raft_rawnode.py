# -*- test-case-name: raftmux.test.test_raft_rawnode -*-
"""
``RawNode``: the Ready/advance cycle, bootstrap, restart from storage, and
the errors ``step`` raises (etcd's rawnode_test.go scenarios).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.config import Config
from raftmux.raft.core import (
    ProposalDropped,
    SoftState,
    StateFollower,
    StateLeader,
    StepLocalMsgError,
    StepPeerNotFoundError,
)
from raftmux.raft.errors import CorruptLogError
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.rawnode import Peer, RawNode
from raftmux.raft.readonly import ReadState
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    Entry,
    EntryConfChange,
    EntryNormal,
    HardState,
    Message,
    MsgApp,
    MsgAppResp,
    MsgBeat,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgHup,
    MsgPreVote,
    MsgPreVoteResp,
    MsgVote,
    MsgVoteResp,
    Snapshot,
)
from raftmux.test.test_raft_network import msg


def config(id=1, storage=None, **kw):
    import random
    kw.setdefault("random", random.Random(id))
    return Config(id=id, storage=storage if storage is not None else MemoryStorage(),
                  electionTick=10, heartbeatTick=1, maxSizePerMsg=None, **kw)


def handle(node, storage):
    """Persist and apply one Ready as a driver would; returns it."""
    rd = node.ready()
    if rd.snapshot is not None:
        storage.applySnapshot(rd.snapshot)
    if rd.hardState is not None:
        storage.setHardState(rd.hardState)
    storage.append(rd.entries)
    for e in rd.committedEntries:
        if e.Type == EntryConfChange:
            node.applyConfChange(ConfChange.FromString(e.Data))
    node.advance(rd)
    return rd


class RawNodeTests(SynchronousTestCase):
    def test_bootstrapAndCampaign(self):
        s = MemoryStorage()
        node = RawNode(config(storage=s))
        node.bootstrap([Peer(1, b'{"id":1}')])
        self.assertTrue(node.hasReady())
        rd = handle(node, s)
        self.assertEqual([(e.Index, e.Term, e.Type) for e in rd.entries],
                         [(1, 1, EntryConfChange)])
        self.assertEqual((rd.hardState.term, rd.hardState.vote, rd.hardState.commit), (1, 0, 1))
        cc = ConfChange.FromString(rd.entries[0].Data)
        self.assertEqual((cc.type, cc.node_id, cc.context), (ConfChangeAddNode, 1, b'{"id":1}'))
        self.assertTrue(rd.mustSync)
        self.assertEqual([e.Index for e in rd.committedEntries], [1])
        self.assertFalse(node.hasReady())
        node.campaign()
        rd = handle(node, s)
        self.assertEqual(rd.softState, SoftState(1, StateLeader))
        # The leader's empty entry is committed at once (single voter) ...
        self.assertEqual([e.Index for e in rd.entries], [2])
        node.propose(b"foo")
        rd = handle(node, s)
        self.assertEqual([(e.Index, e.Data) for e in rd.entries], [(3, b"foo")])
        self.assertEqual([(e.Index, e.Data) for e in rd.committedEntries], [(3, b"foo")])
        self.assertEqual(node.raft.raftLog.applied, 3)
        self.assertFalse(node.hasReady())

    def test_bootstrapRefusesNonEmptyStorage(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1)])
        node = RawNode(config(storage=s, peers=[1]))
        self.assertRaises(ValueError, node.bootstrap, [Peer(1)])
        self.assertRaises(ValueError, RawNode(config()).bootstrap, [])

    def test_bootstrapLikeEtcd(self):
        """Two members, as etcd's StartNode writes them: entries 1..N at term 1, commit N."""
        s = MemoryStorage()
        node = RawNode(config(id=2, storage=s))
        node.bootstrap([Peer(1), Peer(2)])
        rd = handle(node, s)
        self.assertEqual([(e.Index, e.Term, ConfChange.FromString(e.Data).node_id)
                          for e in rd.entries], [(1, 1, 1), (2, 1, 2)])
        self.assertEqual(sorted(node.raft.prs.voters), [1, 2])
        # The first probe from etcd (index 2, logTerm 1) matches at once.
        node.step(msg(MsgApp, frm=1, to=2, term=2, index=2, logTerm=1, commit=2,
                      entries=[Entry(Index=3, Term=2)]))
        rd = handle(node, s)
        [resp] = rd.messages
        self.assertEqual((resp.type, resp.term, resp.index, resp.reject), (MsgAppResp, 2, 3, False))
        self.assertEqual(rd.hardState.term, 2)

    def test_restartFromStorage(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=1, Data=b"foo")])
        s.setHardState(HardState(term=1, commit=1))
        node = RawNode(config(storage=s, peers=[1]))
        rd = node.ready()
        self.assertIsNone(rd.hardState)
        self.assertEqual(rd.entries, [])
        self.assertEqual([e.Index for e in rd.committedEntries], [1])
        node.advance(rd)
        self.assertFalse(node.hasReady())

    def test_restartFromSnapshot(self):
        s = MemoryStorage()
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 2, 1
        snap.metadata.conf_state.voters.extend([1, 2])
        s.applySnapshot(snap)
        s.append([Entry(Index=3, Term=1, Data=b"foo")])
        s.setHardState(HardState(term=1, commit=3))
        node = RawNode(config(storage=s))
        self.assertEqual(sorted(node.raft.prs.voters), [1, 2])
        rd = node.ready()
        self.assertEqual([(e.Index, e.Data) for e in rd.committedEntries], [(3, b"foo")])

    def test_appliedFromConfig(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=1)])
        s.setHardState(HardState(term=1, commit=2))
        node = RawNode(config(storage=s, peers=[1], applied=1))
        self.assertEqual([e.Index for e in node.ready().committedEntries], [2])

    def test_corruptHardStateRefused(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1)])
        s.setHardState(HardState(term=1, commit=5))
        self.assertRaises(CorruptLogError, RawNode, config(storage=s, peers=[1]))

    def test_stepErrors(self):
        node = RawNode(config(peers=[1, 2]))
        for t in (MsgHup, MsgBeat):
            self.assertRaises(StepLocalMsgError, node.step, Message(type=t))
        for t in (MsgAppResp, MsgVoteResp, MsgHeartbeatResp):
            self.assertRaises(StepPeerNotFoundError, node.step, msg(t, frm=9, to=1, term=1))
        # Requests from unknown members are stepped (they may be a new leader).
        node.step(msg(MsgVote, frm=9, to=1, term=1))
        self.assertEqual(node.raft.term, 1)
        self.assertRaises(ProposalDropped, node.propose, b"x")

    def test_readyOrderAndHardStateOnlyWhenChanged(self):
        s = MemoryStorage()
        node = RawNode(config(storage=s, peers=[1, 2]))
        node.step(msg(MsgVote, frm=2, to=1, term=1))
        rd = node.ready()
        # The vote must be persisted before the reply leaves: both in one Ready.
        self.assertEqual((rd.hardState.term, rd.hardState.vote), (1, 2))
        self.assertTrue(rd.mustSync)
        self.assertEqual([(m.type, m.reject) for m in rd.messages], [(MsgVoteResp, False)])
        node.advance(rd)
        self.assertFalse(node.hasReady())
        node.tick()
        self.assertFalse(node.hasReady())

    def test_proposeConfChangeAndApply(self):
        s = MemoryStorage()
        node = RawNode(config(storage=s))
        node.bootstrap([Peer(1)])
        handle(node, s)
        node.campaign()
        handle(node, s)
        node.proposeConfChange(ConfChange(type=ConfChangeAddNode, node_id=2))
        rd = handle(node, s)
        self.assertEqual([e.Type for e in rd.committedEntries], [EntryConfChange])
        self.assertEqual(sorted(node.raft.prs.voters), [1, 2])
        # Now two voters: a proposal is not committed by the leader alone.
        node.propose(b"x")
        rd = handle(node, s)
        self.assertEqual(rd.committedEntries, [])
        self.assertEqual([m.to for m in rd.messages if m.type == MsgApp], [2])

    def test_confChangeProposedWhileApplyingThePrevious(self):
        """
        A configuration change proposed while the previous one is being
        applied (a waiter's callback, before ``advance``) is kept when the
        application said ``appliedTo`` first, and dropped (an empty normal
        entry) when it did not: raft takes the previous one as pending.
        """
        for saysApplied, expected in ((True, EntryConfChange), (False, EntryNormal)):
            s = MemoryStorage()
            node = RawNode(config(storage=s))
            node.bootstrap([Peer(1)])
            handle(node, s)
            node.campaign()
            handle(node, s)
            node.proposeConfChange(ConfChange(type=ConfChangeAddLearnerNode, node_id=2))
            rd = node.ready()
            s.setHardState(rd.hardState)
            s.append(rd.entries)
            (entry,) = rd.committedEntries
            node.applyConfChange(ConfChange.FromString(entry.Data))
            if saysApplied:
                node.appliedTo(entry.Index)
            # What a waiter on the first change does at once:
            node.proposeConfChange(ConfChange(type=ConfChangeAddLearnerNode, node_id=3))
            node.advance(rd)
            rd = handle(node, s)
            self.assertEqual([e.Type for e in rd.entries], [expected], saysApplied)

    def test_readIndexSingleNode(self):
        s = MemoryStorage()
        node = RawNode(config(storage=s))
        node.bootstrap([Peer(1)])
        handle(node, s)
        node.campaign()
        handle(node, s)
        node.readIndex(b"rctx")
        rd = handle(node, s)
        self.assertEqual(rd.readStates, [ReadState(2, b"rctx")])
        self.assertEqual(node.raft.readStates, [])

    def test_transferLeaderAndStatus(self):
        s = MemoryStorage()
        node = RawNode(config(storage=s, peers=[1, 2]))
        node.raft.becomeCandidate()
        node.raft.becomeLeader()
        node.raft.prs.progress[2].match = node.raft.raftLog.lastIndex()
        node.transferLeader(2)
        rd = node.ready()
        self.assertIn(14, [m.type for m in rd.messages])  # MsgTimeoutNow
        st = node.status()
        self.assertEqual((st["id"], st["softState"].raftState, st["leadTransferee"]),
                         (1, StateLeader, 2))
        pr = node.raft.prs.progress[2]
        pr.becomeReplicate()
        node.reportUnreachable(2)
        self.assertEqual(pr.state, "StateProbe")
        pr.becomeSnapshot(7)
        node.reportSnapshot(2, failed=True)
        self.assertEqual((pr.state, pr.pendingSnapshot, pr.probeSent), ("StateProbe", 0, True))

    def test_snapshotInReady(self):
        s = MemoryStorage()
        node = RawNode(config(id=2, storage=s, peers=[1, 2]))
        m = msg(7, frm=1, to=2, term=1)  # MsgSnap
        m.snapshot.metadata.index = 5
        m.snapshot.metadata.term = 1
        m.snapshot.metadata.conf_state.voters.extend([1, 2])
        m.snapshot.data = b"state"
        node.step(m)
        rd = handle(node, s)
        self.assertEqual((rd.snapshot.metadata.index, rd.snapshot.data), (5, b"state"))
        self.assertEqual(s.firstIndex(), 6)
        self.assertEqual(node.raft.raftLog.applied, 5)
        self.assertEqual([(mm.type, mm.index) for mm in rd.messages], [(MsgAppResp, 5)])
        self.assertEqual(node.raft.state, StateFollower)
        self.assertFalse(node.hasReady())

    def test_committedEntriesLimitedPerReady(self):
        s = MemoryStorage()
        s.append([Entry(Index=i, Term=1, Type=EntryNormal, Data=b"x" * 100) for i in range(1, 11)])
        s.setHardState(HardState(term=1, commit=10))
        node = RawNode(Config(id=1, storage=s, peers=[1], maxSizePerMsg=250))
        seen = []
        for _ in range(10):
            if not node.hasReady():
                break
            rd = node.ready()
            seen.append(len(rd.committedEntries))
            node.advance(rd)
        self.assertEqual(sum(seen), 10)
        self.assertGreater(len(seen), 1)


class EtcdExchangeTests(SynchronousTestCase):
    """The exchange observed with etcd 3.4.23 (spec section 12), replayed."""

    E1, P2 = 0x4036b1db24775ea0, 0x2737ecedbf2a9065

    def setUp(self):
        self.storage = MemoryStorage()
        self.node = RawNode(config(id=self.P2, storage=self.storage, checkQuorum=True))
        # etcd's StartNode: peers sorted by id.
        self.node.bootstrap([Peer(self.P2), Peer(self.E1)])
        handle(self.node, self.storage)

    def exchange(self, m):
        self.node.step(m)
        return handle(self.node, self.storage)

    def fromE1(self, type, **kw):
        return msg(type, frm=self.E1, to=self.P2, **kw)

    def test_exchange(self):
        rd = self.exchange(self.fromE1(MsgPreVote, term=2, logTerm=1, index=2))
        self.assertEqual([(m.type, m.term, m.reject) for m in rd.messages],
                         [(MsgPreVoteResp, 2, False)])
        self.assertIsNone(rd.hardState)
        rd = self.exchange(self.fromE1(MsgVote, term=2, logTerm=1, index=2))
        self.assertEqual([(m.type, m.to, m.term, m.reject) for m in rd.messages],
                         [(MsgVoteResp, self.E1, 2, False)])
        self.assertEqual((rd.hardState.term, rd.hardState.vote, rd.hardState.commit),
                         (2, self.E1, 2))
        self.assertTrue(rd.mustSync)
        rd = self.exchange(self.fromE1(MsgApp, term=2, logTerm=1, index=2, commit=2,
                                       entries=[Entry(Index=3, Term=2)]))
        self.assertEqual([(m.type, m.term, m.index, m.reject) for m in rd.messages],
                         [(MsgAppResp, 2, 3, False)])
        rd = self.exchange(self.fromE1(MsgApp, term=2, logTerm=2, index=3, commit=3,
                                       entries=[Entry(Index=4, Term=2, Data=b"publish")]))
        self.assertEqual([(m.type, m.index) for m in rd.messages], [(MsgAppResp, 4)])
        self.assertEqual([e.Index for e in rd.committedEntries], [3])
        rd = self.exchange(self.fromE1(MsgApp, term=2, logTerm=2, index=4, commit=4))
        self.assertEqual([(m.type, m.index) for m in rd.messages], [(MsgAppResp, 4)])
        self.assertEqual([e.Data for e in rd.committedEntries], [b"publish"])
        hb = self.fromE1(MsgHeartbeat, term=2, commit=4)
        hb.context = bytes.fromhex("5ea0a2014e58c003")
        rd = self.exchange(hb)
        self.assertEqual([(m.type, m.term, m.context) for m in rd.messages],
                         [(MsgHeartbeatResp, 2, bytes.fromhex("5ea0a2014e58c003"))])
        self.assertEqual(self.node.raft.lead, self.E1)

    def test_followerNeverDisruptsHealthyLeader(self):
        """Ticks short of an election timeout after hearing from etcd: no campaign."""
        self.exchange(self.fromE1(MsgVote, term=2, logTerm=1, index=2))
        # 27 ticks in all, more than the longest randomized timeout (19):
        # only the heartbeats in between keep the follower quiet.
        for _ in range(3):
            self.exchange(self.fromE1(MsgHeartbeat, term=2, commit=2))
            for _ in range(9):
                self.node.tick()
            self.assertFalse(self.node.hasReady())
        for _ in range(11):
            self.node.tick()
        self.assertEqual([m.type for m in self.node.ready().messages], [MsgVote])
