# -*- test-case-name: raftmux.test.test_raft_core -*-
"""
The classic scenarios of etcd raft's ``raft_test.go`` for elections,
pre-vote, check-quorum and the leader lease, replication and flow control,
proposals, and bad input from peers, on the in-memory ``Network``.
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.config import Config, ConfigError
from raftmux.raft.core import (
    ProposalDropped,
    Raft,
    StateCandidate,
    StateFollower,
    StateLeader,
    StatePreCandidate,
)
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.progress import StateProbe, StateReplicate
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    Entry,
    HardState,
    MsgApp,
    MsgAppResp,
    MsgBeat,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgPreVote,
    MsgPreVoteResp,
    MsgProp,
    MsgTimeoutNow,
    MsgUnreachable,
    MsgVote,
    MsgVoteResp,
)
from raftmux.test.test_raft_network import (
    BlackHole,
    Network,
    entsWithConfig,
    hup,
    msg,
    newTestConfig,
    newTestRaft,
    prop,
    votedWithConfig,
)

_respType = {MsgVote: MsgVoteResp, MsgPreVote: MsgPreVoteResp}


def nextEnts(r, storage):
    """Persist everything unstable, then take and apply the committed entries."""
    storage.append(r.raftLog.unstableEntries())
    r.raftLog.stableTo(r.raftLog.lastIndex(), r.raftLog.lastTerm())
    out = r.raftLog.nextEnts()
    r.raftLog.appliedTo(r.raftLog.committed)
    return out


def logOf(r):
    return [(e.Index, e.Term, e.Data) for e in r.raftLog.allEntries()], r.raftLog.committed


def setRandomizedElectionTimeout(r, v):
    r.randomizedElectionTimeout = v


def preVoteNetwork(*peers, checkQuorum=False):
    return Network(*peers, configure=lambda id: {"preVote": True, "checkQuorum": checkQuorum})


class ConfigTests(SynchronousTestCase):
    def test_validation(self):
        for kw in [dict(id=0), dict(heartbeatTick=0), dict(electionTick=1),
                   dict(maxInflightMsgs=0),
                   dict(readOnlyOption="ReadOnlyLeaseBased", checkQuorum=False)]:
            args = dict(id=1, storage=MemoryStorage())
            args.update(kw)
            self.assertRaises(ConfigError, Raft, Config(**args))

    def test_stateLoadedFromStorage(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=2)])
        s.setHardState(HardState(term=3, vote=2, commit=1))
        r = newTestRaft(1, [1, 2, 3], storage=s)
        self.assertEqual((r.term, r.vote, r.raftLog.committed, r.state),
                         (3, 2, 1, StateFollower))


class ElectionTests(SynchronousTestCase):
    def _leaderElection(self, preVote):
        kw = {"preVote": preVote}
        candState, candTerm = (StatePreCandidate, 0) if preVote else (StateCandidate, 1)
        nop = BlackHole
        cases = [
            ((None, None, None), StateLeader, 1),
            ((None, None, nop()), StateLeader, 1),
            ((None, nop(), nop()), candState, candTerm),
            ((None, nop(), nop(), None), candState, candTerm),
            ((None, nop(), nop(), None, None), StateLeader, 1),
            # Three logs further along, in the same term: they reject.
            ((None, entsWithConfig([1], **kw), entsWithConfig([1], **kw),
              entsWithConfig([1, 1], **kw), None), StateFollower, 1),
        ]
        for i, (peers, state, term) in enumerate(cases):
            nt = Network(*peers, configure=lambda id: dict(kw))
            nt.send(hup(1))
            sm = nt.peers[1]
            self.assertEqual((i, sm.state, sm.term), (i, state, term))

    def test_leaderElection(self):
        self._leaderElection(False)

    def test_leaderElectionPreVote(self):
        self._leaderElection(True)

    def _leaderCycle(self, preVote):
        nt = Network(None, None, None, configure=lambda id: {"preVote": preVote})
        for campaigner in (1, 2, 3):
            nt.send(hup(campaigner))
            for sm in nt.peers.values():
                want = StateLeader if sm.id == campaigner else StateFollower
                self.assertEqual((campaigner, sm.id, sm.state), (campaigner, sm.id, want))

    def test_leaderCycle(self):
        self._leaderCycle(False)

    def test_leaderCyclePreVote(self):
        self._leaderCycle(True)

    def _overwriteNewerLogs(self, preVote):
        kw = {"preVote": preVote}
        # 1 won term 1 and replicated to 2; 3 won term 2 and wrote an entry
        # no one saw; 4 and 5 voted for 3 at term 2 but got no entries.
        n = Network(entsWithConfig([1], **kw), entsWithConfig([1], **kw),
                    entsWithConfig([2], **kw), votedWithConfig(3, 2, **kw),
                    votedWithConfig(3, 2, **kw), configure=lambda id: kw)
        n.send(hup(1))
        sm1 = n.peers[1]
        self.assertEqual((sm1.state, sm1.term), (StateFollower, 2))
        n.send(hup(1))
        self.assertEqual((sm1.state, sm1.term), (StateLeader, 3))
        for sm in n.peers.values():
            self.assertEqual([e.Term for e in sm.raftLog.allEntries()], [1, 3])

    def test_leaderElectionOverwriteNewerLogs(self):
        self._overwriteNewerLogs(False)

    def test_leaderElectionOverwriteNewerLogsPreVote(self):
        self._overwriteNewerLogs(True)

    def _voteFromAnyState(self, vt):
        for state in (StateFollower, StatePreCandidate, StateCandidate, StateLeader):
            r = newTestRaft(1, [1, 2, 3])
            r.term = 1
            if state == StateFollower:
                r.becomeFollower(r.term, 3)
            elif state == StatePreCandidate:
                r.becomePreCandidate()
            elif state == StateCandidate:
                r.becomeCandidate()
            else:
                r.becomeCandidate()
                r.becomeLeader()
            origTerm, newTerm = r.term, r.term + 1
            r.step(msg(vt, frm=2, to=1, term=newTerm, logTerm=newTerm, index=42))
            msgs = r.readMessages()
            self.assertEqual(len(msgs), 1, state)
            self.assertEqual((msgs[0].type, msgs[0].reject), (_respType[vt], False))
            if vt == MsgVote:
                self.assertEqual((r.state, r.term, r.vote), (StateFollower, newTerm, 2))
            else:
                self.assertEqual((r.state, r.term), (state, origTerm))
                self.assertIn(r.vote, (0, 1))

    def test_voteFromAnyState(self):
        self._voteFromAnyState(MsgVote)

    def test_preVoteFromAnyState(self):
        self._voteFromAnyState(MsgPreVote)

    def test_duelingCandidates(self):
        a, b, c = (newTestRaft(i, [1, 2, 3]) for i in (1, 2, 3))
        nt = Network(a, b, c)
        nt.cut(1, 3)
        nt.send(hup(1))
        nt.send(hup(3))
        self.assertEqual(a.state, StateLeader)
        # 3 has its own vote and 2's rejection.
        self.assertEqual(c.state, StateCandidate)
        nt.recover()
        # 3 disrupts 1 with its higher term but, lacking the log, loses.
        nt.send(hup(3))
        wlog = ([(1, 1, b"")], 1)
        self.assertEqual((a.state, a.term, logOf(a)), (StateFollower, 2, wlog))
        self.assertEqual((b.state, b.term, logOf(b)), (StateFollower, 2, wlog))
        self.assertEqual((c.state, c.term, logOf(c)), (StateFollower, 2, ([], 0)))

    def test_duelingPreCandidates(self):
        a, b, c = (newTestRaft(i, [1, 2, 3], preVote=True) for i in (1, 2, 3))
        nt = Network(a, b, c)
        nt.cut(1, 3)
        nt.send(hup(1))
        nt.send(hup(3))
        self.assertEqual(a.state, StateLeader)
        # 3's pre-vote was rejected by 2: back to follower, term unchanged.
        self.assertEqual(c.state, StateFollower)
        nt.recover()
        # With pre-vote, 3 does not disrupt the leader.
        nt.send(hup(3))
        wlog = ([(1, 1, b"")], 1)
        self.assertEqual((a.state, a.term, logOf(a)), (StateLeader, 1, wlog))
        self.assertEqual((b.state, b.term, logOf(b)), (StateFollower, 1, wlog))
        self.assertEqual((c.state, c.term, logOf(c)), (StateFollower, 1, ([], 0)))

    def test_candidateConcede(self):
        tt = Network(None, None, None)
        tt.isolate(1)
        tt.send(hup(1))
        tt.send(hup(3))
        tt.recover()
        tt.send(msg(MsgBeat, frm=3, to=3))
        data = b"force follower"
        tt.send(prop(3, data))
        tt.send(msg(MsgBeat, frm=3, to=3))
        a = tt.peers[1]
        self.assertEqual((a.state, a.term), (StateFollower, 1))
        for sm in tt.peers.values():
            self.assertEqual(logOf(sm), ([(1, 1, b""), (2, 1, data)], 2))

    def test_singleNodeCandidate(self):
        tt = Network(None)
        tt.send(hup(1))
        self.assertEqual(tt.peers[1].state, StateLeader)

    def test_singleNodePreCandidate(self):
        tt = preVoteNetwork(None)
        tt.send(hup(1))
        self.assertEqual(tt.peers[1].state, StateLeader)

    def test_campaignWhileLeader(self):
        for preVote in (False, True):
            r = newTestRaft(1, [1], 5, 1, preVote=preVote)
            r.step(hup(1))
            self.assertEqual(r.state, StateLeader)
            term = r.term
            r.step(hup(1))
            self.assertEqual((r.state, r.term), (StateLeader, term))

    def test_pastElectionTimeout(self):
        cases = [(5, 0.0, False), (10, 0.1, True), (13, 0.4, True), (15, 0.6, True),
                 (18, 0.9, True), (20, 1.0, False)]
        for elapse, wprob, _round in cases:
            sm = newTestRaft(1, [1], 10, 1)
            sm.electionElapsed = elapse
            n = 2000
            c = 0
            for _ in range(n):
                sm.resetRandomizedElectionTimeout()
                if sm.pastElectionTimeout():
                    c += 1
            got = round(c / n, 1)
            self.assertAlmostEqual(got, wprob, places=6, msg=str(elapse))

    def test_recvMsgVote(self):
        self._recvMsgVote(MsgVote)

    def test_recvMsgPreVote(self):
        self._recvMsgVote(MsgPreVote)

    def _recvMsgVote(self, msgType):
        F, L, P, C = StateFollower, StateLeader, StatePreCandidate, StateCandidate
        cases = [
            (F, 0, 0, 0, True), (F, 0, 1, 0, True), (F, 0, 2, 0, True), (F, 0, 3, 0, False),
            (F, 1, 0, 0, True), (F, 1, 1, 0, True), (F, 1, 2, 0, True), (F, 1, 3, 0, False),
            (F, 2, 0, 0, True), (F, 2, 1, 0, True), (F, 2, 2, 0, False), (F, 2, 3, 0, False),
            (F, 3, 0, 0, True), (F, 3, 1, 0, True), (F, 3, 2, 0, False), (F, 3, 3, 0, False),
            (F, 3, 2, 2, False), (F, 3, 2, 1, True),
            (L, 3, 3, 1, True), (P, 3, 3, 1, True), (C, 3, 3, 1, True),
        ]
        for state, index, logTerm, voteFor, wreject in cases:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=2), Entry(Index=2, Term=2)])
            sm = newTestRaft(1, [1], 10, 1, s)
            sm.state = state
            sm._step = {F: sm.stepFollower, C: sm.stepCandidate, P: sm.stepCandidate,
                        L: sm.stepLeader}[state]
            sm.vote = voteFor
            # Same term on both sides: only the logs and the vote differ.
            term = max(sm.raftLog.lastTerm(), logTerm)
            sm.term = term
            sm.step(msg(msgType, frm=2, term=term, index=index, logTerm=logTerm))
            msgs = sm.readMessages()
            self.assertEqual(len(msgs), 1)
            self.assertEqual((msgs[0].type, msgs[0].reject), (_respType[msgType], wreject),
                             (state, index, logTerm, voteFor))

    def test_stateTransition(self):
        F, L, P, C = StateFollower, StateLeader, StatePreCandidate, StateCandidate
        cases = [
            (F, F, True, 1, 0), (F, P, True, 0, 0), (F, C, True, 1, 0), (F, L, False, 0, 0),
            (P, F, True, 0, 0), (P, P, True, 0, 0), (P, C, True, 1, 0), (P, L, True, 0, 1),
            (C, F, True, 0, 0), (C, P, True, 0, 0), (C, C, True, 1, 0), (C, L, True, 0, 1),
            (L, F, True, 1, 0), (L, P, False, 0, 0), (L, C, False, 1, 0), (L, L, True, 0, 1),
        ]
        for frm, to, allowed, wterm, wlead in cases:
            sm = newTestRaft(1, [1])
            sm.state = frm
            become = {F: lambda sm=sm, t=wterm, ld=wlead: sm.becomeFollower(t, ld),
                      P: sm.becomePreCandidate, C: sm.becomeCandidate, L: sm.becomeLeader}[to]
            if not allowed:
                self.assertRaises(AssertionError, become)
                continue
            become()
            self.assertEqual((sm.term, sm.lead), (wterm, wlead), (frm, to))

    def test_allServerStepdown(self):
        cases = [(StateFollower, 0), (StatePreCandidate, 0), (StateCandidate, 0),
                 (StateLeader, 1)]
        for state, windex in cases:
            sm = newTestRaft(1, [1, 2, 3])
            if state == StateFollower:
                sm.becomeFollower(1, 0)
            elif state == StatePreCandidate:
                sm.becomePreCandidate()
            elif state == StateCandidate:
                sm.becomeCandidate()
            else:
                sm.becomeCandidate()
                sm.becomeLeader()
            for mtype in (MsgVote, MsgApp):
                sm.step(msg(mtype, frm=2, term=3, logTerm=3))
                self.assertEqual((sm.state, sm.term, sm.raftLog.lastIndex()),
                                 (StateFollower, 3, windex), (state, mtype))
                self.assertEqual(len(sm.raftLog.allEntries()), windex)
                self.assertEqual(sm.lead, 0 if mtype == MsgVote else 2)

    def _candidateResetTerm(self, mt):
        a, b, c = (newTestRaft(i, [1, 2, 3]) for i in (1, 2, 3))
        nt = Network(a, b, c)
        nt.send(hup(1))
        self.assertEqual((a.state, b.state, c.state), (StateLeader, StateFollower, StateFollower))
        nt.isolate(3)
        nt.send(hup(2))
        nt.send(hup(1))
        self.assertEqual((a.state, b.state), (StateLeader, StateFollower))
        c.resetRandomizedElectionTimeout()
        for _ in range(c.randomizedElectionTimeout):
            c.tick()
        self.assertEqual(c.state, StateCandidate)
        nt.recover()
        nt.send(msg(mt, frm=1, to=3, term=a.term))
        self.assertEqual(c.state, StateFollower)
        self.assertEqual(a.term, c.term)

    def test_candidateResetTermMsgHeartbeat(self):
        self._candidateResetTerm(MsgHeartbeat)

    def test_candidateResetTermMsgApp(self):
        self._candidateResetTerm(MsgApp)

    def test_nodeWithSmallerTermCanCompleteElection(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3], preVote=True) for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        nt = Network(n1, n2, n3)
        nt.cut(1, 3)
        nt.cut(2, 3)
        nt.send(hup(1))
        self.assertEqual((n1.state, n2.state), (StateLeader, StateFollower))
        nt.send(hup(3))
        self.assertEqual(n3.state, StatePreCandidate)
        nt.send(hup(2))
        self.assertEqual((n1.term, n2.term, n3.term), (3, 3, 1))
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateFollower, StateLeader, StatePreCandidate))
        # Heal, then lose 2: the node with the smaller term still gets elected.
        nt.recover()
        nt.cut(2, 1)
        nt.cut(2, 3)
        nt.send(hup(3))
        nt.send(hup(1))
        self.assertTrue(StateLeader in (n1.state, n3.state))

    def test_preVoteWithSplitVote(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3], preVote=True) for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        nt = Network(n1, n2, n3)
        nt.send(hup(1))
        nt.isolate(1)
        nt.send(hup(2), hup(3))
        self.assertEqual((n2.term, n3.term), (3, 3))
        self.assertEqual((n2.state, n3.state), (StateCandidate, StateCandidate))
        nt.send(hup(2))
        self.assertEqual((n2.term, n3.term), (4, 4))
        self.assertEqual((n2.state, n3.state), (StateLeader, StateFollower))

    def test_preVoteWithCheckQuorum(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3], preVote=True, checkQuorum=True)
                      for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        nt = Network(n1, n2, n3)
        nt.send(hup(1))
        nt.isolate(1)
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateLeader, StateFollower, StateFollower))
        # 2 ignores 3's pre-vote (2 still has a leader) but 3 grants 2's.
        nt.send(hup(3))
        self.assertEqual(n3.state, StatePreCandidate)
        nt.send(hup(2))
        self.assertEqual((n2.state, n3.state), (StateLeader, StateFollower))

    def test_preVoteDoesNotChangeTermOrVote(self):
        """A pre-vote request with a higher term is answered with that term, and changes nothing."""
        r = newTestRaft(1, [1, 2, 3])
        r.becomeFollower(2, 0)
        r.step(msg(MsgPreVote, frm=2, to=1, term=3, logTerm=0, index=0))
        [resp] = r.readMessages()
        self.assertEqual((resp.type, resp.term, resp.reject), (MsgPreVoteResp, 3, False))
        self.assertEqual((r.term, r.vote, r.state), (2, 0, StateFollower))

    def test_stalePreVoteRejected(self):
        r = newTestRaft(1, [1, 2, 3])
        r.becomeFollower(5, 0)
        r.step(msg(MsgPreVote, frm=2, to=1, term=4))
        [resp] = r.readMessages()
        self.assertEqual((resp.type, resp.term, resp.reject), (MsgPreVoteResp, 5, True))


class CheckQuorumTests(SynchronousTestCase):
    def test_leaderStepdownWhenQuorumActive(self):
        sm = newTestRaft(1, [1, 2, 3], 5, 1, checkQuorum=True)
        sm.becomeCandidate()
        sm.becomeLeader()
        for _ in range(sm.electionTimeout + 1):
            sm.step(msg(MsgHeartbeatResp, frm=2, term=sm.term))
            sm.tick()
        self.assertEqual(sm.state, StateLeader)

    def test_leaderStepdownWhenQuorumLost(self):
        sm = newTestRaft(1, [1, 2, 3], 5, 1, checkQuorum=True)
        sm.becomeCandidate()
        sm.becomeLeader()
        for _ in range(sm.electionTimeout + 1):
            sm.tick()
        self.assertEqual(sm.state, StateFollower)

    def test_leaderSupersedingWithCheckQuorum(self):
        a, b, c = (newTestRaft(i, [1, 2, 3], checkQuorum=True) for i in (1, 2, 3))
        nt = Network(a, b, c)
        nt.send(hup(1))
        self.assertEqual((a.state, c.state), (StateLeader, StateFollower))
        nt.send(hup(3))
        # b rejects: it heard from its leader within the election timeout.
        self.assertEqual(c.state, StateCandidate)
        setRandomizedElectionTimeout(b, b.electionTimeout + 1)
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(3))
        self.assertEqual(c.state, StateLeader)

    def test_leaderElectionWithCheckQuorum(self):
        a, b, c = (newTestRaft(i, [1, 2, 3], checkQuorum=True) for i in (1, 2, 3))
        nt = Network(a, b, c)
        setRandomizedElectionTimeout(a, a.electionTimeout + 1)
        setRandomizedElectionTimeout(b, b.electionTimeout + 2)
        # Right after start, votes are cast whatever the election timeout.
        nt.send(hup(1))
        self.assertEqual((a.state, c.state), (StateLeader, StateFollower))
        setRandomizedElectionTimeout(a, a.electionTimeout + 1)
        setRandomizedElectionTimeout(b, b.electionTimeout + 2)
        for _ in range(a.electionTimeout):
            a.tick()
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(3))
        self.assertEqual((a.state, c.state), (StateFollower, StateLeader))

    def test_freeStuckCandidateWithCheckQuorum(self):
        a, b, c = (newTestRaft(i, [1, 2, 3], checkQuorum=True) for i in (1, 2, 3))
        nt = Network(a, b, c)
        setRandomizedElectionTimeout(b, b.electionTimeout + 1)
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(1))
        nt.isolate(1)
        nt.send(hup(3))
        self.assertEqual((b.state, c.state, c.term), (StateFollower, StateCandidate, b.term + 1))
        nt.send(hup(3))
        self.assertEqual((b.state, c.state, c.term), (StateFollower, StateCandidate, b.term + 2))
        nt.recover()
        nt.send(msg(MsgHeartbeat, frm=1, to=3, term=a.term))
        # The stale leader learns the higher term from 3's reply and steps down.
        self.assertEqual(a.state, StateFollower)
        self.assertEqual(c.term, a.term)
        nt.send(hup(3))
        self.assertEqual(c.state, StateLeader)

    def test_nonPromotableVoterWithCheckQuorum(self):
        a = newTestRaft(1, [1, 2], checkQuorum=True)
        b = newTestRaft(2, [1], checkQuorum=True)
        nt = Network(a, b)
        setRandomizedElectionTimeout(b, b.electionTimeout + 1)
        b.applyConfChange(ConfChange(type=ConfChangeRemoveNode, node_id=2))
        self.assertFalse(b.promotable())
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(1))
        self.assertEqual((a.state, b.state, b.lead), (StateLeader, StateFollower, 1))

    def test_disruptiveFollower(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3], checkQuorum=True) for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        nt = Network(n1, n2, n3)
        nt.send(hup(1))
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateLeader, StateFollower, StateFollower))
        # The leader's messages to 3 are late and 3 times out.
        setRandomizedElectionTimeout(n3, n3.electionTimeout + 2)
        for _ in range(n3.randomizedElectionTimeout):
            n3.tick()
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateLeader, StateFollower, StateCandidate))
        self.assertEqual((n1.term, n2.term, n3.term), (2, 2, 3))
        # The late heartbeat reaches 3, whose reply (higher term) unseats 1.
        nt.send(msg(MsgHeartbeat, frm=1, to=3, term=n1.term))
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateFollower, StateFollower, StateCandidate))
        self.assertEqual((n1.term, n2.term, n3.term), (3, 2, 3))

    def test_disruptiveFollowerPreVote(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3], checkQuorum=True) for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        nt = Network(n1, n2, n3)
        nt.send(hup(1))
        nt.isolate(3)
        for _ in range(3):
            nt.send(prop(1))
        for n in (n1, n2, n3):
            n.preVote = True
        nt.recover()
        nt.send(hup(3))
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateLeader, StateFollower, StatePreCandidate))
        self.assertEqual((n1.term, n2.term, n3.term), (2, 2, 2))
        # A late heartbeat does not unseat the leader.
        nt.send(msg(MsgHeartbeat, frm=1, to=3, term=n1.term))
        self.assertEqual(n1.state, StateLeader)

    def test_voteIgnoredWithinLease(self):
        """With check-quorum, a follower that heard from its leader ignores a vote request."""
        r = newTestRaft(1, [1, 2, 3], checkQuorum=True)
        r.becomeFollower(2, 2)
        r.step(msg(MsgVote, frm=3, to=1, term=3, logTerm=5, index=5))
        self.assertEqual(r.readMessages(), [])
        self.assertEqual((r.term, r.lead), (2, 2))
        # ...unless it is a leadership transfer.
        m = msg(MsgVote, frm=3, to=1, term=3, logTerm=5, index=5)
        m.context = b"CampaignTransfer"
        r.step(m)
        [resp] = r.readMessages()
        self.assertEqual((resp.type, resp.reject, r.term, r.vote), (MsgVoteResp, False, 3, 3))


class ReplicationTests(SynchronousTestCase):
    def test_logReplication(self):
        cases = [
            ([prop(1)], 2),
            ([prop(1), hup(2), prop(2)], 4),
        ]
        for msgs, wcommitted in cases:
            tt = Network(None, None, None)
            tt.send(hup(1))
            for m in msgs:
                tt.send(m)
            props = [m.entries[0].Data for m in msgs if m.type == MsgProp]
            for id, sm in tt.peers.items():
                self.assertEqual(sm.raftLog.committed, wcommitted)
                data = [e.Data for e in nextEnts(sm, tt.storage[id]) if e.Data]
                self.assertEqual(data, props)

    def test_singleNodeCommit(self):
        tt = Network(None)
        tt.send(hup(1))
        tt.send(prop(1, b"some data"))
        tt.send(prop(1, b"some data"))
        self.assertEqual(tt.peers[1].raftLog.committed, 3)

    def test_cannotCommitWithoutNewTermEntry(self):
        tt = Network(None, None, None, None, None)
        tt.send(hup(1))
        for other in (3, 4, 5):
            tt.cut(1, other)
        tt.send(prop(1))
        tt.send(prop(1))
        sm = tt.peers[1]
        self.assertEqual(sm.raftLog.committed, 1)
        tt.recover()
        # Keep the new leader's empty entry from being replicated.
        tt.ignore(MsgApp)
        tt.send(hup(2))
        sm = tt.peers[2]
        self.assertEqual(sm.raftLog.committed, 1)
        tt.recover()
        tt.send(msg(MsgBeat, frm=2, to=2))
        tt.send(prop(2))
        self.assertEqual(sm.raftLog.committed, 5)

    def test_commitWithoutNewTermEntry(self):
        tt = Network(None, None, None, None, None)
        tt.send(hup(1))
        for other in (3, 4, 5):
            tt.cut(1, other)
        tt.send(prop(1))
        tt.send(prop(1))
        sm = tt.peers[1]
        self.assertEqual(sm.raftLog.committed, 1)
        tt.recover()
        # The new leader's empty entry commits everything before it.
        tt.send(hup(2))
        self.assertEqual(sm.raftLog.committed, 4)

    def test_oldMessages(self):
        tt = Network(None, None, None)
        tt.send(hup(1))
        tt.send(hup(2))
        tt.send(hup(1))
        # An old leader's append is ignored.
        tt.send(msg(MsgApp, frm=2, to=1, term=2, entries=[Entry(Index=3, Term=2)]))
        tt.send(prop(1))
        for sm in tt.peers.values():
            self.assertEqual(logOf(sm), ([(1, 1, b""), (2, 2, b""), (3, 3, b""),
                                          (4, 3, b"somedata")], 4))

    def test_proposal(self):
        nop = BlackHole
        cases = [
            ((None, None, None), True),
            ((None, None, nop()), True),
            ((None, nop(), nop()), False),
            ((None, nop(), nop(), None), False),
            ((None, nop(), nop(), None, None), True),
        ]
        for peers, success in cases:
            tt = Network(*peers)
            tt.send(hup(1))
            tt.send(prop(1))
            want = ([(1, 1, b""), (2, 1, b"somedata")], 2) if success else ([], 0)
            for p in tt.peers.values():
                if not isinstance(p, BlackHole):
                    self.assertEqual(logOf(p), want)
            self.assertEqual(tt.peers[1].term, 1)

    def test_proposalDroppedWithoutLeader(self):
        r = newTestRaft(1, [1, 2, 3])
        self.assertRaises(ProposalDropped, r.step, prop(1))
        r.becomeCandidate()
        self.assertRaises(ProposalDropped, r.step, prop(1))

    def test_proposalByProxy(self):
        for peers in [(None, None, None), (None, None, BlackHole())]:
            tt = Network(*peers)
            tt.send(hup(1))
            tt.send(prop(2))
            for p in tt.peers.values():
                if not isinstance(p, BlackHole):
                    self.assertEqual(logOf(p), ([(1, 1, b""), (2, 1, b"somedata")], 2))
            self.assertEqual(tt.peers[1].term, 1)

    def test_commit(self):
        cases = [
            ([1], [1], 1, 1), ([1], [1], 2, 0), ([2], [1, 2], 2, 2), ([1], [2], 2, 1),
            ([2, 1, 1], [1, 2], 1, 1), ([2, 1, 1], [1, 1], 2, 0),
            ([2, 1, 2], [1, 2], 2, 2), ([2, 1, 2], [1, 1], 2, 0),
            ([2, 1, 1, 1], [1, 2], 1, 1), ([2, 1, 1, 1], [1, 1], 2, 0),
            ([2, 1, 1, 2], [1, 2], 1, 1), ([2, 1, 1, 2], [1, 1], 2, 0),
            ([2, 1, 2, 2], [1, 2], 2, 2), ([2, 1, 2, 2], [1, 1], 2, 0),
        ]
        for matches, terms, smTerm, w in cases:
            s = MemoryStorage()
            s.append([Entry(Index=i + 1, Term=t) for i, t in enumerate(terms)])
            s.setHardState(HardState(term=smTerm))
            sm = newTestRaft(1, [1], 10, 2, s)
            for j, match in enumerate(matches):
                id = j + 1
                if id > 1:
                    sm.applyConfChange(ConfChange(type=ConfChangeAddNode, node_id=id))
                pr = sm.prs.progress[id]
                pr.match, pr.next = match, match + 1
            sm.maybeCommit()
            self.assertEqual(sm.raftLog.committed, w, (matches, terms, smTerm))

    def test_handleMsgApp(self):
        cases = [
            # previous entry mismatches / does not exist
            (dict(term=2, logTerm=3, index=2, commit=3), [], 2, 0, True),
            (dict(term=2, logTerm=3, index=3, commit=3), [], 2, 0, True),
            # matches: append and commit
            (dict(term=2, logTerm=1, index=1, commit=1), [], 2, 1, False),
            (dict(term=2, logTerm=0, index=0, commit=1), [(1, 2)], 1, 1, False),
            (dict(term=2, logTerm=2, index=2, commit=3), [(3, 2), (4, 2)], 4, 3, False),
            (dict(term=2, logTerm=2, index=2, commit=4), [(3, 2)], 3, 3, False),
            (dict(term=2, logTerm=1, index=1, commit=4), [(2, 2)], 2, 2, False),
            # commit up to the last entry the message covers
            (dict(term=1, logTerm=1, index=1, commit=3), [], 2, 1, False),
            (dict(term=1, logTerm=1, index=1, commit=3), [(2, 2)], 2, 2, False),
            (dict(term=2, logTerm=2, index=2, commit=3), [], 2, 2, False),
            (dict(term=2, logTerm=2, index=2, commit=4), [], 2, 2, False),
        ]
        for fields, newEnts, wIndex, wCommit, wReject in cases:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=2)])
            sm = newTestRaft(1, [1], 10, 1, s)
            sm.becomeFollower(2, 0)
            sm.handleAppendEntries(msg(MsgApp, entries=[Entry(Index=i, Term=t) for i, t in newEnts],
                                       **fields))
            self.assertEqual((sm.raftLog.lastIndex(), sm.raftLog.committed), (wIndex, wCommit),
                             fields)
            [m] = sm.readMessages()
            self.assertEqual(m.reject, wReject)

    def test_handleHeartbeat(self):
        commit = 2
        for mcommit, wcommit in [(commit + 1, commit + 1), (commit - 1, commit)]:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=2), Entry(Index=3, Term=3)])
            sm = newTestRaft(1, [1, 2], 5, 1, s)
            sm.becomeFollower(2, 2)
            sm.raftLog.commitTo(commit)
            sm.handleHeartbeat(msg(MsgHeartbeat, frm=2, to=1, term=2, commit=mcommit))
            self.assertEqual(sm.raftLog.committed, wcommit)
            [m] = sm.readMessages()
            self.assertEqual(m.type, MsgHeartbeatResp)

    def test_heartbeatContextEchoed(self):
        r = newTestRaft(1, [1, 2])
        r.becomeFollower(2, 2)
        m = msg(MsgHeartbeat, frm=2, to=1, term=2)
        m.context = bytes.fromhex("5ea0a2014e58c003")
        r.step(m)
        [resp] = r.readMessages()
        self.assertEqual((resp.type, resp.to, resp.term, resp.context),
                         (MsgHeartbeatResp, 2, 2, bytes.fromhex("5ea0a2014e58c003")))
        r.step(msg(MsgHeartbeat, frm=2, to=1, term=2))
        [resp] = r.readMessages()
        self.assertFalse(resp.HasField("context"))

    def test_handleHeartbeatResp(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=2), Entry(Index=3, Term=3)])
        sm = newTestRaft(1, [1, 2], 5, 1, s)
        sm.becomeCandidate()
        sm.becomeLeader()
        sm.raftLog.commitTo(sm.raftLog.lastIndex())
        # A follower that is behind gets the entries again, each time.
        for _ in range(2):
            sm.step(msg(MsgHeartbeatResp, frm=2))
            msgs = sm.readMessages()
            self.assertEqual([m.type for m in msgs], [MsgApp])
        sm.step(msg(MsgAppResp, frm=2, index=msgs[0].index + len(msgs[0].entries)))
        sm.readMessages()
        sm.step(msg(MsgHeartbeatResp, frm=2))
        self.assertEqual(sm.readMessages(), [])

    def test_msgAppRespWaitReset(self):
        sm = newTestRaft(1, [1, 2, 3], 5, 1)
        sm.becomeCandidate()
        sm.becomeLeader()
        sm.bcastAppend()
        sm.readMessages()
        sm.step(msg(MsgAppResp, frm=2, index=1))
        self.assertEqual(sm.raftLog.committed, 1)
        sm.readMessages()
        sm.step(msg(MsgProp, frm=1, entries=[Entry()]))
        # 2 left the wait (probe) state through its ack; 3 is still waiting.
        msgs = sm.readMessages()
        self.assertEqual([(m.type, m.to, [e.Index for e in m.entries]) for m in msgs],
                         [(MsgApp, 2, [2])])
        sm.step(msg(MsgAppResp, frm=3, index=1))
        msgs = sm.readMessages()
        self.assertEqual([(m.type, m.to, [e.Index for e in m.entries]) for m in msgs],
                         [(MsgApp, 3, [2])])

    def test_leaderAppResp(self):
        cases = [
            (3, True, 0, 3, 0, 0, 0),   # stale rejection: nothing
            (2, True, 0, 2, 1, 1, 0),   # rejection: back off and probe
            (2, False, 2, 4, 2, 2, 2),  # ack: commit, broadcast
            (0, False, 0, 3, 0, 0, 0),  # nothing new
        ]
        for index, reject, wmatch, wnext, wmsgNum, windex, wcommitted in cases:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=0), Entry(Index=2, Term=1)])
            sm = newTestRaft(1, [1, 2, 3], storage=s)
            sm.becomeCandidate()
            sm.becomeLeader()
            sm.readMessages()
            sm.step(msg(MsgAppResp, frm=2, index=index, term=sm.term, reject=reject,
                        rejectHint=index))
            p = sm.prs.progress[2]
            self.assertEqual((p.match, p.next), (wmatch, wnext), (index, reject))
            msgs = sm.readMessages()
            self.assertEqual(len(msgs), wmsgNum)
            for m in msgs:
                self.assertEqual((m.index, m.commit), (windex, wcommitted))

    def test_bcastBeat(self):
        from raftmux.raftpb import Snapshot
        offset = 1000
        snap = Snapshot()
        snap.metadata.index = offset
        snap.metadata.term = 1
        snap.metadata.conf_state.voters.extend([1, 2, 3])
        s = MemoryStorage()
        s.applySnapshot(snap)
        sm = newTestRaft(1, [], 10, 1, s)
        sm.term = 1
        sm.becomeCandidate()
        sm.becomeLeader()
        for i in range(10):
            sm.appendEntry([Entry(Index=i + 1)])
        sm.prs.progress[2].match, sm.prs.progress[2].next = 5, 6
        last = sm.raftLog.lastIndex()
        sm.prs.progress[3].match, sm.prs.progress[3].next = last, last + 1
        sm.step(msg(MsgBeat))
        msgs = sm.readMessages()
        self.assertEqual(len(msgs), 2)
        for m in msgs:
            self.assertEqual((m.type, m.index, m.logTerm, len(m.entries)), (MsgHeartbeat, 0, 0, 0))
            self.assertEqual(m.commit, min(sm.raftLog.committed, sm.prs.progress[m.to].match))
        self.assertEqual(sorted(m.commit for m in msgs), [5, 1000])

    def test_recvMsgBeat(self):
        for state, wmsg in [(StateLeader, 2), (StateCandidate, 0), (StateFollower, 0)]:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=0), Entry(Index=2, Term=1)])
            sm = newTestRaft(1, [1, 2, 3], storage=s)
            sm.term = 1
            sm.state = state
            sm._step = {StateLeader: sm.stepLeader, StateCandidate: sm.stepCandidate,
                        StateFollower: sm.stepFollower}[state]
            sm.step(msg(MsgBeat, frm=1, to=1))
            msgs = sm.readMessages()
            self.assertEqual(len(msgs), wmsg)
            for m in msgs:
                self.assertEqual(m.type, MsgHeartbeat)

    def test_leaderIncreaseNext(self):
        prev = [Entry(Index=i, Term=1) for i in (1, 2, 3)]
        for state, nxt, wnext in [(StateReplicate, 2, len(prev) + 1 + 1 + 1),
                                  (StateProbe, 2, 2)]:
            sm = newTestRaft(1, [1, 2])
            sm.raftLog.append(prev)
            sm.becomeCandidate()
            sm.becomeLeader()
            sm.prs.progress[2].state = state
            sm.prs.progress[2].next = nxt
            sm.step(prop(1))
            self.assertEqual(sm.prs.progress[2].next, wnext)

    def test_recvMsgUnreachable(self):
        s = MemoryStorage()
        s.append([Entry(Index=i, Term=1) for i in (1, 2, 3)])
        r = newTestRaft(1, [1, 2], storage=s)
        r.becomeCandidate()
        r.becomeLeader()
        r.readMessages()
        pr = r.prs.progress[2]
        pr.match = 3
        pr.becomeReplicate()
        pr.optimisticUpdate(5)
        r.step(msg(MsgUnreachable, frm=2, to=1))
        self.assertEqual((pr.state, pr.next), (StateProbe, pr.match + 1))


class FlowControlTests(SynchronousTestCase):
    def _leader(self, peers=(1, 2), **kw):
        r = newTestRaft(1, list(peers), 5, 1, **kw)
        r.becomeCandidate()
        r.becomeLeader()
        return r

    def test_progressLeader(self):
        r = self._leader()
        r.prs.progress[2].becomeReplicate()
        for i in range(5):
            pr = r.prs.progress[1]
            self.assertEqual((pr.state, pr.match, pr.next), (StateReplicate, i + 1, i + 2))
            r.step(prop(1, b"foo"))

    def test_progressResumeByHeartbeatResp(self):
        r = self._leader()
        r.prs.progress[2].probeSent = True
        r.step(msg(MsgBeat, frm=1, to=1))
        self.assertTrue(r.prs.progress[2].probeSent)
        r.prs.progress[2].becomeReplicate()
        r.step(msg(MsgHeartbeatResp, frm=2, to=1))
        self.assertFalse(r.prs.progress[2].probeSent)

    def test_progressPaused(self):
        r = self._leader()
        for _ in range(3):
            r.step(prop(1))
        self.assertEqual(len(r.readMessages()), 1)

    def test_progressFlowControl(self):
        r = Raft(newTestConfig(1, [1, 2], 5, 1, maxInflightMsgs=3, maxSizePerMsg=2048))
        r.becomeCandidate()
        r.becomeLeader()
        r.readMessages()
        r.prs.progress[2].becomeProbe()
        blob = b"a" * 1000
        for _ in range(10):
            r.step(prop(1, blob))
        ms = r.readMessages()
        # Probe state: one message, the empty entry and the first proposal.
        self.assertEqual([(m.type, [len(e.Data) for e in m.entries]) for m in ms],
                         [(MsgApp, [0, 1000])])
        r.step(msg(MsgAppResp, frm=2, to=1, index=ms[0].entries[1].Index))
        ms = r.readMessages()
        # Replicate state: as many messages as inflight slots, 2 entries each (size cap).
        self.assertEqual([(m.type, len(m.entries)) for m in ms], [(MsgApp, 2)] * 3)
        r.step(msg(MsgAppResp, frm=2, to=1, index=ms[2].entries[1].Index))
        ms = r.readMessages()
        self.assertEqual([(m.type, len(m.entries)) for m in ms], [(MsgApp, 2), (MsgApp, 1)])

    def test_sendAppendForProgressProbe(self):
        r = self._leader()
        r.readMessages()
        r.prs.progress[2].becomeProbe()
        for i in range(3):
            if i == 0:
                # One MsgApp, then paused until a heartbeat response.
                r.appendEntry([Entry(Data=b"somedata")])
                r.sendAppend(2)
                ms = r.readMessages()
                self.assertEqual([m.index for m in ms], [0])
            self.assertTrue(r.prs.progress[2].probeSent)
            for _ in range(10):
                r.appendEntry([Entry(Data=b"somedata")])
                r.sendAppend(2)
                self.assertEqual(r.readMessages(), [])
            for _ in range(r.heartbeatTimeout):
                r.step(msg(MsgBeat, frm=1, to=1))
            self.assertTrue(r.prs.progress[2].probeSent)
            ms = r.readMessages()
            self.assertEqual([m.type for m in ms], [MsgHeartbeat])
        r.step(msg(MsgHeartbeatResp, frm=2, to=1))
        ms = r.readMessages()
        self.assertEqual([(m.type, m.index) for m in ms], [(MsgApp, 0)])
        self.assertTrue(r.prs.progress[2].probeSent)

    def test_sendAppendForProgressReplicate(self):
        r = self._leader()
        r.readMessages()
        r.prs.progress[2].becomeReplicate()
        for _ in range(10):
            r.appendEntry([Entry(Data=b"somedata")])
            r.sendAppend(2)
            self.assertEqual(len(r.readMessages()), 1)

    def test_sendAppendForProgressSnapshot(self):
        r = self._leader()
        r.readMessages()
        r.prs.progress[2].becomeSnapshot(10)
        for _ in range(10):
            r.appendEntry([Entry(Data=b"somedata")])
            r.sendAppend(2)
            self.assertEqual(r.readMessages(), [])

    def test_maxSizePerMsgZeroSendsOneEntry(self):
        r = self._leader(maxSizePerMsg=0)
        r.readMessages()
        r.prs.progress[2].becomeReplicate()
        for _ in range(3):
            r.appendEntry([Entry(Data=b"x")])
        r.prs.progress[2].next = 1
        r.sendAppend(2)
        [m] = r.readMessages()
        self.assertEqual(len(m.entries), 1)


class BadInputTests(SynchronousTestCase):
    """Issue 6, point 6 (core part): what peers send cannot break the core."""

    def _follower(self):
        s = MemoryStorage()
        s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=1), Entry(Index=3, Term=2)])
        s.setHardState(HardState(term=2, commit=2))
        r = newTestRaft(1, [1, 2, 3], storage=s)
        r.becomeFollower(2, 2)
        return r

    def test_responseFromUnknownMemberIgnoredByLeader(self):
        r = newTestRaft(1, [1, 2, 3])
        r.becomeCandidate()
        r.becomeLeader()
        r.readMessages()
        for t in (MsgAppResp, MsgHeartbeatResp, MsgUnreachable):
            r.step(msg(t, frm=9, to=1, term=r.term, index=100))
        self.assertEqual(r.readMessages(), [])
        self.assertEqual((r.state, r.raftLog.committed), (StateLeader, 0))
        self.assertNotIn(9, r.prs)

    def test_votesFromUnknownMembersDoNotCount(self):
        r = newTestRaft(1, [1, 2, 3, 4, 5])
        r.step(hup(1))
        for frm in (7, 8, 9):
            r.step(msg(MsgVoteResp, frm=frm, to=1, term=r.term))
        self.assertEqual(r.state, StateCandidate)

    def test_staleTermAppendAnsweredWithTerm(self):
        """A stale leader's append is answered with our term (check-quorum), nothing else."""
        r = newTestRaft(1, [1, 2, 3], checkQuorum=True)
        r.becomeFollower(5, 2)
        r.step(msg(MsgApp, frm=3, to=1, term=4, index=0, entries=[Entry(Index=1, Term=4)]))
        [resp] = r.readMessages()
        self.assertEqual((resp.type, resp.term, resp.to, resp.index, resp.reject),
                         (MsgAppResp, 5, 3, 0, False))
        self.assertEqual(r.raftLog.lastIndex(), 0)

    def test_appendBeyondLastIndexRejected(self):
        r = self._follower()
        r.step(msg(MsgApp, frm=2, to=1, term=2, index=2 ** 63, logTerm=0, commit=2 ** 63))
        [resp] = r.readMessages()
        self.assertEqual((resp.reject, resp.rejectHint), (True, 3))
        self.assertEqual((r.raftLog.lastIndex(), r.raftLog.committed), (3, 2))

    def test_misnumberedEntriesIgnored(self):
        r = self._follower()
        r.step(msg(MsgApp, frm=2, to=1, term=2, index=3, logTerm=2, commit=3,
                   entries=[Entry(Index=4, Term=2), Entry(Index=6, Term=2)]))
        self.assertEqual(r.readMessages(), [])
        self.assertEqual((r.raftLog.lastIndex(), r.raftLog.committed), (3, 2))

    def test_conflictWithCommittedEntryRefused(self):
        """An append that would rewrite a committed entry changes nothing."""
        r = self._follower()
        r.step(msg(MsgApp, frm=2, to=1, term=3, index=1, logTerm=1, commit=3,
                   entries=[Entry(Index=2, Term=3)]))
        [resp] = r.readMessages()
        self.assertEqual((resp.index, resp.reject), (2, False))
        self.assertEqual([e.Term for e in r.raftLog.allEntries()], [1, 1, 2])
        self.assertEqual(r.raftLog.committed, 2)

    def test_appendBelowCommitAnsweredWithCommit(self):
        r = self._follower()
        r.step(msg(MsgApp, frm=2, to=1, term=2, index=1, logTerm=9))
        [resp] = r.readMessages()
        self.assertEqual((resp.index, resp.reject), (2, False))

    def test_heartbeatCommitPastLogIgnored(self):
        r = self._follower()
        r.step(msg(MsgHeartbeat, frm=2, to=1, term=2, commit=1000))
        [resp] = r.readMessages()
        self.assertEqual(resp.type, MsgHeartbeatResp)
        self.assertEqual(r.raftLog.committed, 2)

    def test_ackOfUnknownIndexIgnored(self):
        r = newTestRaft(1, [1, 2, 3])
        r.becomeCandidate()
        r.becomeLeader()
        r.step(msg(MsgAppResp, frm=2, to=1, term=r.term, index=50))
        r.step(msg(MsgAppResp, frm=3, to=1, term=r.term, index=50))
        self.assertEqual(r.raftLog.committed, 0)
        self.assertEqual(r.prs.progress[2].match, 0)

    def test_voteWithoutTermIgnored(self):
        r = newTestRaft(1, [1, 2, 3])
        for t in (MsgVote, MsgPreVote):
            r.step(msg(t, frm=2, to=1, term=0, index=5, logTerm=5))
        self.assertEqual(r.readMessages(), [])

    def test_emptyProposalAndReadIndexIgnored(self):
        from raftmux.raftpb import MsgReadIndex
        r = newTestRaft(1, [1])
        r.step(hup(1))
        last = r.raftLog.lastIndex()
        r.step(msg(MsgProp, frm=1, to=1))
        r.step(msg(MsgReadIndex, frm=1, to=1))
        self.assertEqual((r.raftLog.lastIndex(), r.readStates), (last, []))

    def test_timeoutNowToLeaderIgnored(self):
        r = newTestRaft(1, [1, 2, 3])
        r.becomeCandidate()
        r.becomeLeader()
        term = r.term
        r.step(msg(MsgTimeoutNow, frm=2, to=1, term=term))
        self.assertEqual((r.state, r.term), (StateLeader, term))


class PreVoteMigrationTests(SynchronousTestCase):
    """A rolling upgrade to pre-vote: a mixed cluster still elects and frees stuck nodes."""

    def cluster(self):
        n1, n2, n3 = (newTestRaft(i, [1, 2, 3]) for i in (1, 2, 3))
        for n in (n1, n2, n3):
            n.becomeFollower(1, 0)
        n1.preVote = n2.preVote = True
        # n3 runs without pre-vote for now, as during a rolling restart.
        nt = Network(n1, n2, n3)
        nt.send(hup(1))
        nt.isolate(3)
        nt.send(prop(1, b"some data"))
        nt.send(hup(3))
        nt.send(hup(3))
        self.assertEqual((n1.state, n2.state, n3.state),
                         (StateLeader, StateFollower, StateCandidate))
        self.assertEqual((n1.term, n2.term, n3.term), (2, 2, 4))
        n3.preVote = True
        nt.recover()
        return nt, n1, n2, n3

    def test_canCompleteElection(self):
        nt, n1, n2, n3 = self.cluster()
        nt.isolate(1)
        nt.send(hup(3))
        nt.send(hup(2))
        self.assertEqual((n2.state, n3.state), (StateFollower, StatePreCandidate))
        nt.send(hup(3))
        nt.send(hup(2))
        self.assertEqual((n2.state, n3.state), (StateLeader, StateFollower))

    def test_freeStuckPreCandidate(self):
        nt, n1, n2, n3 = self.cluster()
        for _ in range(2):
            nt.send(hup(3))
            self.assertEqual((n1.state, n2.state, n3.state),
                             (StateLeader, StateFollower, StatePreCandidate))
        nt.send(msg(MsgHeartbeat, frm=1, to=3, term=n1.term))
        # The leader learns n3's higher term and steps down, freeing n3.
        self.assertEqual(n1.state, StateFollower)
        self.assertEqual(n3.term, n1.term)


class MayCampaignTests(SynchronousTestCase):
    """``RawNode.setCampaignAllowed``: a member that must not lead still votes."""

    def _member(self, allowed):
        from raftmux.raft.config import Config as _Config
        from raftmux.raft.memorystorage import MemoryStorage as _Storage
        from raftmux.raft.rawnode import RawNode as _RawNode

        node = _RawNode(_Config(id=2, storage=_Storage(), peers=[1, 2, 3], checkQuorum=True))
        node.setCampaignAllowed(allowed[0])
        return node

    def test_followerDoesNotCampaignButVotes(self):
        from raftmux.raft.core import StateFollower as _Follower
        from raftmux.raftpb import Message as _Message
        from raftmux.raftpb import MsgVote as _MsgVote
        from raftmux.raftpb import MsgVoteResp as _MsgVoteResp

        allowed = [False]
        node = self._member(allowed)
        for _ in range(100):
            node.tick()
        self.assertEqual((node.raft.state, node.raft.term), (_Follower, 0))
        vote = _Message(type=_MsgVote, to=2, term=1, index=0, logTerm=0)
        setattr(vote, "from", 3)
        node.step(vote)
        replies = [m for m in node.ready().messages if m.type == _MsgVoteResp]
        self.assertEqual([(m.to, m.reject) for m in replies], [(3, False)])
        node.setCampaignAllowed(True)
        for _ in range(30):
            node.tick()
        self.assertNotEqual(node.raft.state, _Follower)


class PureCoreTests(SynchronousTestCase):
    """The core imports no Twisted; it logs through ``Config.logger``."""

    def test_importsNoTwisted(self):
        """core, log, progress and rawnode load without Twisted (or txaio)."""
        import os
        import subprocess
        import sys

        import raftmux
        root = os.path.dirname(os.path.dirname(os.path.abspath(raftmux.__file__)))
        env = dict(os.environ, PYTHONPATH=root)
        code = ("import sys, raftmux.raft.core, raftmux.raft.log, raftmux.raft.progress, "
                "raftmux.raft.rawnode; print(sorted(m for m in sys.modules "
                "if m.split('.')[0] in ('twisted', 'txaio')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, env=env)
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)

    def _leaderWith(self, logger):
        from raftmux.raft.rawnode import RawNode
        node = RawNode(Config(id=1, storage=MemoryStorage(), peers=[1], logger=logger))
        node.campaign()
        self.assertEqual(node.raft.state, StateLeader)
        return node

    def test_callableLogger(self):
        """A plain callable gets ``(level, message)``."""
        lines = []
        self._leaderWith(lambda level, message: lines.append((level, message)))
        self.assertIn(("info", "1 became leader at term 1"), lines)

    def test_objectLogger(self):
        """An object with debug/info/warn/error gets the formatted message."""
        class Recorder:
            def __init__(self):
                self.lines = []

            def debug(self, message):
                self.lines.append(("debug", message))

            def info(self, message):
                self.lines.append(("info", message))

            def warn(self, message):
                self.lines.append(("warn", message))

            def error(self, message):
                self.lines.append(("error", message))
        recorder = Recorder()
        node = self._leaderWith(recorder)
        self.assertIn(("info", "1 became leader at term 1"), recorder.lines)
        # A warning: a snapshot that does not include this member is ignored.
        from raftmux.raftpb import Message, MsgSnap, Snapshot
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 10, 5
        snap.metadata.conf_state.voters.append(2)
        m = Message(type=MsgSnap, to=1, term=5, snapshot=snap)
        setattr(m, "from", 2)
        node.step(m)
        self.assertIn(("warn", "1 ignored a snapshot at 10 whose config does not include it"),
                      recorder.lines)

    def test_stdlibLogger(self):
        """A ``logging.Logger`` works (its ``warning`` stands for ``warn``)."""
        import logging
        logger = logging.getLogger("raftmux.test.core")
        with self.assertLogs(logger, "INFO") as seen:
            self._leaderWith(logger)
        self.assertIn("INFO:raftmux.test.core:1 became leader at term 1", seen.output)

    def test_defaultLoggerIsQuiet(self):
        from raftmux.raft.logger import NullLogger
        config = Config(id=1, storage=MemoryStorage(), peers=[1])
        self.assertIsInstance(config.logger, NullLogger)
        self._leaderWith(None)

    def test_badLogger(self):
        with self.assertRaises(ConfigError):
            Config(id=1, storage=MemoryStorage(), logger=42)
