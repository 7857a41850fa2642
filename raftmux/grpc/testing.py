# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
A ``GRPCClient`` wired to a ``GRPCServer`` in memory, for deterministic
tests: each connection the client's pool dials is a pair of
``twisted.test.iosim`` transports; ``flush()`` moves bytes both ways and
runs what is due on the clock until nothing moves.  No sockets, no real
time: deadlines are passed with ``clock.advance``.
"""

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.test import iosim
from zope.interface import implementer

from raftmux.grpc.client import GRPCClient
from raftmux.h2 import H2ConnectionPool

__all__ = ["MemoryGRPC"]


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, memory):
        self._memory = memory

    def connect(self, factory):
        return succeed(self._memory.connect(factory))


class MemoryGRPC:
    """
    ``server`` (a ``GRPCServer``) and a ``client`` (a ``GRPCClient``) to it,
    connected in memory.  ``clock`` drives both (a ``Clock`` by default);
    ``serverConfig``/``clientConfig`` are their ``H2Config``s.
    ``connections`` lists ``(clientProtocol, serverProtocol)`` pairs.
    """

    def __init__(self, server, clock=None, serverConfig=None, clientConfig=None,
                 maxReceiveMessageSize=None):
        self.server = server
        self.clock = clock if clock is not None else Clock()
        self.serverFactory = server.serverFactory(serverConfig, clock=self.clock)
        self.pool = H2ConnectionPool(self.clock, clientConfig,
                                     endpointFactory=lambda origin: _Endpoint(self))
        options = {}
        if maxReceiveMessageSize is not None:
            options["maxReceiveMessageSize"] = maxReceiveMessageSize
        self.client = GRPCClient(self.clock, "http://grpc.test", pool=self.pool, **options)
        self.connections = []
        self._pumps = []

    def connect(self, factory):
        """(the pool's endpoint) A new in-memory connection; the client protocol."""
        serverProtocol = self.serverFactory.buildProtocol(None)
        clientProtocol = factory.buildProtocol(None)
        pump = iosim.connect(serverProtocol, iosim.FakeTransport(serverProtocol, True),
                             clientProtocol, iosim.FakeTransport(clientProtocol, False),
                             greet=False, clock=self.clock)
        self._pumps.append(pump)
        self.connections.append((clientProtocol, serverProtocol))
        return clientProtocol

    def flush(self):
        """Move bytes and run due calls until nothing moves (bounded)."""
        for _ in range(1000):
            self.clock.advance(0)
            moved = [pump.pump(advanceClock=False) for pump in list(self._pumps)]
            now = self.clock.seconds()
            if not any(moved) and not any(c.getTime() <= now
                                          for c in self.clock.getDelayedCalls()):
                return
        raise AssertionError("MemoryGRPC.flush: still moving after 1000 rounds")

    def advance(self, seconds):
        """Let ``seconds`` pass on the clock, then flush."""
        self.clock.advance(seconds)
        self.flush()
