# -*- test-case-name: raftmux.test.test_node_etcdnode -*-
"""
``EtcdNode``: a raftmux member as etcd's v3 API sees it (``IEtcdNode``),
the one narrow view the API layer has of the node.  It is built once the
raft driver and the state machine exist, and is the only object the
client API (the etcd services, the JSON gateway, ``/kv``, ``/cluster``,
``/health``) talks to: none of it reaches the driver, the dialer or raft
itself.

Everything is done as etcd's server does it:

* **Proposals** go from any member (``RaftDriver.submit``: a follower's
  raft hands them to the leader) and are waited on by their request ID
  until this member applies them; the waiter gets the typed result the
  state gave (``Applied``, or the key space's ``EtcdError``).  A proposal
  not applied within ``requestTimeout`` fails with ``ErrTimeout``, or
  ``ErrTimeoutDueToLeaderFail`` when the leader changed meanwhile; one
  raft drops at once (no leader) with ``ErrNoLeader``; any while stopped
  with ``ErrStopped``.
* **Linearizable reads** wait for a ReadIndex the leader confirmed
  (``readIndex``); ``waitApplied`` for everything committed at the call.
* **Leadership**: observers hear ``leadershipChanged(True)`` once this
  member leads and has applied its term's first entry (when etcd promotes
  its lessor), False when it stops leading.
* **Membership** changes are etcd's conf changes (IDs from the peer URLs
  and the time, etcd's contexts, learners and promotion, checked by every
  member as they are applied), waited on by the change's ID.
* **Attributes**: the member publishes its name and client URLs through
  the log as etcd 3.4 does (a v2 ``PUT /0/members/<id>/attributes``), so
  etcd members apply it too.
"""

import time

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.etcd.idgen import IDGenerator
from raftmux.etcd.interfaces import IEtcdNode, NodeStatus
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import (
    ErrBadLeaderTransferee,
    ErrMemberLearnerNotReady,
    ErrMemberNotEnoughStarted,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrNoLeader,
    ErrStopped,
    ErrTimeout,
    ErrTimeoutDueToLeaderFail,
    EtcdError,
)
from raftmux.node import entries
from raftmux.node.members import memberContext
from raftmux.node.statemachine import DuplicateRequestID, memberMessages
from raftmux.raft.core import (
    ProposalDropped,
    RaftError,
    StateCandidate,
    StateLeader,
    StatePreCandidate,
)
from raftmux.raft.driver import DriverStopped, ReadIndexTimeout
from raftmux.raft.interfaces import IRaftObserver
from raftmux.rafthttp import formatID
from raftmux.rafthttp.ids import memberID as computeMemberID
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
)

__all__ = ["EtcdNode", "PUBLISH_INTERVAL", "LEARNER_READY_PERCENT", "DB_SIZE_REUSE_FACTOR"]

#: How often a member that has not yet seen its attributes applied asks again.
PUBLISH_INTERVAL = 1.0
#: etcd's readyPercent: a learner is promoted once it holds this much of the leader's log.
LEARNER_READY_PERCENT = 0.9
#: A computed key-space size is reused for this many times what computing it
#: took (it encodes the key space), so sizing costs at most ~1% of the reactor.
DB_SIZE_REUSE_FACTOR = 100


@implementer(IEtcdNode, IRaftObserver)
class EtcdNode:
    """
    ``driver``: the running ``RaftDriver``; ``stateMachine``: its
    ``NodeStateMachine``; ``clock``: an ``IReactorTime``.  ``ids``: the
    request ID generator shared with the API (one per member, so IDs never
    collide).
    """

    log = Logger()

    def __init__(self, driver, stateMachine, clock, memberID, clusterID, requestTimeout=5.0,
                 ids=None, promoteForwarder=None):
        self.driver = driver
        # A follower asks the leader to promote (raftmux.node.promote).
        self._promoteForwarder = promoteForwarder
        self.stateMachine = stateMachine
        self.clock = clock
        self.memberID = memberID
        self.clusterID = clusterID
        self.requestTimeout = requestTimeout
        self.ids = ids if ids is not None else IDGenerator(memberID, clock.seconds())
        #: counters etcd exports (read by the node's metrics)
        self.leaderChanges = 0
        self.proposalsFailed = 0
        self.readIndexesFailed = 0
        self._leaderWaiters = []
        self._dbSize = None
        self._publisher = None
        driver.addObserver(self)

    # -- raft state ---------------------------------------------------------------

    @property
    def keySpace(self):
        return self.stateMachine.state.keySpace

    @property
    def running(self):
        return self.driver.running

    def term(self):
        return self.driver.term

    def leader(self):
        return self.driver.lead

    def isLeader(self):
        return self.driver.isLeader

    def isLearner(self):
        member = self.stateMachine.state.members.get(self.memberID)
        return bool(member is not None and member.isLearner)

    def role(self):
        """
        This member's raft role as an operator names it: ``leader``,
        ``candidate`` (pre-vote included), ``follower``, or ``learner``
        (a learner's raft only follows).
        """
        if self.isLearner():
            return "learner"
        state = self.driver.raftState
        if state == StateLeader:
            return "leader"
        if state in (StateCandidate, StatePreCandidate):
            return "candidate"
        return "follower"

    def progress(self):
        """On the leader: member ID -> the highest log index known to be there; else None."""
        return self.driver.progress()

    def appliedIndex(self):
        return self.stateMachine.applied

    def status(self):
        s = self.driver.status()
        size = self.dbSize()
        return NodeStatus(leader=s.lead, raftIndex=s.committed, raftTerm=s.term,
                          raftAppliedIndex=self.appliedIndex(), dbSize=size, dbSizeInUse=size,
                          isLearner=self.isLearner())

    def dbSize(self):
        """
        Our nearest to etcd's database size: the length of the key space's
        snapshot encoding.  Encoding costs time in proportion to the key
        space, so once the key space changed a size is computed again only
        after ``DB_SIZE_REUSE_FACTOR`` times what the last computation took
        (a few microseconds for a small key space, seconds for millions of
        keys): status and metrics may lag a busy key space's size a little.
        """
        ks = self.keySpace
        now = time.monotonic()
        version = (ks.revision, ks.compactRevision, ks.consistentIndex)
        cached = self._dbSize
        if cached is not None:
            reuseUntil, seen, size = cached
            if seen == version or now < reuseUntil:
                return size
        size = len(ks.snapshot())
        took = time.monotonic() - now
        self._dbSize = (now + took * DB_SIZE_REUSE_FACTOR, version, size)
        return size

    def pendingProposals(self):
        return len(self.stateMachine.waits)

    def healthProblem(self):
        """Why this member should not be called healthy, or "" (``/health``)."""
        if self.memberID in self.stateMachine.state.members.removed:
            return "removed from the cluster"
        if not self.driver.running:
            return "raft is not running"
        if not self.leader():
            return "no leader"
        if self.stateMachine.foreignSnapshot:
            return "the key space is incomplete (restored from an etcd member's snapshot)"
        return ""

    # -- observers ----------------------------------------------------------------

    def addObserver(self, observer):
        self.stateMachine.addObserver(observer)

    def removeObserver(self, observer):
        self.stateMachine.removeObserver(observer)

    # IRaftObserver

    def leaderChanged(self, leaderID, term):
        if leaderID:
            self.leaderChanges += 1
            self.log.info("raftmux: member {id} sees leader {leader} at term {term}",
                          id=formatID(self.memberID), leader=formatID(leaderID), term=term)
        waiters, self._leaderWaiters = self._leaderWaiters, []
        for target, d in waiters:
            if target == leaderID:
                d.callback(None)
            else:
                self._leaderWaiters.append((target, d))

    def leadershipChanged(self, isLeader):
        self.stateMachine.leadershipChanged(isLeader)

    # -- proposals ------------------------------------------------------------------

    def propose(self, request):
        return self.proposeWithIndex(request).addCallback(lambda result: result[1])

    def proposeWithIndex(self, request):
        """
        As ``propose``, firing with ``(raft index, Applied)``.  A request
        whose ``header.ID`` is unset gets one.
        """
        if not (request.ID or request.header.ID):
            request.header.ID = self.ids.next()
        id = request.ID or request.header.ID
        d = self._wait(id, lambda: self.driver.submit(request.SerializeToString()))

        def applied(result):
            index, outcome = result
            if outcome.error is not None:
                raise outcome.error
            return index, outcome.result
        return d.addCallback(applied)

    def _wait(self, id, submit):
        """Register ``id``, call ``submit()``; the waiter, with etcd's errors."""
        if not self.driver.running:
            return defer.fail(ErrStopped())
        waits = self.stateMachine.waits
        try:
            d = waits.register(id)
        except DuplicateRequestID:
            return defer.fail(ValueError("request ID %x is already waited on" % (id,)))
        driver = self.driver
        startTerm = driver.term

        def notSubmitted(failure):
            self.proposalsFailed += 1
            waits.trigger(id, self._submitError(failure.value))

        def timedOut():
            self.proposalsFailed += 1
            error = ErrTimeoutDueToLeaderFail() if not driver.lead or driver.term != startTerm \
                else ErrTimeout()
            waits.trigger(id, error)

        timer = self.clock.callLater(self.requestTimeout, timedOut)

        def done(result):
            if timer.active():
                timer.cancel()
            return result
        d.addBoth(done)
        submit().addErrback(notSubmitted)
        return d

    def _submitError(self, error):
        if isinstance(error, DriverStopped):
            return ErrStopped()
        if isinstance(error, ProposalDropped) and not self.leader():
            return ErrNoLeader()
        if isinstance(error, EtcdError):
            return error
        return ErrTimeout()

    def stop(self):
        """The node stops: everything still waiting fails with ``ErrStopped``."""
        if self._publisher is not None and self._publisher.active():
            self._publisher.cancel()
        self._publisher = None
        self.driver.removeObserver(self)
        self.stateMachine.stop(ErrStopped())
        waiters, self._leaderWaiters = self._leaderWaiters, []
        for _, d in waiters:
            d.errback(ErrStopped())

    # -- reads ----------------------------------------------------------------------

    def readIndex(self):
        if not self.driver.running:
            return defer.fail(ErrStopped())
        if not self.leader():
            self.readIndexesFailed += 1
            return defer.fail(ErrNoLeader())

        def failed(failure):
            self.readIndexesFailed += 1
            if failure.check(DriverStopped):
                raise ErrStopped()
            if failure.check(ReadIndexTimeout, RaftError):
                raise ErrTimeout()
            return failure
        return self.driver.readIndex().addCallbacks(lambda _: None, failed)

    def waitApplied(self):
        return self.stateMachine.whenApplied(self.driver.committed)

    # -- membership -----------------------------------------------------------------

    def members(self):
        return memberMessages(self.stateMachine.state.members)

    def _configure(self, cc):
        """Propose a conf change from this member; its ``(index, members)``."""
        cc.id = self.ids.next()
        return self._wait(cc.id, lambda: self.driver.submitConfChange(cc))

    def _started(self, excluding=None):
        """Voting members that published their attributes (etcd's ``IsStarted``)."""
        table = self.stateMachine.state.members
        voters = [table.get(i) for i in table.ids() if not table.get(i).isLearner]
        return [m for m in voters if m.id != excluding], \
            [m for m in voters if m.id != excluding and (m.name or m.clientURLs)]

    async def _addMember(self, peerURLs, isLearner, name):
        if not isLearner:
            voters, started = self._started()
            n = len(voters) + 1
            if not (len(started) == 1 and n == 2) and len(started) < n // 2 + 1:
                raise ErrMemberNotEnoughStarted()
        id = computeMemberID(peerURLs, "", int(self.clock.seconds()))
        cc = ConfChange(type=ConfChangeAddLearnerNode if isLearner else ConfChangeAddNode,
                        node_id=id, context=memberContext(id, peerURLs, name,
                                                          isLearner=isLearner, isPromote=False))
        _, members = await self._configure(cc)
        member = rpc_pb2.Member(ID=id, name=name, peerURLs=peerURLs, isLearner=isLearner)
        return member, members

    def addMember(self, peerURLs, isLearner, name=""):
        return defer.ensureDeferred(self._addMember(list(peerURLs), bool(isLearner), name))

    async def _removeMember(self, memberID):
        table = self.stateMachine.state.members
        member = table.get(memberID)
        if member is not None and not member.isLearner:
            voters, started = self._started(excluding=memberID)
            if len(started) < len(voters) // 2 + 1:
                raise ErrMemberNotEnoughStarted()
        _, members = await self._configure(ConfChange(type=ConfChangeRemoveNode,
                                                      node_id=memberID))
        return members

    def removeMember(self, memberID):
        return defer.ensureDeferred(self._removeMember(memberID))

    async def _updateMember(self, memberID, peerURLs):
        _, members = await self._configure(ConfChange(
            type=ConfChangeUpdateNode, node_id=memberID,
            context=memberContext(memberID, peerURLs)))
        return members

    def updateMember(self, memberID, peerURLs):
        return defer.ensureDeferred(self._updateMember(memberID, list(peerURLs)))

    async def _promoteMember(self, memberID):
        member = self.stateMachine.state.members.get(memberID)
        if member is None:
            raise ErrMemberNotFound()
        if not member.isLearner:
            raise ErrMemberNotLearner()
        progress = self.driver.progress()
        if progress is None and self._promoteForwarder is not None:
            # Only the leader knows whether the learner caught up: ask it,
            # as etcd does.
            leader = self.leader()
            if not leader:
                raise ErrNoLeader()
            known = self.stateMachine.state.members.get(leader)
            return await self._promoteForwarder.promote(
                known.peerURLs if known is not None else [], memberID)
        if progress is not None:
            leaderMatch = progress.get(self.memberID, self.driver.committed)
            if progress.get(memberID, 0) < leaderMatch * LEARNER_READY_PERCENT:
                raise ErrMemberLearnerNotReady()
        _, members = await self._configure(ConfChange(
            type=ConfChangeAddNode, node_id=memberID,
            context=memberContext(memberID, member.peerURLs, isPromote=True)))
        return members

    def promoteMember(self, memberID):
        return defer.ensureDeferred(self._promoteMember(memberID))

    async def _moveLeader(self, targetID):
        target = self.stateMachine.state.members.get(targetID)
        if target is None or target.isLearner:
            raise ErrBadLeaderTransferee()
        if self.leader() == targetID:
            return None
        d: defer.Deferred[None] = defer.Deferred()
        self._leaderWaiters.append((targetID, d))
        self.driver.transferLeadership(targetID)
        timer = self.clock.callLater(self.requestTimeout, d.cancel)
        try:
            await d
        except defer.CancelledError:
            raise ErrTimeout() from None
        finally:
            if timer.active():
                timer.cancel()
            self._leaderWaiters = [(t, w) for t, w in self._leaderWaiters if w is not d]
        return None

    def moveLeader(self, targetID):
        return defer.ensureDeferred(self._moveLeader(targetID))

    # -- publishing our attributes --------------------------------------------------

    def publish(self, name, clientURLs):
        """
        etcd's ``publish``: put this member's name and client URLs in the
        log (as etcd 3.4 does, a bare v2 request) until it sees them applied.
        """
        self._publisher = None
        if not self.driver.running:
            return
        me = self.stateMachine.state.members.get(self.memberID)
        if me is not None and me.clientURLs == list(clientURLs) and me.name == name:
            self.log.info("raftmux: published {name} {urls} to cluster {cid}", name=name,
                          urls=",".join(clientURLs), cid=formatID(self.clusterID))
            return
        if self.leader():
            request = entries.attributesRequest(self.ids.next(), self.memberID, name,
                                                clientURLs)
            self.driver.submit(request.SerializeToString()).addErrback(lambda _: None)
        self._publisher = self.clock.callLater(PUBLISH_INTERVAL, self.publish, name,
                                               clientURLs)
