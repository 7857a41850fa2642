# -*- test-case-name: raftmux.test.test_node_statemachine -*-
"""
``NodeStateMachine``: what the ``RaftDriver`` applies the log to (its
``IStateMachine``), the Twisted side of ``raftmux.node.state.NodeState``.

Each applied entry changes the state, then, in log order and before the
next entry:

* the ``IApplyObserver``s hear of it (the watch hub and the lessor): v3
  requests with their typed result (``Applied``, or None when the key
  space refused it or it does not touch the key space);
* whoever proposed it and waits on its request ID (``Waits``, etcd's
  ``wait.Wait``) gets ``(index, Outcome)``; a conf change's proposer gets
  ``(index, members)`` or the ``EtcdError`` etcd's membership check gave;
* membership changes reach the peers (``PeerSync``), and the removal of
  this member ends raft here (``onRemoved``).

Every ``snapshotCount`` applied entries it writes a raft snapshot of the
whole state and compacts the log, keeping ``catchUpEntries`` entries for
followers a little behind.  A snapshot from the leader replaces the state;
one that is not raftmux's (an etcd leader's) cannot be read: the member
table is kept in line with the snapshot's voters, the key space stays as
it was and ``foreignSnapshot`` says so.
"""

import heapq

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import EtcdError
from raftmux.node import entries
from raftmux.node.state import ADDED, PROMOTED, REMOVED, UPDATED, ForeignSnapshot
from raftmux.raft.core import confChangeToV2Changes
from raftmux.raft.interfaces import IStateMachine
from raftmux.rafthttp import formatID
from raftmux.raftpb import ConfChange

__all__ = ["NodeStateMachine", "Waits", "DuplicateRequestID", "memberMessages"]


class DuplicateRequestID(Exception):
    """A request ID that is already waited on (IDs must be unique)."""


class Waits:
    """etcd's ``wait.Wait``: one Deferred per request ID, fired by ``trigger``."""

    def __init__(self):
        self._waiting = {}

    def __len__(self):
        return len(self._waiting)

    def __contains__(self, id):
        return id in self._waiting

    def register(self, id):
        if id in self._waiting:
            raise DuplicateRequestID(id)
        d = self._waiting[id] = defer.Deferred()
        return d

    def cancel(self, id):
        self._waiting.pop(id, None)

    def trigger(self, id, result):
        """Fire ``id``'s Deferred (with a value, or an exception or Failure)."""
        d = self._waiting.pop(id, None)
        if d is None:
            return False
        if isinstance(result, (Exception, Failure)):
            d.errback(result)
        else:
            d.callback(result)
        return True

    def failAll(self, error):
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(error)


def memberMessages(table):
    """The member table as etcd's ``MemberList`` gives it (``etcdserverpb.Member``, by ID)."""
    out = []
    for id in table.ids():
        m = table.get(id)
        out.append(rpc_pb2.Member(ID=id, name=m.name, peerURLs=m.peerURLs,
                                  clientURLs=m.clientURLs, isLearner=m.isLearner))
    return out


@implementer(IStateMachine)
class NodeStateMachine:
    """
    ``state``: the ``NodeState``; ``storage``: the raft ``IStorage`` (for
    snapshots); ``peers``: a ``PeerSync``; ``localID``: this member;
    ``onRemoved()``: called once this member's removal is applied;
    ``onChanged()``: after each batch of applied entries and each restore
    (the node's campaign rule reads the state).
    """

    log = Logger()

    def __init__(self, state, storage, peers, localID, snapshotCount=10000,
                 catchUpEntries=5000, onRemoved=None, onChanged=None):
        self.state = state
        self.storage = storage
        self.peers = peers
        self.localID = localID
        self.snapshotCount = snapshotCount
        self.catchUpEntries = catchUpEntries
        self.onRemoved = onRemoved
        self.onChanged = onChanged
        self.waits = Waits()
        self.observers = []
        snap = storage.snapshot()
        self.snapshotIndex = snap.metadata.index
        self.snapshotSize = len(snap.data)
        self.confState = snap.metadata.conf_state
        self.applied = self.snapshotIndex
        self.foreignSnapshot = False
        self.unknownEntries = 0
        self._appliedWaiters = []
        self._waiterSeq = 0

    # -- observers ----------------------------------------------------------------

    def addObserver(self, observer):
        self.observers.append(observer)

    def removeObserver(self, observer):
        if observer in self.observers:
            self.observers.remove(observer)

    def leadershipChanged(self, isLeader):
        for o in list(self.observers):
            o.leadershipChanged(isLeader)

    def whenApplied(self, index):
        """A Deferred firing once ``index`` is applied here."""
        if index <= self.applied:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiterSeq += 1
        heapq.heappush(self._appliedWaiters, (index, self._waiterSeq, d))
        return d

    def stop(self, error):
        """Fail everything still waiting with ``error`` (the node stops)."""
        self.waits.failAll(error)
        waiters, self._appliedWaiters = self._appliedWaiters, []
        for _, _, d in waiters:
            d.errback(error)

    # -- IStateMachine ------------------------------------------------------------

    def applyEntry(self, entry):
        # Waiters run from here: the applied index they read includes this entry.
        self.applied = entry.Index
        outcome = self.state.applyNormal(entry.Index, entry.Data)
        if outcome.kind == entries.V3:
            result = outcome.result if outcome.error is None else None
            for o in list(self.observers):
                o.applied(outcome.request, result)
        elif outcome.kind == entries.UNKNOWN:
            self.unknownEntries += 1
            if self.unknownEntries in (1, 10, 100, 1000) or self.unknownEntries % 10000 == 0:
                self.log.warn("raftmux: entry {index} is none of etcd's requests; skipped "
                              "({n} so far)", index=entry.Index, n=self.unknownEntries)
        id = outcome.id
        if id:
            self.waits.trigger(id, (entry.Index, outcome))
        return outcome

    def validateConfChange(self, confChange, entry):
        self.applied = entry.Index
        if not isinstance(confChange, ConfChange):
            return True
        error = self.state.validateConfChange(confChange.type, confChange.node_id,
                                              confChange.context)
        if error is None:
            return True
        self.log.info("raftmux: conf change {type} of {id} refused: {error}",
                      type=confChange.type, id=formatID(confChange.node_id), error=error)
        if confChange.id:
            self.waits.trigger(confChange.id, error)
        return False

    def confChangeApplied(self, confChange, entry, confState):
        self.confState = confState
        context = getattr(confChange, "context", b"")
        for ctype, nodeID in confChangeToV2Changes(confChange):
            what, member = self.state.applyConfChange(ctype, nodeID, context)
            if what == REMOVED:
                self.peers.memberRemoved(nodeID)
                self.log.info("raftmux: member {id} removed", id=formatID(nodeID))
                if nodeID == self.localID and self.onRemoved is not None:
                    self.onRemoved()
            else:
                self.peers.memberChanged(member)
                self.log.info("raftmux: member {id} {what} at {urls}", id=formatID(nodeID),
                              what={ADDED: "added", PROMOTED: "promoted",
                                    UPDATED: "updated"}[what],
                              urls=",".join(member.peerURLs))
        if getattr(confChange, "id", 0):
            self.waits.trigger(confChange.id,
                               (entry.Index, memberMessages(self.state.members)))

    def restoreSnapshot(self, snapshot):
        self._restore(snapshot)
        for o in list(self.observers):
            o.restored()
        if self.onChanged is not None:
            self.onChanged()

    def restoreAtStart(self, fallbackMembers=()):
        """
        Load the storage's snapshot (a restart), before raft runs;
        ``fallbackMembers`` (dicts) stand in when it is not raftmux's.
        """
        snap = self.storage.snapshot()
        if snap.metadata.index:
            self._restore(snap, fallbackMembers)

    def _restore(self, snapshot, fallbackMembers=()):
        state = self.state
        try:
            state.restore(snapshot.data)
            self.foreignSnapshot = False
        except ForeignSnapshot:
            # An etcd leader's snapshot (its v2 store; the key space is in a
            # bolt database we cannot read).
            self.foreignSnapshot = True
            self.log.error(
                "raftmux: the snapshot at index {index} is not raftmux's (an etcd "
                "member's): its key space cannot be read here, so this member's key "
                "space is incomplete until it is given a raftmux snapshot",
                index=snapshot.metadata.index)
            voters = set(snapshot.metadata.conf_state.voters) | set(
                snapshot.metadata.conf_state.learners)
            for m in fallbackMembers or ():
                if m["id"] not in state.members:
                    state.members.add(m["id"], m["peerURLs"], m.get("name", ""))
            for id in list(state.members.members):
                if id not in voters:
                    state.members.remove(id)
            for id in voters:
                if id not in state.members:
                    state.members.add(id, [])
        self.peers.restored(state.members)
        self.confState = snapshot.metadata.conf_state
        self.snapshotIndex = snapshot.metadata.index
        self.snapshotSize = len(snapshot.data)
        self.applied = max(self.applied, snapshot.metadata.index)
        self.log.info("raftmux: restored snapshot at index {index} (revision {rev})",
                      index=snapshot.metadata.index, rev=state.keySpace.revision)

    def appliedTo(self, index):
        self.applied = index
        waiters = self._appliedWaiters
        while waiters and waiters[0][0] <= index:
            _, _, d = heapq.heappop(waiters)
            d.callback(None)
        if index - self.snapshotIndex >= self.snapshotCount:
            self.takeSnapshot(index)
        if self.onChanged is not None:
            self.onChanged()

    def takeSnapshot(self, index):
        """Write a raft snapshot of the state at ``index`` and compact the log."""
        data = self.state.snapshot()
        self.storage.createSnapshot(index, self.confState, data)
        self.snapshotIndex = index
        self.snapshotSize = len(data)
        compactTo = index - self.catchUpEntries
        if compactTo > self.storage.firstIndex():
            self.storage.compact(compactTo)
        self.log.info("raftmux: snapshot at index {index} (revision {rev}, {size} bytes), "
                      "log compacted to {to}", index=index, rev=self.state.keySpace.revision,
                      size=len(data), to=max(compactTo, 0))

    # -- for the node ---------------------------------------------------------------

    def triggerFailure(self, id, error):
        """Fail the waiter of ``id`` (a proposal the node gave up on) with ``error``."""
        if isinstance(error, EtcdError):
            self.waits.trigger(id, error)
        else:
            self.waits.trigger(id, Failure(error))
