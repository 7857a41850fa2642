# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
What etcd's gRPC interceptors refuse before any service sees a request
(``etcdserver/api/v3rpc/interceptor.go``): a learner serves only
serializable ranges and Status, and no stream at all.
"""

from zope.interface import implementer

from raftmux.etcd.interfaces import IStreamHandler
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import ErrNoLeader, ErrNotSupportedForLearner

__all__ = ["Guard", "refuse"]


class Guard:
    """Checks made on every rpc of one member."""

    def __init__(self, node):
        self._node = node

    def check(self, request):
        """Raise ErrNotSupportedForLearner for what a learner may not serve."""
        if self._node.isLearner() and not _learnerMayServe(request):
            raise ErrNotSupportedForLearner()

    def streamError(self):
        """The error a new stream is refused with, or None."""
        if self._node.isLearner():
            return ErrNotSupportedForLearner()
        return None

    def requireLeader(self):
        """
        For a binding that sees etcd's ``hasleader`` metadata
        (``clientv3.WithRequireLeader``): ErrNoLeader when none is known.
        """
        if not self._node.leader():
            raise ErrNoLeader()


def _learnerMayServe(request):
    if isinstance(request, rpc_pb2.StatusRequest):
        return True
    if isinstance(request, rpc_pb2.RangeRequest):
        return request.serializable
    return False


@implementer(IStreamHandler)
class _Refused:
    """The handler of a stream that was refused as it opened."""

    def receive(self, request):
        pass

    def requestsDone(self):
        pass

    def cancel(self):
        pass


def refuse(responder, error):
    """End a new stream with ``error`` at once; the handler to give back."""
    responder.finish(error)
    return _Refused()
