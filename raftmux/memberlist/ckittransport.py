# -*- test-case-name: raftmux.test.test_ckit_transport -*-
"""
``CkitTransport``: memberlist over grafana/ckit's HTTP/2 gossip transport
(``raftmux.gossip.GossipTransport``, the ``/api/v1/ckit/transport/message``
and ``/stream`` routes), as an ``IMemberlistTransport``.

It is only an adapter, using nothing but ``GossipTransport``'s public API:

* packets: ``writeTo`` is ``GossipTransport.writeTo``; its ``onPacket``
  callback feeds ``receiver.packetReceived`` (the sender's address there is
  its HTTP/2 connection's ephemeral port; memberlist answers to the
  addresses inside its messages, as over ckit).
* streams: ``connectStream`` is ``dialTimeout`` then ``stream.attach``; its
  ``onStream`` callback attaches ``receiver.streamProtocol(peer)``.
* listening: give an ``endpoint`` (an ``IStreamServerEndpoint``) and
  ``start`` listens on it with the gossip server; or give none and mount
  ``serverFactory()`` yourself (behind a ``SniffingFactory`` on a node's
  peer port, say), and ``start`` just reports ``advertiseAddress``.

``advertiseAddress`` is ``ip:port``; with port 0 the bound port is
advertised.  ``finalAdvertiseAddr`` applies ckit's checks (an IP literal,
a port).
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.gossip import GossipTransport
from raftmux.memberlist.messages import joinHostPort, splitHostPort
from raftmux.memberlist.transport import IMemberlistTransport


def _peerAddress(stream):
    """``host:port`` of the HTTP/2 connection a stream came on (ckit's "unknown" otherwise)."""
    try:
        peer = stream.getPeer()
        return joinHostPort(peer.host, peer.port)
    except Exception:
        return "unknown"


@implementer(IMemberlistTransport)
class CkitTransport:
    log = Logger()

    def __init__(self, reactor, advertiseAddress, endpoint=None, contextFactory=None,
                 **gossipOptions):
        self.reactor = reactor
        self.advertiseAddress = advertiseAddress
        self.endpoint = endpoint
        self._host, self._port = splitHostPort(advertiseAddress)
        self.gossip = GossipTransport(reactor, advertiseAddress, onPacket=self._packetReceived,
                                      onStream=self._streamAccepted,
                                      contextFactory=contextFactory, **gossipOptions)
        self._receiver = None
        self._listening = None

    def serverFactory(self):
        """The factory serving ckit's routes (h2c prior knowledge, or ALPN h2 under TLS)."""
        return self.gossip.serverFactory()

    # -- IMemberlistTransport ---------------------------------------------------------

    def start(self, receiver):
        self._receiver = receiver
        if self.endpoint is None:
            return defer.succeed((self._host, self._port))

        def listening(port):
            self._listening = port
            bound = port.getHost()
            return bound.host, bound.port
        return self.endpoint.listen(self.serverFactory()).addCallback(listening)

    def finalAdvertiseAddr(self, ip, port):
        ip = ip or self._host
        port = self._port or port
        ip, port = self.gossip.finalAdvertiseAddr(ip, port)
        self.advertiseAddress = joinHostPort(ip, port)
        return ip, port

    def writeTo(self, data, address):
        self.gossip.writeTo(data, address)

    def connectStream(self, address, timeout, protocol):
        def dialed(stream):
            stream.attach(protocol)
            return protocol
        return self.gossip.dialTimeout(address, timeout).addCallback(dialed)

    def stop(self):
        self._receiver = None
        waits = [self.gossip.shutdown()]
        if self._listening is not None:
            waits.append(defer.maybeDeferred(self._listening.stopListening))
            self._listening = None
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    # -- from the gossip transport --------------------------------------------------------

    def _packetReceived(self, data, fromAddress, timestamp):
        if self._receiver is not None:
            self._receiver.packetReceived(data, fromAddress, timestamp)

    def _streamAccepted(self, stream):
        receiver = self._receiver
        protocol = receiver.streamProtocol(_peerAddress(stream)) if receiver is not None else None
        if protocol is None:
            stream.abortConnection()
            return
        stream.attach(protocol)
