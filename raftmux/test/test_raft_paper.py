# -*- test-case-name: raftmux.test.test_raft_paper -*-
"""
The raft paper's section 5 rules, one test each, ported from the scenarios
of etcd raft's ``raft_paper_test.go``.  Each builds a core in a known
state, steps messages or ticks into it, and checks its messages and state.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.core import StateCandidate, StateFollower, StateLeader
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raftpb import (
    Entry,
    HardState,
    MsgApp,
    MsgAppResp,
    MsgHeartbeat,
    MsgHup,
    MsgProp,
    MsgVote,
    MsgVoteResp,
)
from raftmux.test.test_raft_network import BlackHole, Network, msg, newTestRaft


def idsBySize(size):
    return list(range(1, size + 1))


def describe(m):
    """A message as a comparable tuple (etcd's tests compare whole structs)."""
    return (m.type, getattr(m, "from"), m.to, m.term, m.logTerm, m.index, m.commit,
            m.reject, m.rejectHint, tuple(describeEntry(e) for e in m.entries))


def describeEntry(e):
    return (e.Index, e.Term, e.Type, e.Data)


def want(type, frm, to, term=0, logTerm=0, index=0, commit=0, reject=False,
         rejectHint=0, entries=()):
    return (type, frm, to, term, logTerm, index, commit, reject, rejectHint,
            tuple(describeEntry(e) for e in entries))


def sortedMsgs(msgs):
    return sorted(describe(m) for m in msgs)


def acceptAndReply(m):
    assert m.type == MsgApp, m
    return msg(MsgAppResp, frm=m.to, to=getattr(m, "from"), term=m.term,
               index=m.index + len(m.entries))


def commitNoopEntry(r, storage):
    """Have the followers ack the new leader's empty entry, then persist and apply it."""
    assert r.state == StateLeader
    r.bcastAppend()
    for m in r.readMessages():
        assert m.type == MsgApp and len(m.entries) == 1 and not m.entries[0].Data
        r.step(acceptAndReply(m))
    r.readMessages()
    storage.append(r.raftLog.unstableEntries())
    r.raftLog.appliedTo(r.raftLog.committed)
    r.raftLog.stableTo(r.raftLog.lastIndex(), r.raftLog.lastTerm())


def entries(*pairs):
    """Entries from (index, term) pairs."""
    return [Entry(Index=i, Term=t) for i, t in pairs]


def logEntries(raftLog):
    return [describeEntry(e) for e in raftLog.allEntries()]


class TermRulesTests(SynchronousTestCase):
    """Section 5.1: terms."""

    def _updateTermFromMessage(self, state):
        r = newTestRaft(1, [1, 2, 3])
        if state == StateFollower:
            r.becomeFollower(1, 2)
        elif state == StateCandidate:
            r.becomeCandidate()
        else:
            r.becomeCandidate()
            r.becomeLeader()
        r.step(msg(MsgApp, term=2))
        self.assertEqual(r.term, 2)
        self.assertEqual(r.state, StateFollower)

    def test_followerUpdateTermFromMessage(self):
        self._updateTermFromMessage(StateFollower)

    def test_candidateUpdateTermFromMessage(self):
        self._updateTermFromMessage(StateCandidate)

    def test_leaderUpdateTermFromMessage(self):
        self._updateTermFromMessage(StateLeader)

    def test_rejectStaleTermMessage(self):
        """A message of an older term never reaches the role's step function."""
        called = []
        r = newTestRaft(1, [1, 2, 3])
        r._step = called.append
        r.loadState(HardState(term=2))
        r.step(msg(MsgApp, term=r.term - 1))
        self.assertEqual(called, [])
        # (a fresh message of the current term does reach it)
        r.step(msg(MsgApp, term=r.term))
        self.assertEqual(len(called), 1)


class ElectionTests(SynchronousTestCase):
    """Section 5.2: leader election."""

    def test_startAsFollower(self):
        r = newTestRaft(1, [1, 2, 3])
        self.assertEqual(r.state, StateFollower)

    def test_leaderBcastBeat(self):
        r = newTestRaft(1, [1, 2, 3], 10, 1)
        r.becomeCandidate()
        r.becomeLeader()
        for i in range(10):
            r.appendEntry([Entry(Index=i + 1)])
        r.tick()
        self.assertEqual(sortedMsgs(r.readMessages()), [
            want(MsgHeartbeat, 1, 2, term=1),
            want(MsgHeartbeat, 1, 3, term=1),
        ])

    def _nonleaderStartElection(self, state):
        et = 10
        r = newTestRaft(1, [1, 2, 3], et, 1)
        if state == StateFollower:
            r.becomeFollower(1, 2)
        else:
            r.becomeCandidate()
        for _ in range(1, 2 * et):
            r.tick()
        self.assertEqual(r.term, 2)
        self.assertEqual(r.state, StateCandidate)
        self.assertTrue(r.prs.votes[r.id])
        self.assertEqual(sortedMsgs(r.readMessages()), [
            want(MsgVote, 1, 2, term=2),
            want(MsgVote, 1, 3, term=2),
        ])

    def test_followerStartElection(self):
        self._nonleaderStartElection(StateFollower)

    def test_candidateStartNewElection(self):
        self._nonleaderStartElection(StateCandidate)

    def test_leaderElectionInOneRoundRPC(self):
        cases = [
            (1, {}, StateLeader),
            (3, {2: True, 3: True}, StateLeader),
            (3, {2: True}, StateLeader),
            (5, {2: True, 3: True, 4: True, 5: True}, StateLeader),
            (5, {2: True, 3: True, 4: True}, StateLeader),
            (5, {2: True, 3: True}, StateLeader),
            (3, {2: False, 3: False}, StateFollower),
            (5, {2: False, 3: False, 4: False, 5: False}, StateFollower),
            (5, {2: True, 3: False, 4: False, 5: False}, StateFollower),
            (3, {}, StateCandidate),
            (5, {2: True}, StateCandidate),
            (5, {2: False, 3: False}, StateCandidate),
            (5, {}, StateCandidate),
        ]
        for size, votes, state in cases:
            r = newTestRaft(1, idsBySize(size))
            r.step(msg(MsgHup, frm=1, to=1))
            for id, vote in votes.items():
                r.step(msg(MsgVoteResp, frm=id, to=1, term=r.term, reject=not vote))
            self.assertEqual((size, votes, r.state), (size, votes, state))
            self.assertEqual(r.term, 1)

    def test_followerVote(self):
        cases = [(0, 1, False), (0, 2, False), (1, 1, False), (2, 2, False),
                 (1, 2, True), (2, 1, True)]
        for vote, nvote, wreject in cases:
            r = newTestRaft(1, [1, 2, 3])
            r.loadState(HardState(term=1, vote=vote))
            r.step(msg(MsgVote, frm=nvote, to=1, term=1))
            self.assertEqual([describe(m) for m in r.readMessages()],
                             [want(MsgVoteResp, 1, nvote, term=1, reject=wreject)])

    def test_candidateFallback(self):
        for term in (1, 2):
            r = newTestRaft(1, [1, 2, 3])
            r.step(msg(MsgHup, frm=1, to=1))
            self.assertEqual(r.state, StateCandidate)
            r.step(msg(MsgApp, frm=2, to=1, term=term))
            self.assertEqual(r.state, StateFollower)
            self.assertEqual(r.term, term)
            self.assertEqual(r.lead, 2)

    def _electionTimeoutRandomized(self, state):
        et = 10
        r = newTestRaft(1, [1, 2, 3], et, 1)
        timeouts = set()
        for _ in range(50 * et):
            if state == StateFollower:
                r.becomeFollower(r.term + 1, 2)
            else:
                r.becomeCandidate()
            time = 0
            while not r.readMessages():
                r.tick()
                time += 1
                self.assertLess(time, 2 * et + 1)
            timeouts.add(time)
        # Every timeout in [et, 2*et) happens, and no other.
        self.assertEqual(timeouts, set(range(et, 2 * et)))

    def test_followerElectionTimeoutRandomized(self):
        self._electionTimeoutRandomized(StateFollower)

    def test_candidateElectionTimeoutRandomized(self):
        self._electionTimeoutRandomized(StateCandidate)

    def _electionTimeoutNonconflict(self, state):
        et, size = 10, 5
        ids = idsBySize(size)
        rs = [newTestRaft(i, ids, et, 1, random=random.Random(100 + i)) for i in ids]
        conflicts = 0
        rounds = 300
        for _ in range(rounds):
            for r in rs:
                if state == StateFollower:
                    r.becomeFollower(r.term + 1, 0)
                else:
                    r.becomeCandidate()
            timeouts = 0
            for _tick in range(2 * et + 1):
                for r in rs:
                    r.tick()
                    if r.readMessages():
                        timeouts += 1
                if timeouts:
                    break
            self.assertGreater(timeouts, 0)
            if timeouts > 1:
                conflicts += 1
        self.assertLessEqual(conflicts / rounds, 0.3)

    def test_followersElectionTimeoutNonconflict(self):
        self._electionTimeoutNonconflict(StateFollower)

    def test_candidatesElectionTimeoutNonconflict(self):
        self._electionTimeoutNonconflict(StateCandidate)


class ReplicationTests(SynchronousTestCase):
    """Section 5.3: log replication."""

    def _leader(self, size=3):
        s = MemoryStorage()
        r = newTestRaft(1, idsBySize(size), 10, 1, s)
        r.becomeCandidate()
        r.becomeLeader()
        commitNoopEntry(r, s)
        return r, s

    def test_leaderStartReplication(self):
        r, _ = self._leader()
        li = r.raftLog.lastIndex()
        r.step(msg(MsgProp, frm=1, to=1, entries=[b"some data"]))
        self.assertEqual(r.raftLog.lastIndex(), li + 1)
        self.assertEqual(r.raftLog.committed, li)
        wents = [Entry(Index=li + 1, Term=1, Data=b"some data")]
        self.assertEqual(sortedMsgs(r.readMessages()), [
            want(MsgApp, 1, 2, term=1, index=li, logTerm=1, entries=wents, commit=li),
            want(MsgApp, 1, 3, term=1, index=li, logTerm=1, entries=wents, commit=li),
        ])
        self.assertEqual([describeEntry(e) for e in r.raftLog.unstableEntries()],
                         [describeEntry(e) for e in wents])

    def test_leaderCommitEntry(self):
        r, _ = self._leader()
        li = r.raftLog.lastIndex()
        r.step(msg(MsgProp, frm=1, to=1, entries=[b"some data"]))
        for m in r.readMessages():
            r.step(acceptAndReply(m))
        self.assertEqual(r.raftLog.committed, li + 1)
        self.assertEqual([describeEntry(e) for e in r.raftLog.nextEnts()],
                         [(li + 1, 1, 0, b"some data")])
        msgs = sorted(r.readMessages(), key=lambda m: m.to)
        self.assertEqual([m.to for m in msgs], [2, 3])
        for m in msgs:
            self.assertEqual(m.type, MsgApp)
            self.assertEqual(m.commit, li + 1)

    def test_leaderAcknowledgeCommit(self):
        cases = [
            (1, set(), True), (3, set(), False), (3, {2}, True), (3, {2, 3}, True),
            (5, set(), False), (5, {2}, False), (5, {2, 3}, True),
            (5, {2, 3, 4}, True), (5, {2, 3, 4, 5}, True),
        ]
        for size, acceptors, wack in cases:
            r, _ = self._leader(size)
            li = r.raftLog.lastIndex()
            r.step(msg(MsgProp, frm=1, to=1, entries=[b"some data"]))
            for m in r.readMessages():
                if m.to in acceptors:
                    r.step(acceptAndReply(m))
            self.assertEqual((size, acceptors, r.raftLog.committed > li),
                             (size, acceptors, wack))

    def test_leaderCommitPrecedingEntries(self):
        cases = [[], [(1, 2)], [(1, 1), (2, 2)], [(1, 1)]]
        for pairs in cases:
            storage = MemoryStorage()
            storage.append(entries(*pairs))
            r = newTestRaft(1, [1, 2, 3], 10, 1, storage)
            r.loadState(HardState(term=2))
            r.becomeCandidate()
            r.becomeLeader()
            r.step(msg(MsgProp, frm=1, to=1, entries=[b"some data"]))
            for m in r.readMessages():
                r.step(acceptAndReply(m))
            li = len(pairs)
            wents = [(i, t, 0, b"") for i, t in pairs] + [
                (li + 1, 3, 0, b""), (li + 2, 3, 0, b"some data")]
            self.assertEqual([describeEntry(e) for e in r.raftLog.nextEnts()], wents)

    def test_followerCommitEntry(self):
        cases = [
            ([(1, 1, b"some data")], 1),
            ([(1, 1, b"some data"), (2, 1, b"some data2")], 2),
            ([(1, 1, b"some data2"), (2, 1, b"some data")], 2),
            ([(1, 1, b"some data"), (2, 1, b"some data2")], 1),
        ]
        for ents, commit in cases:
            r = newTestRaft(1, [1, 2, 3])
            r.becomeFollower(1, 2)
            r.step(msg(MsgApp, frm=2, to=1, term=1, commit=commit,
                       entries=[Entry(Index=i, Term=t, Data=d) for i, t, d in ents]))
            self.assertEqual(r.raftLog.committed, commit)
            self.assertEqual([describeEntry(e) for e in r.raftLog.nextEnts()],
                             [(i, t, 0, d) for i, t, d in ents[:commit]])

    def test_followerCheckMsgApp(self):
        ents = entries((1, 1), (2, 2))
        cases = [
            # (logTerm, index) -> (index, reject, rejectHint)
            (0, 0, 1, False, 0),
            (1, 1, 1, False, 0),
            (2, 2, 2, False, 0),
            (1, 2, 2, True, 2),
            (3, 3, 3, True, 2),
        ]
        for logTerm, index, windex, wreject, whint in cases:
            storage = MemoryStorage()
            storage.append(ents)
            r = newTestRaft(1, [1, 2, 3], 10, 1, storage)
            r.loadState(HardState(commit=1))
            r.becomeFollower(2, 2)
            r.step(msg(MsgApp, frm=2, to=1, term=2, logTerm=logTerm, index=index))
            self.assertEqual([describe(m) for m in r.readMessages()], [
                want(MsgAppResp, 1, 2, term=2, index=windex, reject=wreject,
                     rejectHint=whint)])

    def test_followerAppendEntries(self):
        cases = [
            (2, 2, [(3, 3)], [(1, 1), (2, 2), (3, 3)], [(3, 3)]),
            (1, 1, [(2, 3), (3, 4)], [(1, 1), (2, 3), (3, 4)], [(2, 3), (3, 4)]),
            (0, 0, [(1, 1)], [(1, 1), (2, 2)], []),
            (0, 0, [(1, 3)], [(1, 3)], [(1, 3)]),
        ]
        for index, term, ents, wents, wunstable in cases:
            storage = MemoryStorage()
            storage.append(entries((1, 1), (2, 2)))
            r = newTestRaft(1, [1, 2, 3], 10, 1, storage)
            r.becomeFollower(2, 2)
            r.step(msg(MsgApp, frm=2, to=1, term=2, logTerm=term, index=index,
                       entries=entries(*ents)))
            self.assertEqual([(e.Index, e.Term) for e in r.raftLog.allEntries()], wents)
            self.assertEqual([(e.Index, e.Term) for e in r.raftLog.unstableEntries()],
                             wunstable)

    def test_leaderSyncFollowerLog(self):
        """Figure 7: a new leader brings every kind of divergent log in line."""
        leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
        term = 8
        followers = [
            [1, 1, 1, 4, 4, 5, 5, 6, 6],
            [1, 1, 1, 4],
            [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
            [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
            [1, 1, 1, 4, 4, 4, 4],
            [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        ]
        for terms in followers:
            leadStorage = MemoryStorage()
            leadStorage.append([Entry(Index=i + 1, Term=t) for i, t in enumerate(leaderTerms)])
            lead = newTestRaft(1, [1, 2, 3], 10, 1, leadStorage)
            lead.loadState(HardState(commit=lead.raftLog.lastIndex(), term=term))
            followerStorage = MemoryStorage()
            followerStorage.append([Entry(Index=i + 1, Term=t) for i, t in enumerate(terms)])
            follower = newTestRaft(2, [1, 2, 3], 10, 1, followerStorage)
            follower.loadState(HardState(term=term - 1))
            # The follower may have the longer log; the leader needs 3's vote.
            n = Network(lead, follower, BlackHole())
            n.send(msg(MsgHup, frm=1, to=1))
            n.send(msg(MsgVoteResp, frm=3, to=1, term=term + 1))
            self.assertEqual(lead.state, StateLeader)
            n.send(msg(MsgProp, frm=1, to=1, entries=[Entry()]))
            self.assertEqual(logEntries(lead.raftLog), logEntries(follower.raftLog))
            self.assertEqual(lead.raftLog.committed, follower.raftLog.committed)


class SafetyTests(SynchronousTestCase):
    """Section 5.4: election restriction and commitment rules."""

    def test_voteRequest(self):
        for ents, wterm in [([(1, 1)], 2), ([(1, 1), (2, 2)], 3)]:
            r = newTestRaft(1, [1, 2, 3])
            r.step(msg(MsgApp, frm=2, to=1, term=wterm - 1, entries=entries(*ents)))
            r.readMessages()
            for _ in range(1, r.electionTimeout * 2):
                r.tickElection()
            msgs = sorted(r.readMessages(), key=lambda m: m.to)
            self.assertEqual(len(msgs), 2)
            windex, wlogterm = ents[-1]
            for i, m in enumerate(msgs):
                self.assertEqual((m.type, m.to, m.term, m.index, m.logTerm),
                                 (MsgVote, i + 2, wterm, windex, wlogterm))

    def test_voter(self):
        cases = [
            ([(1, 1)], 1, 1, False),
            ([(1, 1)], 1, 2, False),
            ([(1, 1), (2, 1)], 1, 1, True),
            ([(1, 1)], 2, 1, False),
            ([(1, 1)], 2, 2, False),
            ([(1, 1), (2, 1)], 2, 1, False),
            ([(1, 2)], 1, 1, True),
            ([(1, 2)], 1, 2, True),
            ([(1, 2), (2, 1)], 1, 1, True),
        ]
        for ents, logterm, index, wreject in cases:
            storage = MemoryStorage()
            storage.append(entries(*ents))
            r = newTestRaft(1, [1, 2], 10, 1, storage)
            r.step(msg(MsgVote, frm=2, to=1, term=3, logTerm=logterm, index=index))
            msgs = r.readMessages()
            self.assertEqual(len(msgs), 1)
            self.assertEqual((msgs[0].type, msgs[0].reject), (MsgVoteResp, wreject),
                             (ents, logterm, index))

    def test_leaderOnlyCommitsLogFromCurrentTerm(self):
        for index, wcommit in [(1, 0), (2, 0), (3, 3)]:
            storage = MemoryStorage()
            storage.append(entries((1, 1), (2, 2)))
            r = newTestRaft(1, [1, 2], 10, 1, storage)
            r.loadState(HardState(term=2))
            r.becomeCandidate()
            r.becomeLeader()
            r.readMessages()
            r.step(msg(MsgProp, frm=1, to=1, entries=[Entry()]))
            r.step(msg(MsgAppResp, frm=2, to=1, term=r.term, index=index))
            self.assertEqual(r.raftLog.committed, wcommit)
