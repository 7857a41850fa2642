# -*- test-case-name: raftmux.test.test_etcd_lease -*-
"""
The timed half of etcd's lessor (``lease/lessor.go``): when leases
expire.  The replicated half (which leases exist, their TTLs, their keys)
is the key space's; this object only keeps clocks, and only on the leader.

* On the leader, once it has applied the first entry of its term (etcd's
  ``Promote``), every lease expires ``electionTimeout`` + its remaining
  TTL from then (its last checkpointed TTL, else its granted TTL), so a
  leader change gives every lease a fresh TTL, as etcd does.  With 1000
  leases or more, expiries bunched within a second are spread to at most
  750 a second, as etcd spreads them.
* A lease granted while leading expires its TTL after it was applied; a
  keep-alive (``renew``) sets it to its TTL from now.
* Every 500 ms the leader proposes ``LeaseRevoke`` for up to 500 expired
  leases, at most 16 in flight; one whose revoke did not get applied is
  tried again 3 s later.  Followers never decide anything: they apply the
  revokes they are sent.
* Checkpoints (``checkpointInterval``; off by default as in etcd 3.4, its
  ``--experimental-enable-lease-checkpoint``): the leader proposes each
  long lease's remaining TTL every interval so that a new leader does not
  extend it to its full TTL.
* A follower answers keep-alives and TimeToLive by asking the leader
  through a L{ILeaseForwarder} (etcd's ``/leases`` peer endpoints; see
  L{raftmux.etcd.leasehttp}).
"""

import heapq
import math
from collections import deque

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import Interface, implementer

from raftmux.etcd.deferred import withTimeout
from raftmux.etcd.interfaces import IApplyObserver
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import (
    ErrLeaseNotFound,
    ErrNoLeader,
    ErrTimeout,
    ErrTimeoutWaitAppliedIndex,
    EtcdError,
)

__all__ = ["Lessor", "ILeaseForwarder", "NotPrimary"]

#: etcd's leaseRevokeRate: revokes a second at most.
REVOKE_RATE = 1000
#: etcd's leaseCheckpointRate and maxLeaseCheckpointBatchSize.
CHECKPOINT_RATE = 1000
CHECKPOINT_BATCH = 1000
#: etcd's maxPendingRevokes.
MAX_PENDING_REVOKES = 16
#: How often the leader looks for expired leases (etcd's runLoop).
TICK = 0.5
#: etcd's defaultExpiredleaseRetryInterval.
EXPIRED_RETRY_INTERVAL = 3.0
#: etcd's default election timeout (1 s), the Promote extension.
ELECTION_TIMEOUT = 1.0
#: etcd's applyTimeout for waitAppliedIndex.
APPLY_TIMEOUT = 1.0
#: etcd's ReqTimeout with default flags: 5 s + 2 x election timeout.
REQUEST_TIMEOUT = 7.0
#: What etcd reports as a non-leader's remaining TTL (Go's max Duration).
FOREVER_SECONDS = (2 ** 63 - 1) // 10 ** 9


class NotPrimary(Exception):
    """This member's lessor is not (or no longer) the leader's."""


class ILeaseForwarder(Interface):
    """Asks the leader, on behalf of a follower (etcd's leasehttp)."""

    def renew(leaderID, leaseID):
        """A Deferred of the TTL the leader renewed ``leaseID`` to, or ErrLeaseNotFound."""

    def timeToLive(leaderID, request):
        """
        A Deferred of the leader's ``LeaseTimeToLiveResponse`` for
        ``request`` (header unfilled), or ErrLeaseNotFound.
        """


@implementer(IApplyObserver)
class Lessor:
    """
    Leases' clocks for one member.  The API builder adds it to the node's
    observers and calls L{start} and L{stop}.
    """

    log = Logger()

    def __init__(self, node, proposer, clock, electionTimeout=ELECTION_TIMEOUT,
                 checkpointInterval=None, expiredRetryInterval=EXPIRED_RETRY_INTERVAL,
                 forwarder=None, requestTimeout=REQUEST_TIMEOUT):
        self._node = node
        self._proposer = proposer
        self._clock = clock
        self.electionTimeout = electionTimeout
        self.checkpointInterval = checkpointInterval
        self.expiredRetryInterval = expiredRetryInterval
        self.requestTimeout = requestTimeout
        self._forwarder = forwarder
        self._primary = False
        self._expiry = {}
        self._notifyAt = {}
        self._expiryHeap = []
        self._checkpointHeap = []
        self._revokeQueue = deque()
        self._revoking = set()
        self._inFlight = 0
        self._revokeWaiters = {}
        self._primaryWaiters = []
        self._loop = None

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        """Begin; a member that already leads is promoted at once."""
        if self._node.isLeader():
            self.promote(0)

    def stop(self):
        self.demote()

    @property
    def isPrimary(self):
        return self._primary

    def promote(self, extend):
        """
        etcd's ``Promote``: this member's lessor decides now.  Every lease
        expires ``extend`` + its remaining TTL from now.
        """
        now = self._clock.seconds()
        self._primary = True
        self._expiry.clear()
        self._notifyAt.clear()
        self._expiryHeap = []
        self._checkpointHeap = []
        leases = self._node.keySpace.leases()
        for info in leases:
            self._setExpiry(info.id, now + extend + info.effectiveTTL)
            self._scheduleCheckpoint(info)
        if len(leases) >= REVOKE_RATE:
            self._spread(leases, now, extend)
        if self._loop is None:
            self._loop = task.LoopingCall(self._tick)
            self._loop.clock = self._clock
            self._loop.start(TICK, now=False)
        waiters, self._primaryWaiters = self._primaryWaiters, []
        for d in waiters:
            d.callback(None)

    def _spread(self, leases, now, extend):
        """etcd's rate limit on a new leader's expiries: 750 a second at most."""
        order = sorted(leases, key=lambda info: self._expiry[info.id])
        target = (3 * REVOKE_RATE) // 4
        base = self._expiry[order[0].id] - now
        nextWindow = base + 1.0
        expires = 0
        for info in order:
            remaining = self._expiry[info.id] - now
            if remaining > nextWindow:
                base = remaining
                nextWindow = base + 1.0
                expires = 1
                continue
            expires += 1
            if expires <= target:
                continue
            delay = expires / target - (remaining - base)
            nextWindow = base + delay
            self._setExpiry(info.id, now + delay + extend + info.effectiveTTL)

    def demote(self):
        """etcd's ``Demote``: leases no longer expire here."""
        self._primary = False
        self._expiry.clear()
        self._notifyAt.clear()
        self._expiryHeap = []
        self._checkpointHeap = []
        self._revokeQueue.clear()
        self._revoking.clear()
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None
        waiters, self._revokeWaiters = self._revokeWaiters, {}
        for ds in waiters.values():
            for d in ds:
                d.errback(NotPrimary())

    # -- expiry bookkeeping ---------------------------------------------------

    def _setExpiry(self, leaseID, when):
        self._expiry[leaseID] = when
        self._notify(leaseID, when)

    def _notify(self, leaseID, when):
        self._notifyAt[leaseID] = when
        heapq.heappush(self._expiryHeap, (when, leaseID))

    def _forget(self, leaseID):
        self._expiry.pop(leaseID, None)
        self._notifyAt.pop(leaseID, None)
        self._revoking.discard(leaseID)
        waiters = self._revokeWaiters.pop(leaseID, ())
        for d in waiters:
            d.errback(ErrLeaseNotFound())

    def remaining(self, leaseID):
        """Seconds until ``leaseID`` expires (inf when not leading)."""
        when = self._expiry.get(leaseID)
        if when is None:
            return math.inf
        return when - self._clock.seconds()

    def _scheduleCheckpoint(self, info):
        if self.checkpointInterval is None:
            return
        if info.effectiveTTL > int(self.checkpointInterval):
            heapq.heappush(self._checkpointHeap,
                           (self._clock.seconds() + self.checkpointInterval, info.id))

    # -- IApplyObserver -------------------------------------------------------

    def applied(self, request, result):
        if request.HasField("lease_grant"):
            if result is not None and self._primary:
                info = self._node.keySpace.lease(request.lease_grant.ID)
                if info is not None:
                    self._setExpiry(info.id, self._clock.seconds() + info.effectiveTTL)
                    self._scheduleCheckpoint(info)
        elif request.HasField("lease_revoke"):
            leaseID = request.lease_revoke.ID
            if self._node.keySpace.lease(leaseID) is None:
                self._forget(leaseID)
        elif request.HasField("lease_checkpoint") and self._primary:
            ks = self._node.keySpace
            for c in request.lease_checkpoint.checkpoints:
                info = ks.lease(c.ID)
                if info is not None:
                    self._scheduleCheckpoint(info)

    def restored(self):
        ks = self._node.keySpace
        for leaseID in list(self._expiry):
            if ks.lease(leaseID) is None:
                self._forget(leaseID)
        for leaseID in list(self._revokeWaiters):
            if ks.lease(leaseID) is None:
                self._forget(leaseID)
        if self._primary:
            now = self._clock.seconds()
            for info in ks.leases():
                if info.id not in self._expiry:
                    self._setExpiry(info.id, now + info.effectiveTTL)

    def leadershipChanged(self, isLeader):
        if isLeader:
            self.promote(self.electionTimeout)
        else:
            self.demote()

    # -- the leader's loop ----------------------------------------------------

    def _tick(self):
        self._findExpired()
        self._pumpRevokes()
        self._checkpoints()

    def _findExpired(self):
        now = self._clock.seconds()
        heap = self._expiryHeap
        limit = REVOKE_RATE // 2
        found = 0
        while heap and found < limit:
            when, leaseID = heap[0]
            if self._notifyAt.get(leaseID) != when:
                heapq.heappop(heap)
                continue
            if when > now:
                break
            heapq.heappop(heap)
            self._notify(leaseID, now + self.expiredRetryInterval)
            if self._expiry[leaseID] <= now and leaseID not in self._revoking:
                self._revokeQueue.append(leaseID)
                self._revoking.add(leaseID)
                found += 1

    def _pumpRevokes(self):
        while self._revokeQueue and self._inFlight < MAX_PENDING_REVOKES and self._primary:
            leaseID = self._revokeQueue.popleft()
            self._inFlight += 1
            d = self._proposer.propose(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=leaseID))
            d.addErrback(self._revokeFailed, leaseID)
            d.addBoth(self._revokeDone, leaseID)

    def _revokeFailed(self, failure, leaseID):
        if not failure.check(EtcdError):
            self.log.failure("revoking expired lease {lease:x}", failure, lease=leaseID)
        return None

    def _revokeDone(self, _, leaseID):
        self._inFlight -= 1
        self._revoking.discard(leaseID)
        if self._primary:
            self._pumpRevokes()

    def _checkpoints(self):
        if self.checkpointInterval is None:
            return
        for _ in range(CHECKPOINT_RATE // 2):
            batch = self._dueCheckpoints()
            if batch:
                d = self._proposer.propose(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(
                    checkpoints=batch))
                d.addErrback(lambda _: None)
            if len(batch) < CHECKPOINT_BATCH:
                return

    def _dueCheckpoints(self):
        now = self._clock.seconds()
        ks = self._node.keySpace
        batch = []
        heap = self._checkpointHeap
        while heap and len(batch) < CHECKPOINT_BATCH:
            when, leaseID = heap[0]
            if when > now:
                break
            heapq.heappop(heap)
            info = ks.lease(leaseID)
            expiry = self._expiry.get(leaseID)
            if info is None or expiry is None or now >= expiry:
                continue
            remaining = int(math.ceil(expiry - now))
            if remaining >= info.ttl:
                continue
            batch.append(rpc_pb2.LeaseCheckpoint(ID=leaseID, remaining_TTL=remaining))
        return batch

    # -- keep-alive and TimeToLive --------------------------------------------

    def renew(self, leaseID):
        """
        etcd's ``LeaseRenew``: a Deferred of the lease's TTL once its
        expiry has been reset, ErrLeaseNotFound when it is gone (an expired
        lease's renew waits for its revoke).  A follower asks the leader.
        """
        return defer.ensureDeferred(self._atLeader(
            lambda: self.renewHere(leaseID),
            lambda leader: self._forwarder.renew(leader, leaseID)))

    def timeToLive(self, request):
        """
        etcd's ``LeaseTimeToLive``: a Deferred of a
        ``LeaseTimeToLiveResponse`` (header unfilled) or ErrLeaseNotFound.
        """
        return defer.ensureDeferred(self._atLeader(
            lambda: self.timeToLiveHere(request),
            lambda leader: self._forwarder.timeToLive(leader, request)))

    def leaseIDs(self):
        """Every lease's ID, soonest expiry first on the leader (etcd's order)."""
        ids = [info.id for info in self._node.keySpace.leases()]
        if self._primary:
            ids.sort(key=lambda i: (self._expiry.get(i, math.inf), i))
        return ids

    async def _atLeader(self, here, there):
        node, clock = self._node, self._clock
        deadline = clock.seconds() + self.requestTimeout
        while True:
            left = deadline - clock.seconds()
            if node.isLeader():
                if self._primary:
                    try:
                        return await here()
                    except NotPrimary:
                        continue
                if left <= 0:
                    raise ErrTimeout()
                waiter = defer.Deferred()
                self._primaryWaiters.append(waiter)
                try:
                    await withTimeout(waiter, left, clock, ErrTimeout)
                finally:
                    if waiter in self._primaryWaiters:
                        self._primaryWaiters.remove(waiter)
                continue
            leader = node.leader()
            if leader and self._forwarder is not None:
                try:
                    return await withTimeout(there(leader), max(left, 0.001), clock, ErrTimeout)
                except ErrLeaseNotFound:
                    raise
                except EtcdError as e:
                    if not isinstance(e, ErrTimeout):
                        self.log.debug("lease request to the leader failed: {e}", e=e)
                except Exception as e:
                    self.log.debug("lease request to the leader failed: {e!r}", e=e)
            left = deadline - clock.seconds()
            if left <= 0:
                raise ErrNoLeader() if not node.leader() else ErrTimeout()
            await task.deferLater(clock, min(self.electionTimeout, left), lambda: None)

    async def _waitApplied(self):
        await withTimeout(self._node.waitApplied(), APPLY_TIMEOUT, self._clock,
                          ErrTimeoutWaitAppliedIndex)

    async def renewHere(self, leaseID):
        """
        Renew on this member only (what a follower's request to the leader
        runs): the TTL, or L{NotPrimary}, ErrLeaseNotFound,
        ErrTimeoutWaitAppliedIndex.
        """
        await self._waitApplied()
        if not self._primary:
            raise NotPrimary()
        ks = self._node.keySpace
        info = ks.lease(leaseID)
        if info is None:
            raise ErrLeaseNotFound()
        if self.remaining(leaseID) <= 0:
            waiter = defer.Deferred()
            self._revokeWaiters.setdefault(leaseID, []).append(waiter)
            await waiter
        if self.checkpointInterval is not None and info.remainingTTL > 0:
            try:
                await self._proposer.propose(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(
                    checkpoints=[rpc_pb2.LeaseCheckpoint(ID=leaseID, remaining_TTL=0)]))
            except EtcdError:
                pass
            info = ks.lease(leaseID)
            if info is None:
                raise ErrLeaseNotFound()
        if not self._primary:
            raise NotPrimary()
        self._setExpiry(leaseID, self._clock.seconds() + info.effectiveTTL)
        return info.ttl

    async def timeToLiveHere(self, request, primaryOnly=True):
        """
        TimeToLive from this member's clocks only: a
        ``LeaseTimeToLiveResponse`` or ErrLeaseNotFound.  With
        ``primaryOnly`` False a member that is not leading answers too (its
        remaining TTL is then etcd's "forever", as etcd's peer endpoint
        answers).
        """
        await self._waitApplied()
        if primaryOnly and not self._primary:
            raise NotPrimary()
        info = self._node.keySpace.lease(request.ID)
        if info is None:
            raise ErrLeaseNotFound()
        remaining = self.remaining(request.ID)
        ttl = FOREVER_SECONDS if remaining == math.inf else int(remaining)
        response = rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID, TTL=ttl, grantedTTL=info.ttl)
        response.header.SetInParent()
        if request.keys:
            response.keys.extend(info.keys)
        return response
