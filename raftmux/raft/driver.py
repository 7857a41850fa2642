# -*- test-case-name: raftmux.test.test_raft_driver -*-
"""
``RaftDriver``: joins a ``RawNode``, its storage and a
``raftmux.rafthttp.Transport`` on the reactor (issue 6, point 3).

It is built with its collaborators, each a declared interface: the
``RawNode``, its ``IStorage``, the ``ITransporter`` it sends through and
the ``IStateMachine`` it applies to.  It is itself an ``IRaft``:
``process`` steps each incoming message (its owner delivers them, e.g. a
node that is the ``Transport``'s raft, as etcd's server is).  A tick runs
every ``tickInterval`` seconds.  Ready handling is coalesced (at most one
Ready per reactor turn, however many messages were stepped) and
serialized, in etcd's order:

1. persist: ``storage.applySnapshot(rd.snapshot)``, then
   ``storage.save(rd.hardState, rd.entries)``, then ``storage.sync()``
   when ``rd.mustSync`` (a no-op for a storage that syncs every write);
2. send: ``transport.send(rd.messages)``;
3. apply: ``stateMachine.restoreSnapshot(rd.snapshot)``, then each
   committed entry: normal entries with data go to
   ``stateMachine.applyEntry(entry)``, conf changes are offered to
   ``stateMachine.validateConfChange`` and then applied by
   ``rawNode.applyConfChange`` (as a no-op when refused) and, when
   accepted, announced to ``stateMachine.confChangeApplied``; proposals and
   reads waiting on the applied index fire; ``stateMachine.appliedTo(index)``;
4. ``rawNode.advance(rd)``.

Observers (``IRaftObserver``) hear of a new leader when a Ready's soft
state says so (before its entries are applied), and of this member's own
leadership once it has applied the first entry of its term (after them).

Two departures from that order, both etcd's server's:

* ``leaderSendsFirst``: on the leader, step 2 comes before step 1, so its
  own disk write runs while the followers write theirs (etcd 3.4's
  ``raftNode``: a leader learns of a commit only from a later Ready, after
  this one's entries are on its disk, so no acknowledgement can precede
  its own write);
* ``persistInThread`` (with an ``IStagedStorage``): the write and fsync of
  step 1 run on a thread from the reactor's pool while the reactor goes on
  stepping messages and queueing proposals; steps 2 (on a follower), 3 and
  4 follow once it is done.  Only one Ready is in flight at a time.

Otherwise the storage calls run on the reactor thread: an fsync (about
0.3 ms on the development VM, 5 ms on a busy shared disk; see
``docs/storage.md``) stalls the reactor for its duration.
``persistSeconds`` keeps the time of the last persist step.
"""

from __future__ import annotations

import struct
import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.raft.core import (
    RaftError,
    StateLeader,
    StepLocalMsgError,
    confChangeToV2Changes,
)
from raftmux.raft.interfaces import IRaftObserver, IStagedStorage, IStateMachine, IStorage
from raftmux.raft.rawnode import RawNode
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE, IRaft, ITransporter
from raftmux.raftpb import (
    ConfChange,
    ConfChangeRemoveNode,
    ConfChangeV2,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    Message,
    MsgProp,
    MsgSnap,
)

__all__ = [
    "DriverStopped", "NotLeader", "NullStateMachine", "ProposalOverwritten",
    "ProposalTimeout", "RaftDriver", "RaftStatus", "ReadIndexTimeout", "RemovedMemberError",
]


class DriverStopped(RaftError):
    """The driver stopped before the request completed."""


class NotLeader(RaftError):
    """``propose`` on a member that is not the leader; ``leader`` is its ID or 0."""

    def __init__(self, leader):
        RaftError.__init__(self, "not the leader (leader is %x)" % (leader,))
        self.leader = leader


class ProposalOverwritten(RaftError):
    """
    The proposed entry was replaced by another at its index (leadership was
    lost before it committed) or covered by a snapshot before this member
    could see it applied: it may or may not have been committed.
    """


class ProposalTimeout(RaftError):
    """The proposal was not applied within the timeout; its outcome is unknown."""


class ReadIndexTimeout(RaftError):
    """No read state arrived (or was applied) within the timeout."""


class RemovedMemberError(RaftError):
    """A message from a member removed from the cluster."""


@implementer(IStateMachine)
class NullStateMachine:
    """Applies nothing: for a driver whose log carries no state."""

    def applyEntry(self, entry):
        return None

    def restoreSnapshot(self, snapshot):
        pass

    def validateConfChange(self, confChange, entry):
        return True

    def confChangeApplied(self, confChange, entry, confState):
        pass

    def appliedTo(self, index):
        pass


def _require(interface, value, what):
    if not interface.providedBy(value):
        raise TypeError("%s must provide %s: %r" % (what, interface.__name__, value))
    return value


class RaftStatus(namedtuple("RaftStatus", (
        "id term lead isLeader isLearner committed applied"))):
    """
    What a member's raft says now: its ``term``, the ``lead`` it knows (0:
    none), whether it ``isLeader`` or ``isLearner``, its ``committed`` and
    ``applied`` indexes.
    """


# A proposal queued by ``submit``: stepped from any member, tracked by nobody.
_SUBMITTED = "submitted"


class _Proposal:
    __slots__ = ("index", "term", "deferred", "timeout", "withResult")

    def __init__(self, index, term, deferred, timeout, withResult=False):
        self.index = index
        self.term = term
        self.deferred = deferred
        self.timeout = timeout
        self.withResult = withResult


class _ReadBatch:
    """The reads asked for in one reactor turn: one ReadIndex answers them all."""

    __slots__ = ("waiters", "timeout", "index", "ctx")

    def __init__(self):
        self.waiters = []
        self.timeout = None
        self.index = None
        self.ctx = None

    def finish(self, result, failed=False):
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            if failed:
                d.errback(result)
            else:
                d.callback(result)


@implementer(IRaft)
class RaftDriver:
    """
    Drive ``rawNode`` (whose ``Config.storage`` is ``storage``, an
    ``IStorage``) with ``reactor``'s clock, sending through ``transport``
    (an ``ITransporter``) and applying to ``stateMachine`` (an
    ``IStateMachine``; a ``NullStateMachine`` by default).  The applied
    index starts at the RawNode's (``Config.applied``).

    ``requestTimeout`` bounds ``propose`` and ``readIndex``.
    ``maxBatch``: after that many messages stepped without a Ready handled,
    ``process`` returns a Deferred that fires only once the Ready is
    handled, so the Transport's inbox waits (back-pressure); below it,
    ``process`` answers at once.  ``snapshotDatabase(message)`` (optional)
    names the database file to send with a MsgSnap: such messages then go
    through ``transport.sendSnapshot``, which reports the outcome to
    ``reportSnapshot``; without it a MsgSnap goes through ``send`` like any
    other message (snapshot data inline).
    """

    log = Logger()

    def __init__(self, rawNode: RawNode, storage: IStorage, transport: ITransporter,
                 reactor: Any, stateMachine: IStateMachine | None = None,
                 tickInterval: float = 0.1, requestTimeout: float = 5.0, maxBatch: int = 256,
                 snapshotDatabase: Callable[[Message], str | None] | None = None,
                 leaderSendsFirst: bool = False, persistInThread: bool = False) -> None:
        self.rawNode = rawNode
        self.storage = _require(IStagedStorage if persistInThread else IStorage, storage,
                                "storage")
        self.leaderSendsFirst = leaderSendsFirst
        self.persistInThread = persistInThread
        self.transport = _require(ITransporter, transport, "transport")
        self.stateMachine = _require(
            IStateMachine, stateMachine if stateMachine is not None else NullStateMachine(),
            "stateMachine")
        self.reactor = reactor
        self.tickInterval = tickInterval
        self.requestTimeout = requestTimeout
        self.maxBatch = maxBatch
        self.snapshotDatabase = snapshotDatabase
        self.applied = rawNode.raft.raftLog.applied
        self.removed: set[int] = set()
        self.running = False
        self.persistSeconds = 0.0
        self.error: Failure | None = None   # what stopped the driver, if it failed
        self._ticker: Any = None
        self._scheduled: Any = None
        self._handling = False
        self._stepped = 0
        self._readyWaiters: list[Deferred[Any]] = []
        self._proposals: dict[int, Any] = {}
        self._readSeq = 0
        self._reads: dict[bytes, _ReadBatch] = {}
        self._readsWaitingApply: list[Any] = []
        self._readBatch: Any = None
        self._queued: list[Any] = []
        self._observers: list[Any] = []
        self._inFlight: Any = None
        self._lead = rawNode.raft.lead
        self._leading = False
        self._appliedTerm = 0

    # -- IService-like --------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self.reactor
        self._ticker.start(self.tickInterval, now=False)
        self._scheduleReady()

    def stop(self) -> None:
        """Stop ticking and handling Ready; fail everything still waiting."""
        if not self.running:
            return
        self.running = False
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        for p in list(self._proposals.values()):
            self._failProposal(p, DriverStopped("driver stopped"))
        stopped = DriverStopped("driver stopped")
        batches = list(self._reads.values()) + list(self._readsWaitingApply)
        if self._readBatch is not None:
            batches.append(self._readBatch)
        self._reads, self._readsWaitingApply, self._readBatch = {}, [], None
        for batch in batches:
            batch.finish(stopped, failed=True)
        queued, self._queued = self._queued, []
        for _data, d, _withResult in queued:
            d.errback(stopped)
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.errback(DriverStopped("driver stopped"))
        if self._leading:
            self._leading = False
            for o in list(self._observers):
                o.leadershipChanged(False)

    # -- observers ------------------------------------------------------------

    def addObserver(self, observer):
        """Tell ``observer`` (an ``IRaftObserver``) about leadership from now on."""
        self._observers.append(_require(IRaftObserver, observer, "observer"))

    def removeObserver(self, observer):
        if observer in self._observers:
            self._observers.remove(observer)

    @property
    def leading(self):
        """Does this member lead, having applied the first entry of its term?"""
        return self._leading

    def status(self):
        """A L{RaftStatus} of this member now."""
        raft = self.rawNode.raft
        return RaftStatus(raft.id, raft.term, raft.lead, raft.state == StateLeader,
                          raft.isLearner, raft.raftLog.committed, self.applied)

    @property
    def lead(self):
        """The leader this member knows (0: none)."""
        return self.rawNode.raft.lead

    @property
    def term(self):
        return self.rawNode.raft.term

    @property
    def isLeader(self):
        return self.rawNode.raft.state == StateLeader

    @property
    def raftState(self):
        """raft's state now: ``StateFollower``, ``StatePreCandidate``, ``StateCandidate``
        or ``StateLeader`` (``raftmux.raft.core``'s names)."""
        return self.rawNode.raft.state

    @property
    def committed(self):
        return self.rawNode.raft.raftLog.committed

    def progress(self):
        """On the leader, member ID -> the highest index known to be there; else None."""
        raft = self.rawNode.raft
        if raft.state != StateLeader:
            return None
        return {id: pr.match for id, pr in raft.prs.progress.items()}

    def _tick(self):
        self.rawNode.tick()
        self._scheduleReady()

    # -- IRaft ----------------------------------------------------------------

    def process(self, message: Message) -> Deferred[Any]:
        sender = getattr(message, "from")
        if sender in self.removed:
            return fail(RemovedMemberError("message from removed member %x" % (sender,)))
        if not self.running:
            return fail(DriverStopped("driver not running"))
        try:
            self.rawNode.step(message)
        except StepLocalMsgError as e:
            return fail(e)
        except RaftError as e:
            # etcd drops these silently (responses from unknown members,
            # forwarded proposals it cannot take).
            self.log.debug("dropped message type {type} from {peer:x}: {error}",
                           type=message.type, peer=sender, error=e)
        self._stepped += 1
        self._scheduleReady()
        if self._stepped >= self.maxBatch:
            d: Deferred[Any] = Deferred()
            self._readyWaiters.append(d)
            return d
        return succeed(None)

    def isIDRemoved(self, id: int) -> bool:
        return id in self.removed

    def reportUnreachable(self, id: int) -> None:
        self.rawNode.reportUnreachable(id)
        self._scheduleReady()

    def reportSnapshot(self, id: int, status: int) -> None:
        self.rawNode.reportSnapshot(id, failed=status == SNAPSHOT_FAILURE)
        self._scheduleReady()

    # -- local requests -------------------------------------------------------

    def propose(self, data: bytes) -> Deferred[Entry]:
        """
        Propose ``data`` on this member, which must be the leader
        (``NotLeader`` otherwise).  Fires with the applied ``Entry`` once it
        is committed and applied here; fails with ``ProposalOverwritten``,
        ``ProposalTimeout``, ``ProposalDropped`` or ``DriverStopped``.
        """
        return self._queue(data, False)

    def proposeForResult(self, data: bytes) -> Deferred[tuple[Entry, Any]]:
        """As ``propose``, firing with ``(entry, what apply(entry) returned)``."""
        return self._queue(data, True)

    def submit(self, data):
        """
        Propose ``data`` from any member, as etcd's server does: batched
        with the turn's other proposals into one MsgProp, which the leader
        appends and a follower's core hands to the leader.  Fires (None)
        once stepped; the outcome is for the caller to learn from the
        applied entry (etcd waits on its request ID).  Fails with
        ``ProposalDropped`` (no leader known, a leadership transfer) or
        ``DriverStopped``.
        """
        if not self.running:
            return fail(DriverStopped("driver not running"))
        d: Deferred[Any] = Deferred()
        self._queued.append((data, d, _SUBMITTED))
        self._scheduleReady()
        return d

    def _queue(self, data, withResult):
        """
        Proposals made in one reactor turn are stepped together, as one
        MsgProp, when the Ready is handled: one append and one MsgApp per
        follower for the whole batch instead of one per proposal.
        """
        if not self.running:
            return fail(DriverStopped("driver not running"))
        raft = self.rawNode.raft
        if raft.state != StateLeader:
            return fail(NotLeader(raft.lead))
        d: Deferred[Any] = Deferred()
        self._queued.append((data, d, withResult))
        self._scheduleReady()
        return d

    def _flushProposals(self):
        queued, self._queued = self._queued, []
        raft = self.rawNode.raft
        leading = raft.state == StateLeader
        if not leading:
            for _data, d, kind in queued:
                if kind is not _SUBMITTED:
                    d.errback(NotLeader(raft.lead))
            queued = [q for q in queued if q[2] is _SUBMITTED]
            if not queued:
                return
        m = Message(**{"type": MsgProp, "from": raft.id})
        for data, _d, _kind in queued:
            m.entries.add(Data=data)
        try:
            raft.step(m)
        except RaftError as e:
            for _data, d, _kind in queued:
                d.errback(e)
            return
        last, term = raft.raftLog.lastIndex(), raft.term
        for offset, (_data, d, kind) in enumerate(queued):
            if kind is _SUBMITTED:
                d.callback(None)
            else:
                self._track(last - len(queued) + 1 + offset, term, d, kind)

    def forwardProposal(self, data: bytes) -> bool:
        """
        Propose ``data`` from any member, fire and forget: a follower's core
        hands it to the leader (etcd's forwarding).  False when it was
        dropped here (no leader known, driver stopped).
        """
        if not self.running:
            return False
        try:
            self.rawNode.propose(data)
        except RaftError:
            return False
        self._scheduleReady()
        return True

    def proposeConfChange(self, cc: Any) -> Deferred[Entry]:
        """As ``propose``, for a ``ConfChange`` (applied by the driver)."""
        return self._propose(self.rawNode.proposeConfChange, cc)

    def submitConfChange(self, cc):
        """
        As ``submit``, for a ``ConfChange``: from any member, untracked (its
        ``ID`` tells the state machine whose it is).  Fails at once with
        ``ProposalDropped`` or ``DriverStopped``.
        """
        if not self.running:
            return fail(DriverStopped("driver not running"))
        try:
            self.rawNode.proposeConfChange(cc)
        except RaftError as e:
            return fail(e)
        self._scheduleReady()
        return succeed(None)

    def transferLeadership(self, transferee):
        """
        Ask raft to hand leadership to ``transferee`` (etcd's
        ``TransferLeadership``); observers hear when it happened.
        """
        if not self.running:
            raise DriverStopped("driver not running")
        self.rawNode.transferLeader(transferee)
        self._scheduleReady()

    def _propose(self, method, arg, withResult=False):
        if not self.running:
            return fail(DriverStopped("driver not running"))
        raft = self.rawNode.raft
        if raft.state != StateLeader:
            return fail(NotLeader(raft.lead))
        try:
            method(arg)
        except RaftError as e:
            return fail(e)
        d: Deferred[Any] = Deferred()
        self._track(raft.raftLog.lastIndex(), raft.term, d, withResult)
        self._scheduleReady()
        return d

    def _track(self, index, term, d, withResult):
        p = _Proposal(index, term, d, None, withResult)
        p.timeout = self.reactor.callLater(
            self.requestTimeout, self._failProposal, p,
            ProposalTimeout("entry %d@%d not applied in %.3gs" % (
                index, term, self.requestTimeout)))
        self._proposals[index] = p

    def readIndex(self) -> Deferred[int]:
        """
        A linearizable read point: fires with the read index once this
        member has applied up to it.  Fails with ``ReadIndexTimeout`` (no
        leader, or a new leader that has not committed in its term yet: etcd
        3.4 drops the request then) or ``DriverStopped``.
        """
        if not self.running:
            return fail(DriverStopped("driver not running"))
        batch = self._readBatch
        if batch is None:
            batch = self._readBatch = _ReadBatch()
        d: Deferred[Any] = Deferred()
        batch.waiters.append(d)
        self._scheduleReady()
        return d

    def _flushReads(self):
        """Ask once for every read of this turn (etcd's linearizableReadLoop)."""
        batch, self._readBatch = self._readBatch, None
        self._readSeq += 1
        ctx = struct.pack(">Q", ((self.rawNode.raft.id & 0xFFFF) << 48)
                          | (self._readSeq & 0xFFFFFFFFFFFF))
        batch.timeout = self.reactor.callLater(
            self.requestTimeout, self._failRead, ctx,
            ReadIndexTimeout("no read state in %.3gs" % (self.requestTimeout,)))
        self._reads[ctx] = batch
        try:
            self.rawNode.readIndex(ctx)
        except RaftError as e:
            self._failRead(ctx, e)

    def _failProposal(self, p, error):
        if self._proposals.get(p.index) is p:
            del self._proposals[p.index]  # type: ignore[union-attr]
        if p.timeout is not None and p.timeout.active():
            p.timeout.cancel()
        if not p.deferred.called:
            p.deferred.errback(error)

    def _failRead(self, ctx, error):
        batch = self._reads.pop(ctx, None)
        if batch is None:
            for waiting in self._readsWaitingApply:
                if waiting.ctx == ctx:
                    self._readsWaitingApply.remove(waiting)
                    batch = waiting
                    break
        if batch is not None:
            batch.finish(error, failed=True)

    # -- Ready ----------------------------------------------------------------

    def _scheduleReady(self):
        if self.running and self._scheduled is None:
            self._scheduled = self.reactor.callLater(0, self._runReady)

    def _runReady(self):
        self._scheduled = None
        if not self.running or self._handling:
            return
        self._handling = True
        try:
            if self._queued:
                self._flushProposals()
            if self._readBatch is not None:
                self._flushReads()
            if self.rawNode.hasReady():
                rd = self.rawNode.ready()
                writing, sent = self._beginReady(rd)
                if writing is not None:
                    # The rest once the write is on disk; _handling stays set.
                    self._inFlight = writing
                    writing.addCallbacks(self._written, self._readyFailed, (rd, sent))
                    return
                self._finishReady(rd, sent)
        except Exception:
            self._readyFailed(Failure())
            return
        self._readyDone()

    def _written(self, _, rd, sent):
        self._inFlight = None
        if not self.running:
            self._handling = False
            return
        try:
            self._finishReady(rd, sent)
        except Exception:
            self._readyFailed(Failure())
            return
        self._readyDone()

    def _readyFailed(self, failure):
        # A failed write or fsync leaves the log in an unknown state
        # (docs/storage.md): stop rather than go on with this Ready.
        self._inFlight = None
        self._handling = False
        if not self.running:
            return
        self.error = failure
        self.log.failure("Ready handling failed; raft driver stopped", failure)
        self.stop()

    def _readyDone(self):
        self._handling = False
        self._stepped = 0
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.callback(None)
        if self.running and self.rawNode.hasReady():
            self._scheduleReady()

    def idle(self):
        """A Deferred firing once no storage write of a Ready is in flight."""
        writing = self._inFlight
        if writing is None:
            return succeed(None)
        d: Deferred[None] = Deferred()

        def passOn(result):
            d.callback(None)
            return result
        writing.addBoth(passOn)
        return d

    def _beginReady(self, rd):
        """
        Soft state, the leader's early send, and the persist step:
        ``(writing, sent)``, ``writing`` None once persisted here, or a
        Deferred of the write running on a thread.
        """
        if rd.softState is not None:
            self._softStateChanged(rd.softState)
        sent = False
        if self.leaderSendsFirst and rd.messages \
                and self.rawNode.raft.state == StateLeader:
            self._send(rd.messages)
            sent = True
        if self.persistInThread and rd.snapshot is None:
            pending = self.storage.prepareSave(rd.hardState, rd.entries, sync=rd.mustSync)
            if pending is not None:
                storage = self.storage
                began = time.perf_counter()

                def finish(_):
                    storage.finishSave(pending)
                    self.persistSeconds = time.perf_counter() - began
                return deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         storage.writeSave, pending).addCallback(finish), sent
            return None, sent
        self._persist(rd)
        return None, sent

    def _finishReady(self, rd, sent):
        """After the persist step: send (a follower), apply, advance."""
        self._checkOverwritten(rd)
        if rd.messages and not sent:
            self._send(rd.messages)
        self._apply(rd)
        self.rawNode.advance(rd)
        if not self._leading and self.rawNode.raft.state == StateLeader \
                and self._appliedTerm == self.rawNode.raft.term:
            self._leading = True
            for o in list(self._observers):
                o.leadershipChanged(True)

    def _softStateChanged(self, soft):
        raft = self.rawNode.raft
        if soft.lead != self._lead:
            self._lead = soft.lead
            for o in list(self._observers):
                o.leaderChanged(soft.lead, raft.term)
        if self._leading and soft.raftState != StateLeader:
            self._leading = False
            for o in list(self._observers):
                o.leadershipChanged(False)

    def _send(self, messages):
        if self.snapshotDatabase is not None:
            snaps = [m for m in messages if m.type == MsgSnap]
            if snaps:
                messages = [m for m in messages if m.type != MsgSnap]
                for m in snaps:
                    d = self.transport.sendSnapshot(m, self.snapshotDatabase(m))
                    d.addErrback(self._snapshotFailed, m.to)
        if messages:
            self.transport.send(messages)

    def _snapshotFailed(self, f, to):
        # The Transport reports its own failures; an unknown peer it does
        # not, and a second report of the same failure changes nothing.
        self.log.failure("snapshot to {peer:x} failed", f, peer=to)
        if self.running:
            self.reportSnapshot(to, SNAPSHOT_FAILURE)

    def _persist(self, rd):
        storage = self.storage
        began = time.perf_counter()
        if rd.snapshot is not None:
            storage.applySnapshot(rd.snapshot)
        if rd.hardState is not None or rd.entries:
            storage.save(rd.hardState, rd.entries)
        if rd.mustSync:
            storage.sync()
        self.persistSeconds = time.perf_counter() - began

    def _checkOverwritten(self, rd):
        """A tracked proposal whose index now holds another term was overwritten."""
        for e in rd.entries:
            p = self._proposals.get(e.Index)
            if p is not None and p.term != e.Term:
                self._failProposal(p, ProposalOverwritten(
                    "entry %d@%d replaced by a term %d entry" % (p.index, p.term, e.Term)))

    def _apply(self, rd):
        if rd.snapshot is not None:
            snapIndex = rd.snapshot.metadata.index
            self.stateMachine.restoreSnapshot(rd.snapshot)
            for p in list(self._proposals.values()):
                if p.index <= snapIndex:
                    self._failProposal(p, ProposalOverwritten(
                        "entry %d@%d covered by snapshot at %d" % (p.index, p.term, snapIndex)))
            if snapIndex >= self.applied:
                self.applied = snapIndex
                self._appliedTerm = rd.snapshot.metadata.term
        for e in rd.committedEntries:
            result = None
            if e.Type == EntryConfChange:
                self._applyConfChange(ConfChange.FromString(e.Data), e)
            elif e.Type == EntryConfChangeV2:
                self._applyConfChange(ConfChangeV2.FromString(e.Data), e)
            else:
                # Raft takes it as applied before the state machine tells any
                # waiter (see _applyConfChange).
                self.rawNode.appliedTo(e.Index)
                if e.Data:
                    result = self.stateMachine.applyEntry(e)
            self.applied = e.Index
            self._appliedTerm = e.Term
            p = self._proposals.pop(e.Index, None)
            if p is not None:
                if p.timeout.active():
                    p.timeout.cancel()
                if p.term == e.Term:
                    p.deferred.callback((e, result) if p.withResult else e)
                else:
                    p.deferred.errback(ProposalOverwritten(
                        "entry %d@%d replaced by a term %d entry" % (p.index, p.term, e.Term)))
        for rs in rd.readStates:
            batch = self._reads.pop(rs.requestCtx, None)
            if batch is not None:
                # The timeout keeps running until the index is applied.
                batch.index, batch.ctx = rs.index, rs.requestCtx
                self._readsWaitingApply.append(batch)
        if rd.snapshot is not None or rd.committedEntries:
            self.stateMachine.appliedTo(self.applied)
        if self._readsWaitingApply:
            ready = [b for b in self._readsWaitingApply if b.index <= self.applied]
            self._readsWaitingApply = [b for b in self._readsWaitingApply
                                       if b.index > self.applied]
            for batch in ready:
                batch.finish(batch.index)

    def _applyConfChange(self, cc, entry):
        # Raft takes the entry as applied first: what the state machine
        # tells waiters (a refusal here, the change in confChangeApplied)
        # may lead at once to the next configuration change.
        self.rawNode.appliedTo(entry.Index)
        if not self.stateMachine.validateConfChange(cc, entry):
            # etcd applies a refused change with no node: raft's
            # configuration stays as it is on every member.
            refused = type(cc)()
            refused.CopyFrom(cc)
            if isinstance(refused, ConfChange):
                refused.node_id = 0
            else:
                for change in refused.changes:
                    change.node_id = 0
            self.rawNode.applyConfChange(refused)
            return
        confState = self.rawNode.applyConfChange(cc)
        self.stateMachine.confChangeApplied(cc, entry, confState)
        for ctype, nodeID in confChangeToV2Changes(cc):
            if ctype == ConfChangeRemoveNode and nodeID:
                self.removed.add(nodeID)
                if nodeID != self.rawNode.raft.id and self.transport.hasPeer(nodeID):
                    self.transport.removePeer(nodeID)
