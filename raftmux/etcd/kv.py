# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
etcd's KV service (``etcdserver/api/v3rpc/key.go``,
``etcdserver/v3_server.go``).

Requests are checked as etcd's gRPC layer checks them
(L{raftmux.mvcc.validate}) before anything is proposed.  A Range is read
from the local key space: a linearizable one (the default) after the
node's read index, a serializable one at once.  Put, DeleteRange, Compact
and a Txn that writes go through raft; a Txn whose branches only read is
answered locally like a Range (linearizable unless every range in it is
serializable).
"""

from raftmux.etcd.deferred import deferredMethod
from raftmux.mvcc import validate

__all__ = ["KVService"]


class KVService:
    """``etcdserverpb.KV``; each rpc takes etcd's request and returns a Deferred."""

    def __init__(self, node, proposer, headers, guard, maxTxnOps=validate.DEFAULT_MAX_TXN_OPS):
        self._node = node
        self._proposer = proposer
        self._headers = headers
        self._guard = guard
        self.maxTxnOps = maxTxnOps

    @deferredMethod
    async def Range(self, request):
        self._guard.check(request)
        validate.checkRangeRequest(request)
        if not request.serializable:
            await self._node.readIndex()
        response = self._node.keySpace.range(request)
        self._headers.fill(response.header)
        return response

    @deferredMethod
    async def Put(self, request):
        self._guard.check(request)
        validate.checkPutRequest(request)
        applied = await self._proposer.propose(put=request)
        return self._answer(applied.response)

    @deferredMethod
    async def DeleteRange(self, request):
        self._guard.check(request)
        validate.checkDeleteRequest(request)
        applied = await self._proposer.propose(delete_range=request)
        return self._answer(applied.response)

    @deferredMethod
    async def Txn(self, request):
        self._guard.check(request)
        validate.checkTxn(request, self.maxTxnOps)
        if validate.isTxnReadonly(request):
            if not validate.isTxnSerializable(request):
                await self._node.readIndex()
            response = self._node.keySpace.txn(request).response
        else:
            response = (await self._proposer.propose(txn=request)).response
        return self._answer(response)

    @deferredMethod
    async def Compact(self, request):
        self._guard.check(request)
        applied = await self._proposer.propose(compaction=request)
        response = applied.response
        response.header.revision = self._node.keySpace.revision
        return self._answer(response)

    def _answer(self, response):
        self._headers.fill(response.header)
        return response
