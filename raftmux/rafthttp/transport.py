# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
``Transport``: etcd's rafthttp ``Transport`` in Twisted form (spec 5, 6).

Outgoing messages go to peers (streams, else the pipeline) or remotes
(pipeline only); incoming ones reach the ``IRaft`` from the Resources of
``resource()`` and from the stream readers.  Everything time-based uses the
``reactor`` given (a ``MemoryReactorClock`` in tests), and every request
goes through ``agent`` (by default an ``Agent`` with a persistent pool; a
node may pass one whose endpoint factory runs HTTP over muxado streams).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent, IRequest
from twisted.web.resource import IResource
from zope.interface import implementer

from raftmux.rafthttp.codec import READ_BYTES_LIMIT
from raftmux.rafthttp.interfaces import IRaft, ITransporter
from raftmux.rafthttp.metrics import Metrics
from raftmux.rafthttp.peer import Peer, Remote
from raftmux.rafthttp.server import RootResource
from raftmux.rafthttp.stream import DIAL_RETRY_INTERVAL
from raftmux.rafthttp.urlpick import normalizeURLs
from raftmux.raftpb import Message
from raftmux.tls.names import peerCertificate

__all__ = ["Transport", "PeerNotFound", "TransportStopped"]


def _hasCertificate(request):
    return peerCertificate(request) is not None


class PeerNotFound(KeyError):
    """No peer with that ID (etcd: ``member not found``)."""


class TransportStopped(RuntimeError):
    """The Transport was stopped."""


@implementer(ITransporter)
class Transport:
    """
    ``Transport(id, clusterID, urls, raft)``: member ``id`` of cluster
    ``clusterID`` (ints), advertising peer ``urls``, delivering to ``raft``
    (an ``IRaft``).

    Options: ``reactor``; ``agent`` (else an ``Agent`` on a persistent
    ``HTTPConnectionPool`` with ``dialTimeout``); ``registry`` (a
    prometheus ``CollectorRegistry``, else a private one); ``snapshotDir``
    (where received snapshot databases go; None drops them after counting);
    ``dialRetryInterval`` (0.1 s); ``probing`` (run the prober);
    ``maxMessageSize`` (per decoded message); ``onMemberRemoved`` (called
    with a peer ID on a 410 stream dial or a 403 POST, etcd's ``ErrorC``);
    ``authenticate(request)``: did the sender of this request prove a peer
    identity?  Only then do its ``X-Server-From`` and ``X-PeerURLs`` make
    it a remote (by default: it presented a verified client certificate).
    """

    log = Logger()

    def __init__(self, id: int, clusterID: int, urls: Sequence[str], raft: IRaft,
                 reactor: Any = None, agent: IAgent | None = None,
                 registry: CollectorRegistry | None = None, snapshotDir: str | None = None,
                 dialTimeout: float = 2.0, dialRetryInterval: float = DIAL_RETRY_INTERVAL,
                 probing: bool = True, maxMessageSize: int = READ_BYTES_LIMIT,
                 onMemberRemoved: Callable[[int], object] | None = None,
                 authenticate: Callable[[IRequest], bool] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        IRaft(raft)  # fails early for a raft that declares nothing
        self.id = id
        self.clusterID = clusterID
        self.idText = b"%x" % (id,)
        self.clusterIDText = b"%x" % (clusterID,)
        self.urls = normalizeURLs(urls) if urls else []
        self.raft = raft
        self.reactor = reactor
        self.pool = None
        if agent is None:
            self.pool = HTTPConnectionPool(reactor, persistent=True)
            self.pool.maxPersistentPerHost = 8
            agent = Agent(reactor, connectTimeout=dialTimeout, pool=self.pool)
        self.agent = agent
        self.metrics = Metrics(registry)
        self.snapshotDir = snapshotDir
        self.dialRetryInterval = dialRetryInterval
        self.probing = probing
        self.maxMessageSize = maxMessageSize
        self.onMemberRemoved = onMemberRemoved
        self.authenticate = authenticate if authenticate is not None else _hasCertificate
        self.cooperator = Cooperator(scheduler=lambda f: reactor.callLater(0, f),
                                     started=True)
        self._peers: dict[int, Peer] = {}
        self._remotes: dict[int, Remote] = {}
        self._stopped = False
        self._resource: IResource | None = None

    # Server side

    def resource(self) -> IResource:
        """The IResource tree: ``/raft`` and everything below it."""
        if self._resource is None:
            self._resource = RootResource(self)
        return self._resource

    # Sending

    def send(self, messages: Iterable[Message]) -> None:
        """Route each message (spec 5); a message with ``to == 0`` is skipped."""
        peers = self._peers
        for m in messages:
            to = m.to
            if not to:
                continue
            peer = peers.get(to)
            if peer is not None:
                peer.send(m)
                continue
            remote = self._remotes.get(to)
            if remote is not None:
                remote.send(m)
                continue
            self.log.debug("ignored message type {type} to unknown peer {peer:x}",
                           type=m.type, peer=to)

    def sendSnapshot(self, message: Message, databaseFile: str | None) -> Deferred[bool]:
        """
        POST ``message`` (a MsgSnap) and the database from the binary file
        ``databaseFile`` to ``/raft/snapshot``.  A Deferred firing True or
        False; fails with ``PeerNotFound`` for an unknown peer.
        """
        peer = self._peers.get(message.to)
        if peer is None:
            return fail(PeerNotFound(message.to))
        return peer.sendSnapshot(message, databaseFile)

    # Membership

    def addRemote(self, id: int, urls: Sequence[str]) -> None:
        """A pipeline-only remote (ignored after stop or for a known ID)."""
        if self._stopped or id in self._peers or id in self._remotes or id == self.id:
            return
        self._remotes[id] = Remote(self, id, urls)
        self.log.info("added remote peer {peer:x} {urls}", peer=id, urls=urls)

    def addPeer(self, id: int, urls: Sequence[str]) -> None:
        """Start talking to member ``id`` (a duplicate is ignored)."""
        if self._stopped:
            raise TransportStopped("addPeer after stop")
        if id in self._peers:
            return
        peer = self._peers[id] = Peer(self, id, urls)
        peer.start()
        self.log.info("added peer {peer:x} {urls}", peer=id, urls=urls)

    def removePeer(self, id: int) -> None:
        """Stop talking to member ``id``; ``PeerNotFound`` if unknown."""
        peer = self._peers.pop(id, None)
        if peer is None:
            raise PeerNotFound(id)
        peer.stop()
        self.log.info("removed peer {peer:x}", peer=id)

    def removeAllPeers(self) -> None:
        for id in list(self._peers):
            self.removePeer(id)

    def updatePeer(self, id: int, urls: Sequence[str]) -> None:
        """New URLs for ``id`` (an unknown ID is ignored)."""
        peer = self._peers.get(id)
        if peer is not None:
            peer.update(urls)
            self.log.info("updated peer {peer:x} {urls}", peer=id, urls=urls)

    # Status

    def hasPeer(self, id: int) -> bool:
        return id in self._peers

    def peer(self, id: int) -> Peer | None:
        """The ``Peer`` for member ``id``, or None (remotes are not peers)."""
        return self._peers.get(id)

    def remote(self, id: int) -> Remote | None:
        """The ``Remote`` for ``id`` (a member we only answer), or None."""
        return self._remotes.get(id)

    def peerIDs(self) -> list[int]:
        """The IDs of the peers (not remotes), sorted."""
        return sorted(self._peers)

    def activeSince(self, id: int) -> float | None:
        """When ``id`` became active (reactor seconds), or None."""
        peer = self._peers.get(id)
        return None if peer is None else peer.status.since

    def activePeers(self) -> int:
        return sum(1 for p in self._peers.values() if p.status.since is not None)

    def pause(self) -> None:
        """Drop outgoing messages and discard incoming stream messages."""
        for p in list(self._peers.values()) + list(self._remotes.values()):
            p.paused = True

    def resume(self) -> None:
        for p in list(self._peers.values()) + list(self._remotes.values()):
            p.paused = False

    def cutPeer(self, id: int) -> None:
        """Pause one peer (a test helper, as in etcd)."""
        for table in (self._peers, self._remotes):
            if id in table:
                table[id].paused = True

    def mendPeer(self, id: int) -> None:
        for table in (self._peers, self._remotes):
            if id in table:
                table[id].paused = False

    def stop(self) -> Deferred[None]:
        """
        Stop every peer and remote and close idle pooled connections.
        Returns a Deferred that fires once the pool's connections closed.
        """
        if self._stopped:
            return succeed(None)
        self._stopped = True
        for remote in self._remotes.values():
            remote.stop()
        for peer in self._peers.values():
            peer.stop()
        self._remotes = {}
        self._peers = {}
        self.cooperator.stop()
        if self.pool is not None:
            return self.pool.closeCachedConnections()
        return succeed(None)

    # Reports from the parts (the Resources, readers, pipelines, senders)

    def reportReceived(self, peerID: int, size: int) -> None:
        """``size`` bytes of raft messages arrived from ``peerID``."""
        self.metrics.receivedBytes.labels("%x" % (peerID,)).inc(size)

    def reportReceiveFailure(self, sender: bytes | None) -> None:
        """A message from ``sender`` (its ``X-Server-From``, bytes or None) was refused."""
        label = sender.decode("latin-1") if isinstance(sender, bytes) else "unknown"
        self.metrics.receivedFailures.labels(label[:16]).inc()

    def noticeRemoved(self, peerID: int) -> None:
        """
        ``peerID`` says this member was removed from the cluster (a 410 to
        a stream dial, a 403 to a POST: etcd's ``ErrorC``).
        """
        if self.onMemberRemoved is not None:
            self.onMemberRemoved(peerID)
