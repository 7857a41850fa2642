# -*- test-case-name: raftmux.test.test_raft_progress -*-
"""
``Progress``, ``Inflights`` and the majority rules of ``ProgressTracker``
(etcd's tracker/progress_test.go, inflights_test.go and quorum tests).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.progress import (
    Inflights,
    Progress,
    ProgressTracker,
    StateProbe,
    StateReplicate,
    StateSnapshot,
    VoteLost,
    VotePending,
    VoteWon,
    majorityIndex,
    voteResult,
)


class InflightsTests(SynchronousTestCase):
    def test_addAndFull(self):
        f = Inflights(10)
        for i in range(5):
            f.add(i)
        self.assertEqual((f.count, f.full()), (5, False))
        for i in range(5, 10):
            f.add(i)
        self.assertTrue(f.full())
        self.assertRaises(OverflowError, f.add, 10)

    def test_freeLE(self):
        f = Inflights(10)
        for i in range(10):
            f.add(i)
        f.freeLE(4)
        self.assertEqual(f.count, 5)
        f.freeLE(8)
        self.assertEqual(f.count, 1)
        for i in range(10, 15):
            f.add(i)
        f.freeLE(12)
        self.assertEqual(f.count, 2)
        f.freeLE(14)
        self.assertEqual(f.count, 0)

    def test_freeFirstOne(self):
        f = Inflights(10)
        for i in range(10):
            f.add(i)
        f.freeFirstOne()
        self.assertEqual(f.count, 9)
        f.freeLE(0)
        self.assertEqual(f.count, 9)


class ProgressTests(SynchronousTestCase):
    def test_isPaused(self):
        for state, probeSent, w in [(StateProbe, False, False), (StateProbe, True, True),
                                    (StateReplicate, False, False),
                                    (StateReplicate, True, False),
                                    (StateSnapshot, False, True), (StateSnapshot, True, True)]:
            p = Progress(inflights=Inflights(256))
            p.state = state
            p.probeSent = probeSent
            self.assertEqual(p.isPaused(), w, (state, probeSent))

    def test_resume(self):
        p = Progress(next=2, inflights=Inflights(256))
        p.probeSent = True
        p.maybeDecrTo(1, 1)
        self.assertFalse(p.probeSent)
        p.probeSent = True
        p.maybeUpdate(2)
        self.assertFalse(p.probeSent)

    def test_becomeProbe(self):
        match = 1
        cases = [
            (StateReplicate, 0, 5, 2),
            (StateSnapshot, 10, 5, 11),   # snapshot finished
            (StateSnapshot, 0, 5, 2),     # snapshot failed
        ]
        for state, pending, nxt, wnext in cases:
            p = Progress(match=match, next=nxt, inflights=Inflights(256))
            p.state = state
            p.pendingSnapshot = pending
            p.becomeProbe()
            self.assertEqual((p.state, p.match, p.next), (StateProbe, match, wnext))

    def test_becomeReplicateAndSnapshot(self):
        p = Progress(match=1, next=5, inflights=Inflights(256))
        p.becomeReplicate()
        self.assertEqual((p.state, p.next), (StateReplicate, 2))
        p.becomeSnapshot(10)
        self.assertEqual((p.state, p.match, p.pendingSnapshot), (StateSnapshot, 1, 10))

    def test_update(self):
        prevM, prevN = 3, 5
        for update, wm, wn, wok in [(prevM - 1, prevM, prevN, False), (prevM, prevM, prevN, False),
                                    (prevM + 1, prevM + 1, prevN, True),
                                    (prevM + 2, prevM + 2, prevN + 1, True)]:
            p = Progress(match=prevM, next=prevN, inflights=Inflights(256))
            self.assertEqual(p.maybeUpdate(update), wok)
            self.assertEqual((p.match, p.next), (wm, wn))

    def test_maybeDecr(self):
        cases = [
            (StateReplicate, 5, 10, 5, 5, False, 10),  # stale
            (StateReplicate, 5, 10, 4, 4, False, 10),  # stale
            (StateReplicate, 5, 10, 9, 9, True, 6),    # back to match+1
            (StateProbe, 0, 0, 0, 0, False, 0),        # next-1 != rejected
            (StateProbe, 0, 10, 5, 5, False, 10),
            (StateProbe, 0, 10, 9, 9, True, 9),
            (StateProbe, 0, 2, 1, 1, True, 1),
            (StateProbe, 0, 1, 0, 0, True, 1),
            (StateProbe, 0, 10, 9, 2, True, 3),        # min(rejected, last+1)
            (StateProbe, 0, 10, 9, 0, True, 1),
        ]
        for state, m, n, rejected, last, w, wn in cases:
            p = Progress(match=m, next=n, inflights=Inflights(256))
            p.state = state
            self.assertEqual(p.maybeDecrTo(rejected, last), w)
            self.assertEqual((p.match, p.next), (m, wn), (state, m, n, rejected, last))


class QuorumTests(SynchronousTestCase):
    def test_majorityIndex(self):
        self.assertEqual(majorityIndex([], {}), 0)
        self.assertEqual(majorityIndex([1], {1: 5}), 5)
        self.assertEqual(majorityIndex([1, 2, 3], {1: 5, 2: 3, 3: 9}), 5)
        self.assertEqual(majorityIndex([1, 2, 3, 4], {1: 5, 2: 3, 3: 9, 4: 1}), 3)
        self.assertEqual(majorityIndex([1, 2, 3], {1: 5}), 0)

    def test_voteResult(self):
        self.assertEqual(voteResult([], {}), VoteWon)
        self.assertEqual(voteResult([1, 2, 3], {1: True}), VotePending)
        self.assertEqual(voteResult([1, 2, 3], {1: True, 2: True}), VoteWon)
        self.assertEqual(voteResult([1, 2, 3], {1: False, 2: False}), VoteLost)
        self.assertEqual(voteResult([1, 2, 3, 4], {1: True, 2: True}), VotePending)
        self.assertEqual(voteResult([1, 2, 3, 4], {1: True, 2: False, 3: False}), VoteLost)
        # votes from outside the configuration do not count
        self.assertEqual(voteResult([1, 2, 3], {1: True, 7: True, 8: True}), VotePending)

    def test_trackerVotesOnlyOnce(self):
        t = ProgressTracker(256)
        for i in (1, 2, 3):
            t.initProgress(i, 1, False)
        t.recordVote(2, False)
        t.recordVote(2, True)
        t.recordVote(1, True)
        self.assertEqual(t.tallyVotes(), (1, 1, VotePending))

    def test_learnersDoNotCount(self):
        t = ProgressTracker(256)
        t.initProgress(1, 1, False)
        t.initProgress(2, 1, True)
        t.progress[1].match = 4
        t.progress[2].match = 9
        self.assertEqual(t.committed(), 4)
        self.assertTrue(t.isSingleton())
        self.assertEqual(t.ids(), [1, 2])
