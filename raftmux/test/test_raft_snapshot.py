# -*- test-case-name: raftmux.test.test_raft_snapshot -*-
"""
Snapshots: restoring from one, a leader sending one to a follower whose
entries are compacted, the snapshot progress state and MsgSnapStatus, and
snapshots that must be refused (etcd's raft_snap_test.go and the restore
scenarios of raft_test.go).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.core import StateFollower
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.progress import StateProbe, StateReplicate, StateSnapshot
from raftmux.raftpb import (
    ConfState,
    Entry,
    MsgAppResp,
    MsgBeat,
    MsgProp,
    MsgSnap,
    MsgSnapStatus,
    Snapshot,
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


def makeSnap(index, term, voters=(), learners=(), data=b""):
    s = Snapshot()
    if data:
        s.data = data
    s.metadata.index = index
    s.metadata.term = term
    s.metadata.conf_state.voters.extend(voters)
    s.metadata.conf_state.learners.extend(learners)
    return s


def testingSnap():
    return makeSnap(11, 11, voters=[1, 2])


class RestoreTests(SynchronousTestCase):
    def test_restore(self):
        s = makeSnap(11, 11, voters=[1, 2, 3])
        sm = newTestRaft(1, [1, 2], storage=MemoryStorage())
        self.assertTrue(sm.restore(s))
        self.assertEqual(sm.raftLog.lastIndex(), 11)
        self.assertEqual(sm.raftLog.term(11), 11)
        self.assertEqual(sorted(sm.prs.voters), [1, 2, 3])
        self.assertFalse(sm.restore(s))

    def test_restoreWithLearner(self):
        s = makeSnap(11, 11, voters=[1, 2], learners=[3])
        sm = newTestLearnerRaft(3, [1, 2], [3], 8, 2)
        self.assertTrue(sm.restore(s))
        self.assertEqual(sm.raftLog.lastIndex(), 11)
        self.assertEqual((sorted(sm.prs.voters), sorted(sm.prs.learners)), ([1, 2], [3]))
        self.assertTrue(sm.prs.progress[3].isLearner)
        self.assertTrue(sm.isLearner)
        self.assertFalse(sm.restore(s))

    def test_restoreInvalidLearner(self):
        """A voter is not demoted to learner by a snapshot."""
        s = makeSnap(11, 11, voters=[1, 2], learners=[3])
        sm = newTestRaft(3, [1, 2, 3])
        self.assertFalse(sm.isLearner)
        self.assertFalse(sm.restore(s))
        self.assertEqual(sm.raftLog.lastIndex(), 0)

    def test_restoreLearnerPromotion(self):
        s = makeSnap(11, 11, voters=[1, 2, 3])
        sm = newTestLearnerRaft(3, [1, 2], [3])
        self.assertTrue(sm.isLearner)
        self.assertTrue(sm.restore(s))
        self.assertFalse(sm.isLearner)

    def test_restoreIgnoreSnapshot(self):
        sm = newTestRaft(1, [1, 2])
        sm.raftLog.append([Entry(Index=i, Term=1) for i in (1, 2, 3)])
        sm.raftLog.commitTo(1)
        s = makeSnap(1, 1, voters=[1, 2])
        self.assertFalse(sm.restore(s))
        self.assertEqual(sm.raftLog.committed, 1)
        # Same index and term as an entry we have: just fast-forward the commit.
        s.metadata.index = 2
        self.assertFalse(sm.restore(s))
        self.assertEqual(sm.raftLog.committed, 2)
        self.assertEqual(sm.raftLog.lastIndex(), 3)

    def test_restoreFromSnapMsg(self):
        m = msg(MsgSnap, frm=1, to=2, term=2)
        m.snapshot.CopyFrom(testingSnap())
        sm = newTestRaft(2, [1, 2])
        sm.step(m)
        self.assertEqual(sm.lead, 1)
        self.assertEqual((sm.raftLog.lastIndex(), sm.raftLog.committed), (11, 11))
        [resp] = sm.readMessages()
        self.assertEqual((resp.type, resp.to, resp.index), (MsgAppResp, 1, 11))

    def test_snapshotWithoutUsRefused(self):
        m = msg(MsgSnap, frm=1, to=2, term=2)
        m.snapshot.CopyFrom(makeSnap(11, 11, voters=[1, 3]))
        sm = newTestRaft(2, [1, 2, 3])
        sm.step(m)
        self.assertEqual((sm.raftLog.lastIndex(), sm.raftLog.committed), (0, 0))
        [resp] = sm.readMessages()
        self.assertEqual((resp.type, resp.index, resp.reject), (MsgAppResp, 0, False))

    def test_staleSnapshotAnsweredWithCommit(self):
        sm = newTestRaft(2, [1, 2])
        sm.becomeFollower(2, 1)
        sm.raftLog.append([Entry(Index=i, Term=1) for i in (1, 2, 3)])
        sm.raftLog.commitTo(3)
        m = msg(MsgSnap, frm=1, to=2, term=2)
        m.snapshot.CopyFrom(makeSnap(2, 1, voters=[1, 2]))
        sm.step(m)
        [resp] = sm.readMessages()
        self.assertEqual((resp.index, sm.raftLog.lastIndex()), (3, 3))

    def test_emptyAndJointSnapshotsRefused(self):
        sm = newTestRaft(2, [1, 2])
        for snap in (Snapshot(), makeSnap(5, 1, voters=[1, 2], learners=[2])):
            m = msg(MsgSnap, frm=1, to=2, term=2)
            m.snapshot.CopyFrom(snap)
            sm.step(m)
            self.assertEqual(sm.raftLog.lastIndex(), 0)
        snap = makeSnap(5, 1, voters=[1, 2])
        snap.metadata.conf_state.voters_outgoing.extend([1, 2, 3])
        m = msg(MsgSnap, frm=1, to=2, term=2)
        m.snapshot.CopyFrom(snap)
        sm.step(m)
        self.assertEqual(sm.raftLog.lastIndex(), 0)


class SendSnapshotTests(SynchronousTestCase):
    def _leaderFromSnap(self):
        sm = newTestRaft(1, [1], storage=MemoryStorage())
        sm.restore(testingSnap())
        sm.becomeCandidate()
        sm.becomeLeader()
        return sm

    def test_provideSnap(self):
        sm = self._leaderFromSnap()
        sm.prs.progress[2].next = sm.raftLog.firstIndex()
        sm.step(msg(MsgAppResp, frm=2, to=1, index=sm.prs.progress[2].next - 1, reject=True))
        msgs = sm.readMessages()
        self.assertEqual([m.type for m in msgs], [MsgSnap])
        self.assertEqual(msgs[0].snapshot.metadata.index, 11)
        self.assertEqual(sm.prs.progress[2].pendingSnapshot, 11)

    def test_ignoreProvidingSnap(self):
        """No snapshot for a follower not recently active."""
        sm = self._leaderFromSnap()
        sm.prs.progress[2].next = sm.raftLog.firstIndex() - 1
        sm.prs.progress[2].recentActive = False
        sm.step(prop(1))
        self.assertEqual(sm.readMessages(), [])

    def test_pendingSnapshotPauseReplication(self):
        sm = self._leaderFromSnap()
        sm.prs.progress[2].becomeSnapshot(11)
        sm.step(prop(1))
        self.assertEqual(sm.readMessages(), [])

    def test_snapshotFailure(self):
        sm = self._leaderFromSnap()
        pr = sm.prs.progress[2]
        pr.next = 1
        pr.becomeSnapshot(11)
        sm.step(msg(MsgSnapStatus, frm=2, to=1, reject=True))
        self.assertEqual((pr.pendingSnapshot, pr.next, pr.probeSent, pr.state),
                         (0, 1, True, StateProbe))

    def test_snapshotSucceed(self):
        sm = self._leaderFromSnap()
        pr = sm.prs.progress[2]
        pr.next = 1
        pr.becomeSnapshot(11)
        sm.step(msg(MsgSnapStatus, frm=2, to=1, reject=False))
        self.assertEqual((pr.pendingSnapshot, pr.next, pr.probeSent, pr.state),
                         (0, 12, True, StateProbe))

    def test_snapshotAbort(self):
        """An ack at or past the pending snapshot ends snapshot state."""
        sm = self._leaderFromSnap()
        pr = sm.prs.progress[2]
        pr.next = 1
        pr.becomeSnapshot(11)
        sm.step(msg(MsgAppResp, frm=2, to=1, index=11))
        self.assertEqual((pr.pendingSnapshot, pr.state), (0, StateReplicate))
        # Entry 12 (the leader's empty entry) went out optimistically.
        self.assertEqual((pr.next, pr.inflights.count), (13, 1))

    def test_slowNodeRestore(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        nt.isolate(3)
        for _ in range(101):
            nt.send(msg(MsgProp, frm=1, to=1, entries=[Entry()]))
        lead = nt.peers[1]
        nextEnts(lead, nt.storage[1])
        nt.storage[1].createSnapshot(lead.raftLog.applied,
                                     ConfState(voters=sorted(lead.prs.voters)), b"")
        nt.storage[1].compact(lead.raftLog.applied)
        nt.recover()
        for _ in range(10):
            nt.send(msg(MsgBeat, frm=1, to=1))
            if lead.prs.progress[3].recentActive:
                break
        self.assertTrue(lead.prs.progress[3].recentActive)
        nt.send(prop(1))
        follower = nt.peers[3]
        nt.send(prop(1))
        self.assertEqual(follower.raftLog.committed, lead.raftLog.committed)
        self.assertGreater(follower.raftLog.firstIndex(), 100)

    def test_learnerReceiveSnapshot(self):
        store = MemoryStorage()
        n1 = newTestLearnerRaft(1, [1], [2], storage=store)
        n2 = newTestLearnerRaft(2, [1], [2])
        n1.restore(makeSnap(11, 11, voters=[1], learners=[2]))
        snap = n1.raftLog.unstable.snapshot
        store.applySnapshot(snap)
        n1.raftLog.stableSnapTo(snap.metadata.index)
        n1.raftLog.appliedTo(n1.raftLog.committed)
        nt = Network(n1, n2)
        setRandomizedElectionTimeout(n1, n1.electionTimeout)
        for _ in range(n1.electionTimeout):
            n1.tick()
        nt.send(msg(MsgBeat, frm=1, to=1))
        self.assertEqual(n2.raftLog.committed, n1.raftLog.committed)
        self.assertEqual(n2.state, StateFollower)

    def test_snapshotStateInSendAppend(self):
        """A follower behind the compacted log goes to snapshot state and gets paused."""
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        nt.isolate(3)
        nt.send(prop(1))
        nextEnts(lead, nt.storage[1])
        nt.storage[1].createSnapshot(lead.raftLog.applied, lead.confState(), b"state")
        nt.storage[1].compact(lead.raftLog.applied)
        pr = lead.prs.progress[3]
        pr.becomeProbe()
        pr.next = 1
        pr.recentActive = True
        lead.sendAppend(3)
        [m] = lead.readMessages()
        self.assertEqual((m.type, m.snapshot.data, pr.state), (MsgSnap, b"state", StateSnapshot))
        self.assertTrue(pr.isPaused())
