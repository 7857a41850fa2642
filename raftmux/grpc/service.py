# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
``Service``: a protobuf service's rpcs bound to a Python implementation,
read from descriptors (``raftmux.grpcpb.methods``), never from generated
stubs.

The implementation has one method per rpc, named as the rpc, called
according to the rpc's streaming flags:

* unary (``rpc Check(Req) returns (Resp)``): ``Check(request, call)``
  returns the response, a Deferred of it, or is an ``async def``;
* server streaming: ``Watch(request, call)`` sends with
  ``call.sendMessage(m)`` (or ``await call.send(m)``, which waits while the
  stream is full); the rpc ends OK when its result (None, a Deferred, a
  coroutine) completes, or with ``call.finish(error)`` earlier;
* client streaming / bidirectional: ``Method(call)``: reads with ``await
  call.receive()`` (None after the last) or ``async for m in call``;
  returns the response (client streaming) or sends as above
  (bidirectional).

Any of them may instead return a *receiver* (an object with
``receive(message)``, ``requestsDone()`` and ``cancel()``, as etcd's
``IStreamHandler``): messages are then pushed to it, and it ends the rpc
itself with ``call.finish``.  Raise (or fail with) ``GRPCError`` for a
status other than OK.
"""

from raftmux import grpcpb

__all__ = ["Service"]


class Service:
    """
    ``descriptor`` (a protobuf ``ServiceDescriptor``) served by
    ``implementation``.  ``modules`` are the generated modules holding the
    service's messages when they are not raftmux's own (see
    ``raftmux.grpcpb.methods``).  ``methods`` (a list of
    ``raftmux.grpcpb.Method``) may be given instead of a descriptor, with
    ``name`` the service's full name.

    ``handlers`` maps each rpc's path (bytes, as in ``:path``) to ``(Method, callable or None)``; an
    rpc the implementation lacks answers UNIMPLEMENTED.
    """

    def __init__(self, descriptor, implementation, modules=(), methods=None, name=None):
        if methods is None:
            methods = grpcpb.methods(descriptor, modules)
            name = descriptor.full_name
        self.name = name
        self.implementation = implementation
        self.handlers = {
            m.path.encode("ascii"): (m, getattr(implementation, m.name, None)) for m in methods}

    @classmethod
    def fromMethods(cls, name, methods, implementation):
        """A service from ``Method``s (e.g. some of ``raftmux.etcdpb.METHODS``)."""
        return cls(None, implementation, methods=list(methods), name=name)

    def __repr__(self):
        return "<Service %s (%d rpcs)>" % (self.name, len(self.handlers))
