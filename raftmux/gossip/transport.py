# -*- test-case-name: raftmux.test.test_gossip -*-
"""
``GossipTransport``: memberlist's ``Transport`` contract as ckit's
gossiphttp implements it, Twisted-shaped.

* ``writeTo(data, address)`` never fails: the packet goes into a 1,000-entry
  queue that drops the oldest when full; one sender drains it in order,
  POSTing packets as frames to ``/message`` with a timeout per POST, no
  retries.  ckit's sender waits for each answer; ours keeps up to
  ``maxInFlight`` POSTs outstanding on the peer's one connection (1 is
  ckit's behaviour), so one slow answer does not stall the next packet.
* Batching: a ``/message`` body is zero or more frames and ckit's server
  reads them all, so when packets for one peer wait in the queue (all
  ``maxInFlight`` POSTs are out) the next POST to that peer carries the
  oldest of them, in order, up to ``maxBatchPackets`` packets and
  ``maxBatchBytes`` bytes of body (a larger packet goes alone).  A packet
  never waits for a batch to fill: with a POST slot free it goes at once.
  ``maxBatchPackets=1`` is ckit's one frame per POST.
* Packets arrive through ``onPacket(data, fromAddress, timestamp)`` where
  ``fromAddress`` is the sending connection's ``ip:port`` and ``timestamp``
  the reactor time when the request arrived.
* Peers' streams arrive through ``onStream(stream)``; ``dialTimeout`` opens
  one and fails unless the peer answers 200 within ``timeout``.
"""

import ipaddress
from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from raftmux.gossip.client import GossipClient
from raftmux.gossip.errors import StreamRejected
from raftmux.gossip.framing import DEFAULT_MAX_FRAME_SIZE, frameHeader
from raftmux.gossip.metrics import GossipMetrics
from raftmux.gossip.server import MESSAGE_PATH, STREAM_PATH, CkitHTTP1Resource, GossipRouter
from raftmux.h2 import H2Config, H2ServerFactory

#: the server's connections: keepalive finds dead peers, idle ones are closed
SERVER_CONFIG = H2Config(pingInterval=60.0, pingTimeout=20.0, idleTimeout=600.0)

QUEUE_SIZE = 1000
PACKET_TIMEOUT = 5.0
#: a batched /message body is at most this many bytes (frame headers included)
MAX_BATCH_BYTES = 64 * 1024
#: and carries at most this many packets
MAX_BATCH_PACKETS = 256


class GossipTransport:
    log = Logger()

    def __init__(self, reactor, advertiseAddress, onPacket, onStream, contextFactory=None,
                 packetTimeout=PACKET_TIMEOUT, maxInFlight=16, maxFrameSize=DEFAULT_MAX_FRAME_SIZE,
                 registry=None, queueSize=QUEUE_SIZE, endpointFactory=None, serverOptions=None,
                 maxBatchBytes=MAX_BATCH_BYTES, maxBatchPackets=MAX_BATCH_PACKETS,
                 serverConfig=None, clientConfig=None):
        self.reactor = reactor
        self.advertiseAddress = advertiseAddress
        self.onPacket = onPacket
        self.onStream = onStream
        self.packetTimeout = packetTimeout
        self.maxInFlight = maxInFlight
        self.maxFrameSize = maxFrameSize
        self.maxBatchBytes = maxBatchBytes
        self.maxBatchPackets = max(1, maxBatchPackets)
        self.metrics = GossipMetrics(registry)
        self.shutDown = False
        self.queueSize = queueSize
        self._queue = deque(maxlen=queueSize)
        self.metrics.trackTxQueue(self._queue)
        self._inFlight = {}
        self._pumping = False
        if serverConfig is None:
            serverConfig = SERVER_CONFIG.replace(**(serverOptions or {}))
        self.serverConfig = serverConfig
        self.router = GossipRouter(self, maxFrameSize)
        self.client = GossipClient(reactor, contextFactory=contextFactory,
                                   endpointFactory=endpointFactory, metrics=self.metrics,
                                   maxFrameSize=maxFrameSize, config=clientConfig)
        self._h2Factory = None
        self._serverFactory = None

    @property
    def pool(self):
        """The client side (``GossipClient``): POSTs and stream dials."""
        return self.client

    def h2Factory(self):
        """
        The HTTP/2 server factory for the ckit routes (the shell's
        ``H2ServerFactory``): for a sniffer's HTTP/2 route, or inside TLS
        with ALPN h2.  It takes HTTP/2 only.
        """
        if self._h2Factory is None:
            self._h2Factory = H2ServerFactory(self.router, self.serverConfig, clock=self.reactor)
        return self._h2Factory

    def http1Resource(self):
        """ckit's answers to HTTP/1.x (505, or 404/503): serve it at ``/api`` of a Site."""
        return CkitHTTP1Resource(self)

    def serverFactory(self):
        """
        A factory serving the ckit routes on a port of their own: a sniffer
        sending h2c (and ALPN h2) to ``h2Factory()`` and HTTP/1.x (and ALPN
        http/1.1) to a Site answering as ckit does (505).  Next to other
        services, route to ``h2Factory()`` and ``http1Resource()`` instead.
        """
        if self._serverFactory is None:
            from twisted.web.server import Site

            from raftmux.sniff import SniffingFactory, http1, http2
            site = Site(self.http1Resource(), reactor=self.reactor)
            site.log = lambda request: None
            self._serverFactory = SniffingFactory(
                [(http2(), self.h2Factory(), "h2"), (http1(), site, "http1")],
                alpn={b"h2": self.h2Factory(), b"http/1.1": site},
                clock=self.reactor, registry=self.metrics.registry, name="gossip")
        return self._serverFactory

    # -- packets out --------------------------------------------------------

    def writeTo(self, data, address):
        """Queue one packet for ``address`` (``host:port``); returns the time.  Never fails."""
        now = self.reactor.seconds()
        if not self.shutDown:
            self._queue.append((bytes(data), address))
            self._pump()
        return now

    @property
    def queuedPackets(self):
        """Packets waiting in the send queue (not yet in a POST)."""
        return len(self._queue)

    def _pump(self):
        if self._pumping:
            return
        self._pumping = True
        try:
            queue = self._queue
            while queue and len(self._inFlight) < self.maxInFlight and not self.shutDown:
                self._send(*self._takeBatch())
        finally:
            self._pumping = False

    def _takeBatch(self):
        """
        The oldest packet and, behind it, the oldest others for the same
        peer, in queue order, within the batch caps: ``(address, [data])``.
        Packets for other peers keep their places.
        """
        queue = self._queue
        data, address = queue.popleft()
        batch = [data]
        if not queue or self.maxBatchPackets == 1:
            return address, batch
        budget = self.maxBatchBytes - len(data) - (3 if len(data) <= 0xFFFF else 5)
        room = self.maxBatchPackets - 1
        if queue[0][1] == address:
            # the common case, one peer: take from the front
            while queue and room:
                data, to = queue[0]
                cost = len(data) + (3 if len(data) <= 0xFFFF else 5)
                if to != address or cost > budget:
                    break
                queue.popleft()
                batch.append(data)
                budget -= cost
                room -= 1
            if not queue or queue[0][1] == address:
                return address, batch
        kept = []
        while queue and room:
            entry = queue.popleft()
            data, to = entry
            if to != address:
                kept.append(entry)
                continue
            cost = len(data) + (3 if len(data) <= 0xFFFF else 5)
            if cost > budget:
                kept.append(entry)
                break  # taking later ones would reorder this peer's packets
            batch.append(data)
            budget -= cost
            room -= 1
        queue.extendleft(reversed(kept))
        return address, batch

    def _send(self, address, batch):
        metrics = self.metrics
        count = len(batch)
        size = 0
        parts = []
        for data in batch:
            size += len(data)
            parts.append(frameHeader(len(data)))
            parts.append(data)
        metrics.txPackets.inc(count)
        metrics.txBytes.inc(size)
        metrics.txRequests.inc()
        token = object()
        try:
            d = self.client.request(address, MESSAGE_PATH, b"".join(parts),
                                    timeout=self.packetTimeout)
        except Exception:
            d = defer.fail()
        self._inFlight[token] = d

        def answered(status):
            if status != 200:
                raise StreamRejected(status)

        def failed(f):
            metrics.txFailed.inc(count)
            self.log.debug("gossip POST of {count} packets to {address} failed: {why}",
                           count=count, address=address, why=f.getErrorMessage())

        def done(_):
            del self._inFlight[token]
            self._pump()
        d.addCallback(answered).addErrback(failed).addBoth(done)

    # -- packets and streams in ------------------------------------------------

    def packetReceived(self, data, fromAddress, timestamp):
        self.metrics.rxPackets.inc()
        self.metrics.rxBytes.inc(len(data))
        try:
            self.onPacket(data, fromAddress, timestamp)
        except Exception:
            self.log.failure("onPacket raised")

    def packetsReceived(self, packets, fromAddress, timestamp):
        """``packetReceived`` for each of ``packets``, counting them in one go."""
        if not packets:
            return
        self.metrics.rxPackets.inc(len(packets))
        self.metrics.rxBytes.inc(sum(map(len, packets)))
        onPacket = self.onPacket
        for data in packets:
            try:
                onPacket(data, fromAddress, timestamp)
            except Exception:
                self.log.failure("onPacket raised")

    def streamAccepted(self, stream):
        try:
            self.onStream(stream)
        except Exception:
            self.log.failure("onStream raised")
            stream.abortConnection()

    def dialTimeout(self, address, timeout):
        """A Deferred firing with a ``GossipStream`` to ``address``; attach a protocol to it."""
        if self.shutDown:
            return defer.fail(RuntimeError("transport is shut down"))
        return self.client.openStream(address, STREAM_PATH,
                                      timeout=timeout if timeout > 0 else None)

    # -- lifecycle -----------------------------------------------------------

    def finalAdvertiseAddr(self, ip, port):
        """ckit's checks and normalisation; returns ``(ip, port)``, raises ValueError."""
        if not ip:
            raise ValueError("no configured advertise address")
        if not port:
            raise ValueError("missing real listen port")
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError("failed to parse advertise ip %r" % (ip,))
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        ip = str(parsed)
        self.localAddress = ("[%s]:%d" if parsed.version == 6 else "%s:%d") % (ip, port)
        return ip, port

    def shutdown(self):
        """
        Answer 503 from now on, drop queued packets, wait for POSTs in flight
        (each bounded by the packet timeout), then close our client
        connections.  Accepted streams are left to their owners, as in ckit.
        """
        self.shutDown = True
        self._queue.clear()
        waits = list(self._inFlight.values())
        d = defer.DeferredList(waits, consumeErrors=True)
        d.addCallback(lambda _: self.client.closeAll())
        d.addCallback(lambda _: None)
        return d
