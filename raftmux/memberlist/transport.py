# -*- test-case-name: raftmux.test.test_memberlist_service -*-
"""
How a ``Memberlist`` reaches its peers: ``IMemberlistTransport`` (packets
to addresses, streams to addresses, both directions), and
``UDPTCPTransport``, memberlist's own ``NetTransport`` (UDP packets and TCP
streams on one port number), with which a Go memberlist node is a peer.

The interface is shaped so ckit's HTTP/2 transport fits with a small
adapter: ``raftmux.gossip.GossipTransport``'s ``writeTo(data, address)`` is
``writeTo``; its ``onPacket(data, fromAddress, timestamp)`` callback calls
``receiver.packetReceived``; its ``onStream(stream)`` callback attaches
``receiver.streamProtocol(peer)`` with ``stream.attach``; ``dialTimeout(address,
timeout)`` followed by ``stream.attach(protocol)`` is ``connectStream``.
"""

import socket

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.logger import Logger
from zope.interface import Interface, implementer

from raftmux.memberlist.messages import joinHostPort, splitHostPort

#: Go's udpRecvBufSize: the socket receive buffer asked for
UDP_RECV_BUF_SIZE = 2 * 1024 * 1024


class IPacketReceiver(Interface):
    """What a transport delivers to (the ``Memberlist`` service)."""

    def packetReceived(data, fromAddress, timestamp):
        """One packet from ``fromAddress`` (``host:port``) at ``timestamp`` (reactor time)."""

    def streamProtocol(peerAddress):
        """A protocol for a stream a peer opened; the transport connects it."""


class IMemberlistTransport(Interface):
    def start(receiver):
        """
        Listen and deliver packets and streams to ``receiver``
        (``IPacketReceiver``).  A Deferred firing with the bound
        ``(host, port)``.
        """

    def finalAdvertiseAddr(ip, port):
        """``(ip, port)`` to advertise given the configured ones ("" / 0 = choose)."""

    def writeTo(data, address):
        """Send one packet to ``address`` (``host:port``).  Never raises."""

    def connectStream(address, timeout, protocol):
        """Open a stream to ``address``; a Deferred firing with ``protocol`` once connected."""

    def stop():
        """Stop listening.  A Deferred."""


class _UDP(DatagramProtocol):
    log = Logger()

    def __init__(self, owner):
        self.owner = owner

    def datagramReceived(self, data, addr):
        self.owner.datagramReceived(data, addr)


class _StreamFactory(Factory):
    noisy = False

    def __init__(self, owner):
        self.owner = owner

    def buildProtocol(self, addr):
        return self.owner.streamProtocol(joinHostPort(addr.host, addr.port))


def privateAddress():
    """An address of this host to advertise when bound to all interfaces."""
    for family, probe in ((socket.AF_INET, ("10.255.255.255", 1)),):
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.connect(probe)
            return s.getsockname()[0]
        except OSError:
            pass
        finally:
            s.close()
    return "127.0.0.1"


@implementer(IMemberlistTransport)
class UDPTCPTransport:
    """
    memberlist's NetTransport: a TCP listener and a UDP socket on the same
    port (with port 0, TCP picks it and UDP follows, retried up to 10 times
    as Go does when that port is taken for UDP).
    """

    log = Logger()

    def __init__(self, reactor, bindAddr="0.0.0.0", bindPort=7946):
        self.reactor = reactor
        self.bindAddr = bindAddr
        self.bindPort = bindPort
        self._receiver = None
        self._tcp = None
        self._udp = None

    def start(self, receiver):
        self._receiver = receiver
        tries = 10 if self.bindPort == 0 else 1
        for attempt in range(tries):
            tcp = self.reactor.listenTCP(self.bindPort, _StreamFactory(receiver),
                                         interface=self.bindAddr)
            port = tcp.getHost().port
            try:
                udp = self.reactor.listenUDP(port, _UDP(self), interface=self.bindAddr,
                                             maxPacketSize=65536)
            except CannotListenError:
                tcp.stopListening()
                if attempt == tries - 1:
                    return defer.fail()
                continue
            self._tcp, self._udp = tcp, udp
            self._growReceiveBuffer(udp)
            return defer.succeed((self.bindAddr, port))

    def _growReceiveBuffer(self, udp):
        size = UDP_RECV_BUF_SIZE
        while size > 0:
            try:
                udp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                return
            except (OSError, AttributeError):
                size //= 2

    def finalAdvertiseAddr(self, ip, port):
        if ip:
            return ip, port
        host = self.bindAddr
        if host in ("0.0.0.0", "::", ""):
            host = privateAddress()
        return host, self._tcp.getHost().port if self._tcp is not None else port

    def datagramReceived(self, data, addr):
        if not data or self._receiver is None:
            return
        self._receiver.packetReceived(data, joinHostPort(addr[0], addr[1]),
                                      self.reactor.seconds())

    def writeTo(self, data, address):
        if self._udp is None:
            return
        try:
            host, port = splitHostPort(address)
            self._udp.write(data, (host, port))
        except Exception as e:
            self.log.debug("memberlist: UDP send to {address} failed: {e}", address=address, e=e)

    def connectStream(self, address, timeout, protocol):
        try:
            host, port = splitHostPort(address)
        except ValueError as e:
            return defer.fail(e)
        endpointType = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        endpoint = endpointType(self.reactor, host, port, timeout=max(timeout, 0.001))
        return connectProtocol(endpoint, protocol)

    def stop(self):
        waits = []
        for port in (self._tcp, self._udp):
            if port is not None:
                waits.append(defer.maybeDeferred(port.stopListening))
        self._tcp = self._udp = None
        self._receiver = None
        return defer.gatherResults(waits).addCallback(lambda _: None)
