# -*- test-case-name: raftmux.test.test_raft_membership -*-
"""
Membership changes and learners (etcd raft_test.go's conf-change and
learner scenarios): one change at a time, add/remove voters, learners that
replicate but never vote or campaign, promotion.
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.core import StateFollower, StateLeader
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
    Entry,
    EntryConfChange,
    EntryNormal,
    MsgAppResp,
    MsgBeat,
    MsgProp,
    MsgTimeoutNow,
    encode,
)
from raftmux.test.test_raft_core import nextEnts, setRandomizedElectionTimeout
from raftmux.test.test_raft_network import (
    Network,
    hup,
    msg,
    newTestLearnerRaft,
    newTestRaft,
    prop,
)


def cc(type, node):
    return ConfChange(type=type, node_id=node)


def confProp(frm=1):
    return msg(MsgProp, frm=frm, to=frm, entries=[Entry(Type=EntryConfChange)])


class ConfChangeTests(SynchronousTestCase):
    def _leader(self, peers=(1, 2), **kw):
        r = newTestRaft(1, list(peers), **kw)
        r.becomeCandidate()
        r.becomeLeader()
        return r

    def test_stepConfig(self):
        r = self._leader()
        index = r.raftLog.lastIndex()
        r.step(confProp())
        self.assertEqual(r.raftLog.lastIndex(), index + 1)
        self.assertEqual(r.pendingConfIndex, index + 1)

    def test_stepIgnoreConfig(self):
        """A second change while one is pending becomes an empty normal entry."""
        r = self._leader()
        r.step(confProp())
        index = r.raftLog.lastIndex()
        pending = r.pendingConfIndex
        r.step(confProp())
        self.assertEqual([(e.Type, e.Term, e.Index, e.Data) for e in r.raftLog.entries(index + 1)],
                         [(EntryNormal, 1, 3, b"")])
        self.assertEqual(r.pendingConfIndex, pending)

    def test_newLeaderPendingConfig(self):
        for addEntry, wpending in [(False, 0), (True, 1)]:
            r = newTestRaft(1, [1, 2])
            if addEntry:
                r.appendEntry([Entry(Type=EntryNormal)])
            r.becomeCandidate()
            r.becomeLeader()
            self.assertEqual(r.pendingConfIndex, wpending)

    def test_addNode(self):
        r = newTestRaft(1, [1])
        r.applyConfChange(cc(ConfChangeAddNode, 2))
        self.assertEqual(sorted(r.prs.voters), [1, 2])

    def test_addLearner(self):
        r = newTestRaft(1, [1])
        cs = r.applyConfChange(cc(ConfChangeAddLearnerNode, 2))
        self.assertEqual(sorted(r.prs.learners), [2])
        self.assertTrue(r.prs.progress[2].isLearner)
        self.assertEqual((list(cs.voters), list(cs.learners)), ([1], [2]))

    def test_updateNodeChangesNothing(self):
        r = newTestRaft(1, [1, 2])
        cs = r.applyConfChange(cc(ConfChangeUpdateNode, 2))
        self.assertEqual((list(cs.voters), list(cs.learners)), ([1, 2], []))

    def test_addNodeCheckQuorum(self):
        r = newTestRaft(1, [1], checkQuorum=True)
        r.becomeCandidate()
        r.becomeLeader()
        for _ in range(r.electionTimeout - 1):
            r.tick()
        r.applyConfChange(cc(ConfChangeAddNode, 2))
        # The quorum check now due counts the new node as recently active.
        r.tick()
        self.assertEqual(r.state, StateLeader)
        # A whole election timeout without hearing from it: step down.
        for _ in range(r.electionTimeout):
            r.tick()
        self.assertEqual(r.state, StateFollower)

    def test_removeNode(self):
        r = newTestRaft(1, [1, 2])
        r.applyConfChange(cc(ConfChangeRemoveNode, 2))
        self.assertEqual(sorted(r.prs.voters), [1])
        self.assertRaises(ValueError, r.applyConfChange, cc(ConfChangeRemoveNode, 1))
        self.assertEqual(sorted(r.prs.voters), [1])

    def test_removeLearner(self):
        r = newTestLearnerRaft(1, [1], [2])
        r.applyConfChange(cc(ConfChangeRemoveNode, 2))
        self.assertEqual((sorted(r.prs.voters), sorted(r.prs.learners)), ([1], []))
        self.assertRaises(ValueError, r.applyConfChange, cc(ConfChangeRemoveNode, 1))

    def test_promotable(self):
        for peers, wp in [([1], True), ([1, 2, 3], True), ([], False), ([2, 3], False)]:
            r = newTestRaft(1, peers)
            self.assertEqual(r.promotable(), wp, peers)

    def test_raftNodes(self):
        for ids in ([1, 2, 3], [3, 2, 1]):
            r = newTestRaft(1, ids)
            self.assertEqual(list(r.confState().voters), [1, 2, 3])

    def test_commitAfterRemoveNode(self):
        s = MemoryStorage()
        r = newTestRaft(1, [1, 2], 5, 1, s)
        r.becomeCandidate()
        r.becomeLeader()
        change = cc(ConfChangeRemoveNode, 2)
        r.step(msg(MsgProp, entries=[Entry(Type=EntryConfChange, Data=encode(change))]))
        self.assertEqual(nextEnts(r, s), [])
        ccIndex = r.raftLog.lastIndex()
        r.step(msg(MsgProp, entries=[Entry(Type=EntryNormal, Data=b"hello")]))
        # 2 acknowledges the change, committing it (but not "hello").
        r.step(msg(MsgAppResp, frm=2, index=ccIndex))
        ents = nextEnts(r, s)
        self.assertEqual([(e.Type, e.Data) for e in ents],
                         [(EntryNormal, b""), (EntryConfChange, encode(change))])
        # Applying the removal shrinks the quorum, so "hello" commits.
        r.applyConfChange(change)
        ents = nextEnts(r, s)
        self.assertEqual([(e.Type, e.Data) for e in ents], [(EntryNormal, b"hello")])

    def test_removedLeaderDropsProposals(self):
        r = self._leader([1, 2, 3])
        r.applyConfChange(cc(ConfChangeRemoveNode, 1))
        from raftmux.raft.core import ProposalDropped
        self.assertRaises(ProposalDropped, r.step, prop(1))

    def test_campaignBlockedByUnappliedConfChange(self):
        """A node with a committed but unapplied conf change does not campaign (etcd's hup)."""
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1, Type=EntryConfChange,
                        Data=encode(cc(ConfChangeAddNode, 4)))])
        from raftmux.raftpb import HardState
        s.setHardState(HardState(term=1, commit=1))
        r = newTestRaft(1, [1, 2, 3], storage=s)
        r.step(hup(1))
        self.assertEqual(r.state, StateFollower)
        r.raftLog.appliedTo(1)
        r.step(hup(1))
        self.assertNotEqual(r.state, StateFollower)

    def test_addNodeOverNetwork(self):
        """A node added by a committed ConfChange catches up and counts in the quorum."""
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        newbie = newTestRaft(4, [1, 2, 3, 4])
        nt.peers[4] = newbie
        change = cc(ConfChangeAddNode, 4)
        nt.send(msg(MsgProp, frm=1, to=1,
                    entries=[Entry(Type=EntryConfChange, Data=encode(change))]))
        self.assertEqual(lead.raftLog.committed, 2)
        for id in (1, 2, 3):
            nt.peers[id].applyConfChange(change)
        nt.send(prop(1, b"after"))
        self.assertEqual(newbie.raftLog.lastIndex(), lead.raftLog.lastIndex())
        self.assertEqual(lead.prs.progress[4].match, lead.raftLog.lastIndex())
        # 4 now counts: with 2 and 3 gone, 1 and 4 are not a quorum of 4.
        nt.isolate(2)
        nt.isolate(3)
        nt.cut(1, 2)
        committed = lead.raftLog.committed
        nt.send(prop(1, b"x"))
        self.assertEqual(lead.raftLog.committed, committed)


class LearnerTests(SynchronousTestCase):
    def test_learnerElectionTimeout(self):
        n1 = newTestLearnerRaft(1, [1], [2])
        n2 = newTestLearnerRaft(2, [1], [2])
        n1.becomeFollower(1, 0)
        n2.becomeFollower(1, 0)
        setRandomizedElectionTimeout(n2, n2.electionTimeout)
        for _ in range(n2.electionTimeout):
            n2.tick()
        self.assertEqual(n2.state, StateFollower)
        self.assertEqual(n2.readMessages(), [])

    def test_learnerPromotion(self):
        n1 = newTestLearnerRaft(1, [1], [2])
        n2 = newTestLearnerRaft(2, [1], [2])
        n1.becomeFollower(1, 0)
        n2.becomeFollower(1, 0)
        nt = Network(n1, n2)
        self.assertNotEqual(n1.state, StateLeader)
        setRandomizedElectionTimeout(n1, n1.electionTimeout)
        for _ in range(n1.electionTimeout):
            n1.tick()
        self.assertEqual((n1.state, n2.state), (StateLeader, StateFollower))
        nt.send(msg(MsgBeat, frm=1, to=1))
        n1.applyConfChange(cc(ConfChangeAddNode, 2))
        n2.applyConfChange(cc(ConfChangeAddNode, 2))
        self.assertFalse(n2.isLearner)
        setRandomizedElectionTimeout(n2, n2.electionTimeout)
        for _ in range(n2.electionTimeout):
            n2.tick()
        nt.send(msg(MsgBeat, frm=2, to=2))
        self.assertEqual((n1.state, n2.state), (StateFollower, StateLeader))

    def test_learnerCampaign(self):
        n1 = newTestRaft(1, [1])
        n1.applyConfChange(cc(ConfChangeAddLearnerNode, 2))
        n2 = newTestRaft(2, [1])
        n2.applyConfChange(cc(ConfChangeAddLearnerNode, 2))
        nt = Network(n1, n2)
        nt.send(hup(2))
        self.assertTrue(n2.isLearner)
        self.assertEqual(n2.state, StateFollower)
        nt.send(hup(1))
        # (a single voter wins at once; its first heartbeat tells the learner)
        nt.send(msg(MsgBeat, frm=1, to=1))
        self.assertEqual((n1.state, n2.state, n2.lead), (StateLeader, StateFollower, 1))
        # A learner ignores MsgTimeoutNow.
        nt.send(msg(MsgTimeoutNow, frm=1, to=2))
        self.assertEqual(n2.state, StateFollower)

    def test_learnerLogReplication(self):
        n1 = newTestLearnerRaft(1, [1], [2])
        n2 = newTestLearnerRaft(2, [1], [2])
        nt = Network(n1, n2)
        n1.becomeFollower(1, 0)
        n2.becomeFollower(1, 0)
        setRandomizedElectionTimeout(n1, n1.electionTimeout)
        for _ in range(n1.electionTimeout):
            n1.tick()
        nt.send(msg(MsgBeat, frm=1, to=1))
        self.assertEqual(n1.state, StateLeader)
        self.assertTrue(n2.isLearner)
        nextCommitted = n1.raftLog.committed + 1
        nt.send(prop(1))
        self.assertEqual(n1.raftLog.committed, nextCommitted)
        self.assertEqual(n2.raftLog.committed, n1.raftLog.committed)
        self.assertEqual(n1.prs.progress[2].match, n2.raftLog.committed)

    def test_learnerDoesNotCountForCommit(self):
        n1 = newTestLearnerRaft(1, [1, 3], [2])
        n1.becomeCandidate()
        n1.becomeLeader()
        n1.readMessages()
        n1.step(prop(1))
        last = n1.raftLog.lastIndex()
        n1.step(msg(MsgAppResp, frm=2, to=1, term=n1.term, index=last))
        self.assertEqual(n1.raftLog.committed, 0)
        n1.step(msg(MsgAppResp, frm=3, to=1, term=n1.term, index=last))
        self.assertEqual(n1.raftLog.committed, last)

    def test_learnerNotAskedToVote(self):
        r = newTestLearnerRaft(1, [1, 2], [3])
        r.step(hup(1))
        self.assertEqual(sorted(m.to for m in r.readMessages()), [2])
