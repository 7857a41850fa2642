# -*- test-case-name: raftmux.test.test_raft_core -*-
"""
The raft state machine with etcd raft v3.4's semantics (``raft/raft.go``).

``Raft`` takes messages in (``step``) and time in (``tick``) and leaves the
messages to send in ``msgs``; it never does I/O.  Entries it appends sit in
the log's unstable part until the driver persists them (see ``RawNode``).
The rules about terms, votes, appends and heartbeats are etcd's, so that a
member built on it can sit in a cluster beside a real etcd.

A peer's message that does not fit (unknown member, stale term, indexes
outside the log, a snapshot that does not include us) is ignored or
answered as etcd answers it; the only exceptions ``step`` raises are the
``RaftError`` subclasses below, which etcd returns as errors.
"""

from raftmux.raft.errors import (
    CompactedError,
    CorruptLogError,
    SnapshotTemporarilyUnavailable,
    UnavailableError,
)
from raftmux.raft.log import LogConflictError, RaftLog
from raftmux.raft.progress import (
    ProgressTracker,
    StateProbe,
    StateReplicate,
    StateSnapshot,
    VoteLost,
    VoteWon,
    voteResult,
)
from raftmux.raft.readonly import ReadOnly, ReadOnlySafe, ReadState
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    EntryNormal,
    HardState,
    Message,
    MsgApp,
    MsgAppResp,
    MsgBeat,
    MsgCheckQuorum,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgHup,
    MsgPreVote,
    MsgPreVoteResp,
    MsgProp,
    MsgReadIndex,
    MsgReadIndexResp,
    MsgSnap,
    MsgSnapStatus,
    MsgTimeoutNow,
    MsgTransferLeader,
    MsgUnreachable,
    MsgVote,
    MsgVoteResp,
)

NONE = 0
MAX_TERM = 2 ** 64 - 1

StateFollower = "StateFollower"
StateCandidate = "StateCandidate"
StateLeader = "StateLeader"
StatePreCandidate = "StatePreCandidate"

campaignPreElection = b"CampaignPreElection"
campaignElection = b"CampaignElection"
campaignTransfer = b"CampaignTransfer"


class RaftError(Exception):
    """An error etcd raft returns from ``Step`` and friends."""


class ProposalDropped(RaftError):
    """The proposal was not appended (no leader, transfer in progress, removed)."""


class StepLocalMsgError(RaftError):
    """A local message type (MsgHup, MsgBeat, ...) was given to ``RawNode.step``."""


class StepPeerNotFoundError(RaftError):
    """A response from a member this node does not know."""


_voteRespType = {MsgVote: MsgVoteResp, MsgPreVote: MsgPreVoteResp}


class SoftState:
    """Volatile state worth telling the driver about: leader and role."""

    __slots__ = ("lead", "raftState")

    def __init__(self, lead, raftState):
        self.lead = lead
        self.raftState = raftState

    def __eq__(self, other):
        return (isinstance(other, SoftState) and self.lead == other.lead
                and self.raftState == other.raftState)

    def __repr__(self):
        return "SoftState(lead=%d, raftState=%s)" % (self.lead, self.raftState)


def isEmptyHardState(hs):
    return hs.term == 0 and hs.vote == 0 and hs.commit == 0


def isEmptySnap(snapshot):
    return snapshot is None or snapshot.metadata.index == 0


def confChangeToV2Changes(cc):
    """A ``ConfChange`` or ``ConfChangeV2`` as a list of (type, nodeID)."""
    if isinstance(cc, ConfChange):
        return [(cc.type, cc.node_id)]
    return [(c.type, c.node_id) for c in cc.changes]


class Raft:
    """One member's raft state.  Build it from a ``Config``."""

    def __init__(self, config):
        config.validate()
        self.id = config.id
        self.random = config.random
        self.raftLog = RaftLog(config.storage, config.maxCommittedSizePerReady)
        hs, cs = config.storage.initialState()
        self.term = 0
        self.vote = NONE
        self.readStates = []
        self.maxMsgSize = config.maxSizePerMsg
        self.prs = ProgressTracker(config.maxInflightMsgs)
        self.state = StateFollower
        self.isLearner = False
        self.msgs = []
        self.lead = NONE
        self.leadTransferee = NONE
        self.pendingConfIndex = 0
        self.readOnly = ReadOnly(config.readOnlyOption)
        self.electionElapsed = 0
        self.heartbeatElapsed = 0
        self.checkQuorum = config.checkQuorum
        self.preVote = config.preVote
        self.logger = config.logger
        # An input (RawNode.setCampaignAllowed): a member beside etcd
        # members must not lead them; it still votes.
        self.campaignAllowed = True
        self.heartbeatTimeout = config.heartbeatTick
        self.electionTimeout = config.electionTick
        self.randomizedElectionTimeout = config.electionTick
        self.disableProposalForwarding = config.disableProposalForwarding

        if cs.voters or cs.learners:
            voters, learners = list(cs.voters), list(cs.learners)
        else:
            voters, learners = list(config.peers), list(config.learners)
        last = self.raftLog.lastIndex()
        for id in voters:
            self.prs.initProgress(id, last + 1, False)
            self.prs.progress[id].recentActive = False
        for id in learners:
            self.prs.initProgress(id, last + 1, True)
            self.prs.progress[id].recentActive = False
        pr = self.prs.get(self.id)
        self.isLearner = pr is not None and pr.isLearner

        if not isEmptyHardState(hs):
            self.loadState(hs)
        if config.applied > 0:
            self.raftLog.appliedTo(config.applied)
        self.becomeFollower(self.term, NONE)

    def __repr__(self):
        return "<Raft %x %s term=%d lead=%x %r>" % (
            self.id, self.state, self.term, self.lead, self.raftLog)

    # -- state --------------------------------------------------------------

    def hasLeader(self):
        return self.lead != NONE

    def softState(self):
        return SoftState(self.lead, self.state)

    def hardState(self):
        return HardState(term=self.term, vote=self.vote, commit=self.raftLog.committed)

    def loadState(self, hs):
        """Take a persisted HardState; one that commits past the log is corrupt."""
        if hs.commit < self.raftLog.committed or hs.commit > self.raftLog.lastIndex():
            raise CorruptLogError("%x state.commit %d is out of range [%d, %d]" % (
                self.id, hs.commit, self.raftLog.committed, self.raftLog.lastIndex()))
        self.raftLog.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self):
        """May this node campaign?  Only voters that know they are."""
        pr = self.prs.get(self.id)
        return pr is not None and not pr.isLearner

    def pastElectionTimeout(self):
        return self.electionElapsed >= self.randomizedElectionTimeout

    def resetRandomizedElectionTimeout(self):
        self.randomizedElectionTimeout = (
            self.electionTimeout + self.random.randrange(self.electionTimeout))

    # -- sending ------------------------------------------------------------

    def send(self, m):
        """Queue ``m``, stamping From and (except proposals and votes) Term."""
        setattr(m, "from", self.id)
        t = m.type
        if t == MsgVote or t == MsgVoteResp or t == MsgPreVote or t == MsgPreVoteResp:
            if m.term == 0:
                raise AssertionError("term should be set when sending %s" % (t,))
        elif t != MsgProp and t != MsgReadIndex:
            m.term = self.term
        self.msgs.append(m)

    def sendAppend(self, to):
        self.maybeSendAppend(to, True)

    def maybeSendAppend(self, to, sendIfEmpty):
        """
        Send ``to`` the entries it lacks (or a snapshot when they are
        compacted), unless its progress is paused.  Returns whether a
        message was sent.
        """
        pr = self.prs.get(to)
        if pr is None or pr.isPaused():
            return False
        m = Message(to=to)
        try:
            term = self.raftLog.term(pr.next - 1)
            ents = self.raftLog.entries(pr.next, self.maxMsgSize)
            failed = False
        except (CompactedError, UnavailableError):
            failed = True
        if not failed and not ents and not sendIfEmpty:
            return False
        if failed:
            if not pr.recentActive:
                return False
            try:
                snapshot = self.raftLog.snapshot()
            except SnapshotTemporarilyUnavailable:
                return False
            if isEmptySnap(snapshot):
                self.logger.error("%x needs a non-empty snapshot to send to %x" % (self.id, to))
                return False
            m.type = MsgSnap
            m.snapshot.CopyFrom(snapshot)
            pr.becomeSnapshot(snapshot.metadata.index)
        else:
            m.type = MsgApp
            m.index = pr.next - 1
            m.logTerm = term
            m.entries.extend(ents)
            m.commit = self.raftLog.committed
            if ents:
                if pr.state == StateReplicate:
                    last = ents[-1].Index
                    pr.optimisticUpdate(last)
                    pr.inflights.add(last)
                elif pr.state == StateProbe:
                    pr.probeSent = True
        self.send(m)
        return True

    def sendHeartbeat(self, to, ctx):
        # Never tell a follower to commit past what it has matched: it may
        # not have those entries, or have different ones.
        commit = min(self.prs.progress[to].match, self.raftLog.committed)
        m = Message(to=to, type=MsgHeartbeat, commit=commit)
        if ctx is not None:
            m.context = ctx
        self.send(m)

    def bcastAppend(self):
        for id in self.prs.ids():
            if id != self.id:
                self.sendAppend(id)

    def bcastHeartbeat(self):
        self.bcastHeartbeatWithCtx(self.readOnly.lastPendingRequestCtx())

    def bcastHeartbeatWithCtx(self, ctx):
        for id in self.prs.ids():
            if id != self.id:
                self.sendHeartbeat(id, ctx)

    def sendTimeoutNow(self, to):
        self.send(Message(to=to, type=MsgTimeoutNow))

    # -- log ----------------------------------------------------------------

    def maybeCommit(self):
        return self.raftLog.maybeCommit(self.prs.committed(), self.term)

    def appendEntry(self, entries):
        last = self.raftLog.lastIndex()
        for i, e in enumerate(entries):
            e.Term = self.term
            e.Index = last + 1 + i
        last = self.raftLog.append(entries)
        self.prs.progress[self.id].maybeUpdate(last)
        self.maybeCommit()
        return True

    # -- roles --------------------------------------------------------------

    def reset(self, term):
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.electionElapsed = 0
        self.heartbeatElapsed = 0
        self.resetRandomizedElectionTimeout()
        self.abortLeaderTransfer()
        self.prs.resetVotes()
        last = self.raftLog.lastIndex()
        for id, pr in self.prs.progress.items():
            pr.resetState(StateProbe)
            pr.match = last if id == self.id else 0
            pr.next = last + 1
            pr.recentActive = False
        self.pendingConfIndex = 0
        self.readOnly = ReadOnly(self.readOnly.option)

    def becomeFollower(self, term, lead):
        self._step = self.stepFollower
        self.reset(term)
        self.tick = self.tickElection
        self.lead = lead
        self.state = StateFollower

    def becomeCandidate(self):
        if self.state == StateLeader:
            raise AssertionError("invalid transition [leader -> candidate]")
        self._step = self.stepCandidate
        self.reset(self.term + 1)
        self.tick = self.tickElection
        self.vote = self.id
        self.state = StateCandidate

    def becomePreCandidate(self):
        if self.state == StateLeader:
            raise AssertionError("invalid transition [leader -> pre-candidate]")
        # Neither the term nor the vote changes: a pre-election that fails
        # leaves no trace, so a partitioned node cannot disrupt the cluster.
        self._step = self.stepCandidate
        self.prs.resetVotes()
        self.tick = self.tickElection
        self.lead = NONE
        self.state = StatePreCandidate

    def becomeLeader(self):
        if self.state == StateFollower:
            raise AssertionError("invalid transition [follower -> leader]")
        self._step = self.stepLeader
        self.reset(self.term)
        self.tick = self.tickHeartbeat
        self.lead = self.id
        self.state = StateLeader
        self.prs.progress[self.id].becomeReplicate()
        # Conservatively assume the log may hold an unapplied conf change.
        self.pendingConfIndex = self.raftLog.lastIndex()
        # An empty entry of our term lets us commit everything before it.
        self.appendEntry([Entry()])
        self.logger.info("%x became leader at term %d" % (self.id, self.term))

    # -- ticks --------------------------------------------------------------

    def tickElection(self):
        self.electionElapsed += 1
        if self.promotable() and self.pastElectionTimeout():
            if not self.campaignAllowed:
                # Keep counting: past the timeout the leader lease is over,
                # so this member still grants other candidates' votes.
                return
            self.electionElapsed = 0
            self.step(Message(**{"from": self.id, "type": MsgHup}))

    def tickHeartbeat(self):
        self.heartbeatElapsed += 1
        self.electionElapsed += 1
        if self.electionElapsed >= self.electionTimeout:
            self.electionElapsed = 0
            if self.checkQuorum:
                self.step(Message(**{"from": self.id, "type": MsgCheckQuorum}))
            if self.state == StateLeader and self.leadTransferee != NONE:
                self.abortLeaderTransfer()
        if self.state != StateLeader:
            return
        if self.heartbeatElapsed >= self.heartbeatTimeout:
            self.heartbeatElapsed = 0
            self.step(Message(**{"from": self.id, "type": MsgBeat}))

    # -- elections ----------------------------------------------------------

    def hup(self, campaignType):
        if self.state == StateLeader:
            return
        if not self.promotable():
            self.logger.warn("%x is unpromotable and can not campaign" % (self.id,))
            return
        try:
            ents = self.raftLog.slice(self.raftLog.applied + 1, self.raftLog.committed + 1)
        except (CompactedError, UnavailableError):
            return
        pending = sum(1 for e in ents if e.Type in (EntryConfChange, EntryConfChangeV2))
        if pending and self.raftLog.committed > self.raftLog.applied:
            self.logger.warn("%x cannot campaign: %d pending conf changes to apply" % (
                self.id, pending))
            return
        self.campaign(campaignType)

    def campaign(self, campaignType):
        if self.term >= MAX_TERM:
            # Only a peer's nonsense can get us here; there is no next term.
            self.logger.error("%x cannot campaign: term %d is the last one" % (
                self.id, self.term))
            return
        if campaignType == campaignPreElection:
            self.becomePreCandidate()
            voteMsg = MsgPreVote
            # Ask as if for the next term, without moving to it.
            term = self.term + 1
        else:
            self.becomeCandidate()
            voteMsg = MsgVote
            term = self.term
        if self.poll(self.id, _voteRespType[voteMsg], True) == VoteWon:
            # A single-voter configuration wins at once.
            if campaignType == campaignPreElection:
                self.campaign(campaignElection)
            else:
                self.becomeLeader()
            return
        lastIndex, lastTerm = self.raftLog.lastIndex(), self.raftLog.lastTerm()
        for id in sorted(self.prs.voters):
            if id == self.id:
                continue
            m = Message(term=term, to=id, type=voteMsg, index=lastIndex, logTerm=lastTerm)
            if campaignType == campaignTransfer:
                m.context = campaignTransfer
            self.send(m)

    def poll(self, id, respType, granted):
        # Only voters' answers count; not recording others keeps a flood of
        # replies from strangers from growing the tally.
        if id in self.prs.voters:
            self.prs.recordVote(id, granted)
        return self.prs.tallyVotes()[2]

    # -- step ---------------------------------------------------------------

    def step(self, m):
        """Handle one message (from a peer, or local like MsgHup/MsgProp)."""
        mterm = m.term
        if mterm == 0:
            mtype = m.type
            if mtype == MsgVote or mtype == MsgPreVote:
                # A vote request always carries a term; answering one
                # without would be answering nonsense.
                return
        elif mterm > self.term:
            mtype = m.type
            if mtype == MsgVote or mtype == MsgPreVote:
                force = m.context == campaignTransfer
                inLease = (self.checkQuorum and self.lead != NONE
                           and self.electionElapsed < self.electionTimeout)
                if not force and inLease:
                    # We heard from a live leader within the minimum
                    # election timeout: do not let this vote disrupt it.
                    return
            if mtype == MsgPreVote:
                pass
            elif mtype == MsgPreVoteResp and not m.reject:
                # The pre-vote we asked for with term+1 was granted; the term
                # moves only if we win and campaign for real.
                pass
            elif mtype == MsgApp or mtype == MsgHeartbeat or mtype == MsgSnap:
                self.becomeFollower(mterm, getattr(m, "from"))
            else:
                self.becomeFollower(mterm, NONE)
        elif mterm < self.term:
            mtype = m.type
            if (self.checkQuorum or self.preVote) and (mtype == MsgHeartbeat or mtype == MsgApp):
                # A stale leader (say, after a partition) learns of our term
                # from this and steps down; without it, with check-quorum or
                # pre-vote, it could keep us from ever electing.
                self.send(Message(to=getattr(m, "from"), type=MsgAppResp))
            elif mtype == MsgPreVote:
                self.send(Message(to=getattr(m, "from"), term=self.term,
                                  type=MsgPreVoteResp, reject=True))
            return

        mtype = m.type
        if mtype == MsgHup:
            self.hup(campaignPreElection if self.preVote else campaignElection)
        elif mtype == MsgVote or mtype == MsgPreVote:
            frm = getattr(m, "from")
            canVote = (self.vote == frm
                       or (self.vote == NONE and self.lead == NONE)
                       or (mtype == MsgPreVote and mterm > self.term))
            if canVote and self.raftLog.isUpToDate(m.index, m.logTerm):
                # Grant with the candidate's term: a pre-vote reply must not
                # carry ours, or the candidate would take it as a rejection.
                self.send(Message(to=frm, term=mterm, type=_voteRespType[mtype]))
                if mtype == MsgVote:
                    self.electionElapsed = 0
                    self.vote = frm
            else:
                self.send(Message(to=frm, term=self.term,
                                  type=_voteRespType[mtype], reject=True))
        else:
            self._step(m)

    def stepLeader(self, m):
        mtype = m.type
        if mtype == MsgBeat:
            self.bcastHeartbeat()
            return
        if mtype == MsgCheckQuorum:
            pr = self.prs.get(self.id)
            if pr is not None:
                pr.recentActive = True
            if not self.prs.quorumActive():
                self.logger.warn("%x stepped down to follower since quorum is not active"
                                 % (self.id,))
                self.becomeFollower(self.term, NONE)
            for id, pr in self.prs.progress.items():
                if id != self.id:
                    pr.recentActive = False
            return
        if mtype == MsgProp:
            self.leaderPropose(m)
            return
        if mtype == MsgReadIndex:
            self.leaderReadIndex(m)
            return

        frm = getattr(m, "from")
        pr = self.prs.get(frm)
        if pr is None:
            return
        if mtype == MsgAppResp:
            self.handleAppendResponse(m, frm, pr)
        elif mtype == MsgHeartbeatResp:
            pr.recentActive = True
            pr.probeSent = False
            if pr.state == StateReplicate and pr.inflights.full():
                pr.inflights.freeFirstOne()
            if pr.match < self.raftLog.lastIndex():
                self.sendAppend(frm)
            if self.readOnly.option != ReadOnlySafe or not m.context:
                return
            acks = self.readOnly.recvAck(frm, m.context)
            if voteResult(self.prs.voters, dict.fromkeys(acks, True)) != VoteWon:
                return
            for rs in self.readOnly.advance(m):
                self.answerReadIndex(rs.req, rs.index)
        elif mtype == MsgSnapStatus:
            if pr.state != StateSnapshot:
                return
            if m.reject:
                pr.pendingSnapshot = 0
            pr.becomeProbe()
            # Wait for the follower's MsgAppResp (or a heartbeat) before
            # probing again.
            pr.probeSent = True
        elif mtype == MsgUnreachable:
            if pr.state == StateReplicate:
                pr.becomeProbe()
        elif mtype == MsgTransferLeader:
            if pr.isLearner:
                return
            transferee = frm
            last = self.leadTransferee
            if last != NONE:
                if last == transferee:
                    return
                self.abortLeaderTransfer()
            if transferee == self.id:
                return
            # Give the transfer one election timeout to finish.
            self.electionElapsed = 0
            self.leadTransferee = transferee
            if pr.match == self.raftLog.lastIndex():
                self.sendTimeoutNow(transferee)
            else:
                self.sendAppend(transferee)

    def leaderPropose(self, m):
        if not m.entries:
            return
        if self.id not in self.prs:
            # Removed from the configuration: stop accepting proposals.
            raise ProposalDropped("%x is not a member" % (self.id,))
        if self.leadTransferee != NONE:
            raise ProposalDropped("leadership transfer to %x in progress" % (self.leadTransferee,))
        ents = list(m.entries)
        for i, e in enumerate(ents):
            if e.Type == EntryConfChange or e.Type == EntryConfChangeV2:
                if self.pendingConfIndex > self.raftLog.applied or e.Type == EntryConfChangeV2:
                    # One change at a time (and no joint changes): an entry
                    # that is not allowed becomes an empty normal entry.
                    ents[i] = Entry(Type=EntryNormal)
                else:
                    self.pendingConfIndex = self.raftLog.lastIndex() + i + 1
        self.appendEntry(ents)
        self.bcastAppend()

    def leaderReadIndex(self, m):
        if len(m.entries) != 1:
            return
        if not self.prs.isSingleton():
            if self.raftLog.zeroTermOnError(self.raftLog.committed) != self.term:
                # Nothing of our term is committed yet, so our commit index
                # may be behind the last leader's: refuse the read.
                return
            if self.readOnly.option == ReadOnlySafe:
                ctx = m.entries[0].Data
                self.readOnly.addRequest(self.raftLog.committed, m)
                self.readOnly.recvAck(self.id, ctx)
                self.bcastHeartbeatWithCtx(ctx)
                return
        self.answerReadIndex(m, self.raftLog.committed)

    def answerReadIndex(self, req, index):
        frm = getattr(req, "from")
        if frm == NONE or frm == self.id:
            self.readStates.append(ReadState(index, req.entries[0].Data))
        else:
            resp = Message(to=frm, type=MsgReadIndexResp, index=index)
            resp.entries.extend(req.entries)
            self.send(resp)

    def handleAppendResponse(self, m, frm, pr):
        pr.recentActive = True
        if m.reject:
            if pr.maybeDecrTo(m.index, m.rejectHint):
                if pr.state == StateReplicate:
                    pr.becomeProbe()
                self.sendAppend(frm)
            return
        if m.index > self.raftLog.lastIndex():
            # Acknowledges entries we never had: not from a correct member.
            return
        oldPaused = pr.isPaused()
        if not pr.maybeUpdate(m.index):
            return
        if pr.state == StateProbe:
            pr.becomeReplicate()
        elif pr.state == StateSnapshot and pr.match >= pr.pendingSnapshot:
            # The follower caught up past the snapshot: replicate from here.
            pr.becomeProbe()
            pr.becomeReplicate()
        elif pr.state == StateReplicate:
            pr.inflights.freeLE(m.index)
        if self.maybeCommit():
            self.bcastAppend()
        elif oldPaused:
            # It was paused and may now take more.
            self.sendAppend(frm)
        while self.maybeSendAppend(frm, False):
            pass
        if frm == self.leadTransferee and pr.match == self.raftLog.lastIndex():
            self.sendTimeoutNow(frm)

    def stepCandidate(self, m):
        mtype = m.type
        myVoteRespType = MsgPreVoteResp if self.state == StatePreCandidate else MsgVoteResp
        if mtype == MsgProp:
            raise ProposalDropped("no leader at term %d" % (self.term,))
        if mtype == MsgApp:
            self.becomeFollower(m.term, getattr(m, "from"))
            self.handleAppendEntries(m)
        elif mtype == MsgHeartbeat:
            self.becomeFollower(m.term, getattr(m, "from"))
            self.handleHeartbeat(m)
        elif mtype == MsgSnap:
            self.becomeFollower(m.term, getattr(m, "from"))
            self.handleSnapshot(m)
        elif mtype == myVoteRespType:
            result = self.poll(getattr(m, "from"), mtype, not m.reject)
            if result == VoteWon:
                if self.state == StatePreCandidate:
                    self.campaign(campaignElection)
                else:
                    self.becomeLeader()
                    self.bcastAppend()
            elif result == VoteLost:
                # A pre-candidate's term never moved, so this is the old
                # term; a candidate stays in its new one.
                self.becomeFollower(self.term, NONE)

    def stepFollower(self, m):
        mtype = m.type
        if mtype == MsgApp:
            self.electionElapsed = 0
            self.lead = getattr(m, "from")
            self.handleAppendEntries(m)
        elif mtype == MsgHeartbeat:
            self.electionElapsed = 0
            self.lead = getattr(m, "from")
            self.handleHeartbeat(m)
        elif mtype == MsgSnap:
            self.electionElapsed = 0
            self.lead = getattr(m, "from")
            self.handleSnapshot(m)
        elif mtype == MsgProp:
            if self.lead == NONE:
                raise ProposalDropped("no leader at term %d" % (self.term,))
            if self.disableProposalForwarding:
                raise ProposalDropped("proposal forwarding disabled")
            self.forward(m)
        elif mtype == MsgTransferLeader or mtype == MsgReadIndex:
            if self.lead == NONE:
                return
            self.forward(m)
        elif mtype == MsgTimeoutNow:
            if self.promotable():
                # Leadership transfers never use pre-vote: the old leader
                # asked for this, so there is no one to disrupt.
                self.campaign(campaignTransfer)
        elif mtype == MsgReadIndexResp:
            if len(m.entries) != 1:
                return
            self.readStates.append(ReadState(m.index, m.entries[0].Data))

    def forward(self, m):
        m.to = self.lead
        if m.type != MsgTransferLeader:
            m.term = 0
        self.send(m)

    # -- follower handlers --------------------------------------------------

    def handleAppendEntries(self, m):
        frm = getattr(m, "from")
        raftLog = self.raftLog
        if m.index < raftLog.committed:
            self.send(Message(to=frm, type=MsgAppResp, index=raftLog.committed))
            return
        lastIndex = raftLog.lastIndex()
        if m.index > lastIndex:
            # We lack the entry before these: reject at once (etcd gets
            # here too, through a term mismatch, unless logTerm is 0).
            self.send(Message(to=frm, type=MsgAppResp, index=m.index, reject=True,
                              rejectHint=lastIndex))
            return
        ents = m.entries
        if ents:
            # Refuse entries that do not follow the message's index one by
            # one: appending them would corrupt the log.
            expected = m.index + 1
            for e in ents:
                if e.Index != expected:
                    self.logger.warn("%x ignored MsgApp from %x with misnumbered entries"
                                     % (self.id, frm))
                    return
                expected += 1
        try:
            lastNew = raftLog.maybeAppend(m.index, m.logTerm, m.commit, ents)
        except LogConflictError as e:
            self.logger.error("%x refused MsgApp from %x: %s" % (self.id, frm, e))
            return
        if lastNew is not None:
            self.send(Message(to=frm, type=MsgAppResp, index=lastNew))
        else:
            self.send(Message(to=frm, type=MsgAppResp, index=m.index, reject=True,
                              rejectHint=raftLog.lastIndex()))

    def handleHeartbeat(self, m):
        if m.commit <= self.raftLog.lastIndex():
            self.raftLog.commitTo(m.commit)
        # (A commit past our last index cannot come from a correct leader,
        # which caps it at our match; it is ignored rather than trusted.)
        resp = Message(to=getattr(m, "from"), type=MsgHeartbeatResp)
        if m.HasField("context"):
            resp.context = m.context
        self.send(resp)

    def handleSnapshot(self, m):
        frm = getattr(m, "from")
        if self.restore(m.snapshot):
            self.send(Message(to=frm, type=MsgAppResp, index=self.raftLog.lastIndex()))
        else:
            self.send(Message(to=frm, type=MsgAppResp, index=self.raftLog.committed))

    def restore(self, s):
        """
        Take snapshot ``s`` in place of the log, if it is newer than what
        we committed and its configuration includes us.  Returns whether
        the log was replaced.
        """
        meta = s.metadata
        if meta.index <= self.raftLog.committed:
            return False
        cs = meta.conf_state
        members = set(cs.voters) | set(cs.learners) | set(cs.voters_outgoing)
        if self.id not in members:
            self.logger.warn("%x ignored a snapshot at %d whose config does not include it"
                             % (self.id, meta.index))
            return False
        if cs.voters_outgoing or cs.learners_next or set(cs.voters) & set(cs.learners):
            self.logger.warn("%x ignored a snapshot with a joint or invalid config"
                             % (self.id,))
            return False
        if not self.isLearner and self.id in cs.learners:
            # A voter is never demoted by a snapshot.
            self.logger.warn("%x can't become learner when restoring a snapshot" % (self.id,))
            return False
        if self.raftLog.matchTerm(meta.index, meta.term):
            # We already have the entry: just commit up to it.
            self.raftLog.commitTo(meta.index)
            return False
        self.raftLog.restore(s)
        last = self.raftLog.lastIndex()
        self.prs = ProgressTracker(self.prs.maxInflight)
        for id in cs.voters:
            self.prs.initProgress(id, last + 1, False)
        for id in cs.learners:
            self.prs.initProgress(id, last + 1, True)
        pr = self.prs.progress[self.id]
        self.isLearner = pr.isLearner
        pr.maybeUpdate(pr.next - 1)
        return True

    # -- membership ---------------------------------------------------------

    def applyConfChange(self, cc):
        """
        Apply a committed ``ConfChange`` (add/remove node, add learner,
        update) to the configuration; returns the new ``ConfState``.
        """
        last = self.raftLog.lastIndex()
        changes = confChangeToV2Changes(cc)
        voters = set(self.prs.voters)
        for ctype, nodeID in changes:
            if nodeID == NONE:
                continue
            if ctype == ConfChangeAddNode:
                voters.add(nodeID)
            elif ctype in (ConfChangeRemoveNode, ConfChangeAddLearnerNode):
                voters.discard(nodeID)
        if not voters:
            raise ValueError("removed all voters")
        for ctype, nodeID in changes:
            if nodeID == NONE:
                continue
            if ctype == ConfChangeAddNode:
                self.prs.makeVoter(nodeID, last + 1)
            elif ctype == ConfChangeAddLearnerNode:
                self.prs.makeLearner(nodeID, last + 1)
            elif ctype == ConfChangeRemoveNode:
                self.prs.remove(nodeID)
            elif ctype == ConfChangeUpdateNode:
                pass
        return self.switchToConfig()

    def switchToConfig(self):
        cs = self.prs.confState()
        pr = self.prs.get(self.id)
        self.isLearner = pr is not None and pr.isLearner
        if (pr is None or self.isLearner) and self.state == StateLeader:
            # A removed or demoted leader keeps leading until it is
            # replaced; it no longer counts itself in the quorum.
            return cs
        if self.state != StateLeader or not cs.voters:
            return cs
        if self.maybeCommit():
            # Removing a voter may have shrunk the quorum.
            self.bcastAppend()
        else:
            for id in self.prs.ids():
                if id != self.id:
                    self.maybeSendAppend(id, False)
        if self.leadTransferee != NONE and self.leadTransferee not in self.prs.voters:
            self.abortLeaderTransfer()
        return cs

    def abortLeaderTransfer(self):
        self.leadTransferee = NONE

    def readMessages(self):
        """Take the queued outgoing messages (tests and RawNode)."""
        msgs = self.msgs
        self.msgs = []
        return msgs

    def confState(self):
        return self.prs.confState()


__all__ = [
    "Raft", "RaftError", "ProposalDropped", "StepLocalMsgError",
    "StepPeerNotFoundError", "SoftState", "StateFollower", "StateCandidate",
    "StateLeader", "StatePreCandidate", "campaignPreElection",
    "campaignElection", "campaignTransfer", "NONE", "isEmptyHardState",
    "isEmptySnap",
]
