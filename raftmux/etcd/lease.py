# -*- test-case-name: raftmux.test.test_etcd_lease -*-
"""
etcd's Lease service (``etcdserver/api/v3rpc/lease.go``,
``etcdserver/v3_server.go``) over the key space and the L{Lessor}.

* LeaseGrant picks an ID when the request has none (etcd's request ID
  generator masked to 63 bits) and proposes the grant.
* LeaseRevoke proposes the revoke.
* LeaseTimeToLive answers from the leader's lessor; an unknown lease is
  answered ``TTL: -1``, not an error, as etcd does.
* LeaseLeases lists the key space's leases.
* LeaseKeepAlive is a stream: each request is answered in order, after
  the leader renewed the lease (``TTL`` 0 for an unknown lease); an error
  other than "not found" ends the stream with it.  The response header is
  taken before the renewal, as etcd does.
"""

from collections import deque

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.etcd.deferred import deferredMethod
from raftmux.etcd.guard import refuse
from raftmux.etcd.interfaces import IStreamHandler
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import ErrLeaseNotFound, EtcdError

__all__ = ["LeaseService", "KeepAliveStream"]

#: Requests a keep-alive stream holds before it stops reading (etcd's
#: stream reads one request at a time; gRPC's window holds the rest).
MAX_QUEUED_REQUESTS = 16


class LeaseService:
    """``etcdserverpb.Lease``; rpc methods take and return etcd's messages."""

    def __init__(self, node, proposer, headers, lessor, ids, guard):
        self._node = node
        self._proposer = proposer
        self._headers = headers
        self._lessor = lessor
        self._ids = ids
        self._guard = guard

    @deferredMethod
    async def LeaseGrant(self, request):
        self._guard.check(request)
        grant = rpc_pb2.LeaseGrantRequest()
        grant.CopyFrom(request)
        if grant.ID == 0:
            grant.ID = self._ids.nextLeaseID()
        applied = await self._proposer.propose(lease_grant=grant)
        response = applied.response
        self._headers.fill(response.header)
        return response

    @deferredMethod
    async def LeaseRevoke(self, request):
        self._guard.check(request)
        applied = await self._proposer.propose(lease_revoke=request)
        response = applied.response
        self._headers.fill(response.header)
        return response

    @deferredMethod
    async def LeaseTimeToLive(self, request):
        self._guard.check(request)
        try:
            response = await self._lessor.timeToLive(request)
        except ErrLeaseNotFound:
            response = rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1)
        self._headers.fill(response.header)
        return response

    @deferredMethod
    def LeaseLeases(self, request):
        self._guard.check(request)
        response = rpc_pb2.LeaseLeasesResponse(header=self._headers.make())
        for leaseID in self._lessor.leaseIDs():
            response.leases.add(ID=leaseID)
        self._headers.fill(response.header)
        return response

    def LeaseKeepAlive(self, responder):
        """The keep-alive stream: a L{KeepAliveStream} for ``responder``."""
        error = self._guard.streamError()
        if error is not None:
            return refuse(responder, error)
        return KeepAliveStream(self._lessor, self._headers, responder)


@implementer(IStreamHandler, IPushProducer)
class KeepAliveStream:
    """One LeaseKeepAlive rpc: requests answered one at a time, in order."""

    log = Logger()

    def __init__(self, lessor, headers, responder):
        self._lessor = lessor
        self._headers = headers
        self._responder = responder
        self._queue = deque()
        self._busy = False
        self._paused = False
        self._inboundPaused = False
        self._requestsDone = False
        self._closed = False
        responder.registerProducer(self, True)

    def receive(self, request):
        if self._closed:
            return
        self._queue.append(request)
        if len(self._queue) >= MAX_QUEUED_REQUESTS and not self._inboundPaused:
            self._inboundPaused = True
            self._responder.pauseProducing()
        self._pump()

    def requestsDone(self):
        self._requestsDone = True
        self._pump()

    def cancel(self):
        self._close()

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._pump()

    def stopProducing(self):
        self._close()

    def _close(self):
        if not self._closed:
            self._closed = True
            self._queue.clear()
            self._responder.unregisterProducer()

    def _finish(self, error=None):
        if not self._closed:
            self._close()
            self._responder.finish(error)

    def _pump(self):
        while not (self._busy or self._paused or self._closed):
            if not self._queue:
                if self._requestsDone:
                    self._finish()
                return
            request = self._queue.popleft()
            if self._inboundPaused and len(self._queue) < MAX_QUEUED_REQUESTS // 2:
                self._inboundPaused = False
                self._responder.resumeProducing()
            response = rpc_pb2.LeaseKeepAliveResponse(ID=request.ID)
            self._headers.fill(response.header)
            self._busy = True
            d = self._lessor.renew(request.ID)
            d.addCallbacks(self._renewed, self._failed, callbackArgs=(response,),
                           errbackArgs=(response,))

    def _renewed(self, ttl, response):
        self._busy = False
        if self._closed:
            return
        response.TTL = ttl
        self._responder.sendMessage(response)
        self._pump()

    def _failed(self, failure, response):
        self._busy = False
        if self._closed:
            return
        if failure.check(ErrLeaseNotFound):
            return self._renewed(0, response)
        if failure.check(EtcdError):
            self._finish(failure.value)
            return
        self.log.failure("lease keep-alive", failure)
        self._finish(EtcdError(str(failure.value)))
