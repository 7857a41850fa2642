"""
Helpers for tests of code built on ``RaftNode``: in-process clusters on
loopback ports chosen by the kernel (``127.0.0.1:0``), bound before the
nodes exist so their URLs (and so their member IDs) are known.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory

from raftmux.node.config import NodeConfig
from raftmux.node.service import RaftNode

__all__ = ["LateFactory", "bindPorts", "makeCluster"]

# The port each node was started on by ``startNode``, for ``stopNode``.
_portOf: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class LateFactory(Factory):
    """A factory whose real factory is given after the port is listening."""

    noisy = False
    target = None

    def buildProtocol(self, addr):
        if self.target is None:
            return None
        return self.target.buildProtocol(addr)

    def doStart(self):
        pass

    def doStop(self):
        if self.target is not None:
            self.target.doStop()


async def bindPorts(reactor: Any, n: int) -> list[Any]:
    """``n`` listening ports on 127.0.0.1:0, each with a ``LateFactory``."""
    ports = []
    for _ in range(n):
        factory = LateFactory()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        port.lateFactory = factory
        ports.append(port)
    return ports


def urlOf(port: Any, scheme: str = "http") -> str:
    return "%s://127.0.0.1:%d" % (scheme, port.getHost().port)


async def makeCluster(reactor: Any, directory: str, n: int = 3, token: str = "test",
                      scheme: str = "http", flags: Callable[[int], dict[str, Any]] | None = None,
                      **options: Any) -> tuple[list[RaftNode], list[Any]]:
    """
    ``n`` nodes (not started) named n1..nN, each with one port for peers and
    clients, data under ``directory``.  Returns ``(nodes, ports)``; start a
    node with ``startNode(node, port)``.  ``flags(i)`` may add flags for
    node ``i`` (e.g. its TLS files); ``scheme="https"`` makes TLS URLs.
    """
    ports = await bindPorts(reactor, n)
    cluster = ",".join("n%d=%s" % (i + 1, urlOf(p, scheme)) for i, p in enumerate(ports))
    nodes = []
    for i, port in enumerate(ports):
        url = urlOf(port, scheme)
        extra = flags(i) if flags is not None else {}
        config = NodeConfig({
            "name": "n%d" % (i + 1,), "data-dir": os.path.join(directory, "n%d" % (i + 1,)),
            "listen-peer-urls": url, "initial-advertise-peer-urls": url,
            "listen-client-urls": url, "advertise-client-urls": url,
            "initial-cluster": cluster, "initial-cluster-token": token}, **dict(options, **extra))
        nodes.append(RaftNode(config, reactor=reactor, listen=False, fsync=False))
    return nodes, ports


def startNode(node: RaftNode, port: Any) -> Deferred[Any]:
    """Serve ``node`` on ``port`` (from ``bindPorts``) and start it."""
    factory = node.portFactory(node.config.listenURLs[0])
    factory.doStart()
    port.lateFactory.target = factory
    _portOf[node] = port
    node.startService()
    return node.whenStarted()


def stopNode(node: RaftNode) -> Deferred[Any]:
    """Stop ``node``; its port stays bound (and refuses connections) for a restart."""
    port = _portOf.get(node)
    if port is not None and port.lateFactory.target is not None:
        port.lateFactory.target.doStop()
        port.lateFactory.target = None
    return defer.maybeDeferred(node.stopService)
