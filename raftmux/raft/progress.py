# -*- test-case-name: raftmux.test.test_raft_progress -*-
"""
What a leader knows about each follower (``Progress``, ``Inflights``) and how
the members' answers add up to a quorum (``ProgressTracker``).  etcd's
``raft/tracker`` and ``raft/quorum`` for a majority configuration plus
learners (no joint consensus).
"""

from collections import deque
from typing import Any

from raftmux.raftpb import ConfState

StateProbe = "StateProbe"
StateReplicate = "StateReplicate"
StateSnapshot = "StateSnapshot"

VotePending = "VotePending"
VoteLost = "VoteLost"
VoteWon = "VoteWon"


class Inflights:
    """
    The last indexes of the MsgApps sent in replicate state and not yet
    acknowledged, at most ``size`` of them: the leader's flow control.
    """

    def __init__(self, size):
        self.size = size
        self._buffer: deque[Any] = deque()

    @property
    def count(self):
        return len(self._buffer)

    def add(self, inflight):
        if len(self._buffer) >= self.size:
            raise OverflowError("cannot add into a full inflights")
        self._buffer.append(inflight)

    def freeLE(self, to):
        """Forget every message whose last index is <= ``to``."""
        buf = self._buffer
        while buf and buf[0] <= to:
            buf.popleft()

    def freeFirstOne(self):
        if self._buffer:
            self._buffer.popleft()

    def full(self):
        return len(self._buffer) >= self.size

    def reset(self):
        self._buffer.clear()


class Progress:
    """
    A follower's replication state as the leader sees it.  ``match`` is the
    highest index known to be replicated, ``next`` the next one to send.
    """

    __slots__ = ("match", "next", "state", "pendingSnapshot", "recentActive",
                 "probeSent", "inflights", "isLearner")

    def __init__(self, match=0, next=1, inflights=None, isLearner=False,
                 recentActive=False):
        self.match = match
        self.next = next
        self.state = StateProbe
        self.pendingSnapshot = 0
        self.recentActive = recentActive
        self.probeSent = False
        self.inflights = inflights if inflights is not None else Inflights(256)
        self.isLearner = isLearner

    def __repr__(self):
        return "<Progress %s match=%d next=%d%s%s>" % (
            self.state, self.match, self.next,
            " learner" if self.isLearner else "",
            " paused" if self.isPaused() else "")

    def resetState(self, state):
        self.probeSent = False
        self.pendingSnapshot = 0
        self.state = state
        self.inflights.reset()

    def probeAcked(self):
        self.probeSent = False

    def becomeProbe(self):
        if self.state == StateSnapshot:
            pending = self.pendingSnapshot
            self.resetState(StateProbe)
            self.next = max(self.match + 1, pending + 1)
        else:
            self.resetState(StateProbe)
            self.next = self.match + 1

    def becomeReplicate(self):
        self.resetState(StateReplicate)
        self.next = self.match + 1

    def becomeSnapshot(self, snapshotIndex):
        self.resetState(StateSnapshot)
        self.pendingSnapshot = snapshotIndex

    def maybeUpdate(self, n):
        """An ack of index ``n``: move match/next forward; was it news?"""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probeSent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def optimisticUpdate(self, n):
        self.next = n + 1

    def maybeDecrTo(self, rejected, last):
        """
        A rejection of the append at ``rejected``; ``last`` is the
        follower's last index.  Returns False when the rejection is stale.
        """
        if self.state == StateReplicate:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, last + 1), 1)
        self.probeSent = False
        return True

    def isPaused(self):
        if self.state == StateProbe:
            return self.probeSent
        if self.state == StateReplicate:
            return self.inflights.full()
        return True


def majorityIndex(voters, matches):
    """The highest index that a majority of ``voters`` have matched."""
    n = len(voters)
    if n == 0:
        return 0
    srt = sorted(matches.get(i, 0) for i in voters)
    return srt[n - (n // 2 + 1)]


def voteResult(voters, votes):
    """
    Won, Lost or Pending for ``votes`` (id -> granted) among ``voters``.
    By etcd's convention an empty configuration wins.
    """
    if not voters:
        return VoteWon
    granted = rejected = 0
    for v in voters:
        answer = votes.get(v)
        if answer is None:
            continue
        if answer:
            granted += 1
        else:
            rejected += 1
    quorum = len(voters) // 2 + 1
    if granted >= quorum:
        return VoteWon
    if granted + (len(voters) - granted - rejected) >= quorum:
        return VotePending
    return VoteLost


class ProgressTracker:
    """
    The configuration (voters, learners), every member's ``Progress`` and
    the votes of the current election.
    """

    def __init__(self, maxInflight):
        self.maxInflight = maxInflight
        self.voters = set()
        self.learners = set()
        self.progress = {}
        self.votes = {}

    def __contains__(self, id):
        return id in self.progress

    def get(self, id):
        return self.progress.get(id)

    def ids(self):
        """Every member, voters first, each group sorted (etcd's order)."""
        return sorted(self.voters) + sorted(self.learners)

    def visit(self, f):
        for id in self.ids():
            f(id, self.progress[id])

    def isSingleton(self):
        return len(self.voters) == 1

    def confState(self):
        cs = ConfState(voters=sorted(self.voters), learners=sorted(self.learners))
        cs.auto_leave = False
        return cs

    def committed(self):
        progress = self.progress
        return majorityIndex(self.voters, {i: progress[i].match for i in self.voters if i in progress})

    def quorumActive(self):
        votes = {i: self.progress[i].recentActive for i in self.voters if i in self.progress}
        return voteResult(self.voters, votes) == VoteWon

    def resetVotes(self):
        self.votes = {}

    def recordVote(self, id, granted):
        if id not in self.votes:
            self.votes[id] = granted

    def tallyVotes(self):
        """(granted, rejected, result) among the voters."""
        granted = rejected = 0
        for id in self.voters:
            v = self.votes.get(id)
            if v is None:
                continue
            if v:
                granted += 1
            else:
                rejected += 1
        return granted, rejected, voteResult(self.voters, self.votes)

    def initProgress(self, id, nextIndex, isLearner):
        """Track a new member; it counts as recently active (etcd)."""
        self.progress[id] = Progress(match=0, next=max(nextIndex, 1),
                                     inflights=Inflights(self.maxInflight),
                                     isLearner=isLearner, recentActive=True)
        (self.learners if isLearner else self.voters).add(id)

    def makeVoter(self, id, lastIndex):
        pr = self.progress.get(id)
        if pr is None:
            self.initProgress(id, lastIndex, False)
            return
        pr.isLearner = False
        self.learners.discard(id)
        self.voters.add(id)

    def makeLearner(self, id, lastIndex):
        pr = self.progress.get(id)
        if pr is None:
            self.initProgress(id, lastIndex, True)
            return
        if pr.isLearner:
            return
        pr.isLearner = True
        self.voters.discard(id)
        self.learners.add(id)

    def remove(self, id):
        self.voters.discard(id)
        self.learners.discard(id)
        self.progress.pop(id, None)
