# -*- test-case-name: raftmux.test.test_node_routes -*-
"""
Who may speak which protocol on a node's listening URLs (issue 18).

Peer protocols (rafthttp, the muxado sessions between members, gossip) are
for peers only.  Each listening URL is one of three kinds:

* ``CLIENT_ONLY``: in ``--listen-client-urls`` only: the client API, never a
  peer protocol;
* ``PEER_ONLY``: in ``--listen-peer-urls`` only: everything (peers also
  forward client requests to the leader over it).  As etcd's peer port, it
  is as open as its TLS settings make it: plain, anyone reaches it;
* ``SHARED``: in both (the one-port layout).  Plain, it is as open as a
  plain peer port.  With TLS, a connection is a peer's only if it presents
  a client certificate verified against the peer CA whose extended key
  usage includes ``serverAuth`` (a member's peer certificate serves as well
  as dials); every other connection, with or without a certificate, is a
  client's and reaches only the client routes.  ``IdentityRouter`` makes
  that choice once per connection, after the TLS handshake.
"""

from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.internet.interfaces import IHandshakeListener, IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["CLIENT_ONLY", "PEER_ONLY", "SHARED", "IdentityRouter", "isPeerCertificate",
           "listenerKind", "peersAreVerified"]

CLIENT_ONLY = "client"
PEER_ONLY = "peer"
SHARED = "shared"


def listenerKind(config, url):
    """``CLIENT_ONLY``, ``PEER_ONLY`` or ``SHARED`` for one of ``config.listenURLs``."""
    peer = url in config.listenPeerURLs
    client = url in config.listenClientURLs
    if peer and client:
        return SHARED
    if peer:
        return PEER_ONLY
    if client:
        return CLIENT_ONLY
    raise ValueError("%s is not one of the listen URLs" % (url,))


def peersAreVerified(config):
    """
    Has everything that reaches the peer routes proved a peer identity?
    True when every peer URL is https and verifies client certificates
    (``--peer-client-cert-auth``, or a shared URL, where the peer routes
    need a peer certificate), and every member's peer URL is https (the
    sessions we dial carry requests from a server whose certificate we
    checked).  Only then may a request's ``X-PeerURLs`` register a remote.
    """
    def https(url):
        return urlsplit(url).scheme == "https"
    for url in config.listenPeerURLs:
        if not https(url):
            return False
        if url not in config.listenClientURLs and not config.peerTLS.clientCertAuth:
            return False
    return all(https(u) for urls in config.initialCluster.values() for u in urls)


def isPeerCertificate(certificate):
    """
    Does a verified client certificate (``cryptography``) name a member?
    A member's peer certificate is used to serve and to dial, so its
    extended key usage includes ``serverAuth`` (a certificate without the
    extension may be used for anything, as X.509 says); an operator's
    client certificate has only ``clientAuth``.
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.SERVER_AUTH in usage


def _isPeerTransport(transport):
    get = getattr(transport, "getPeerCertificate", None)
    certificate = get() if get is not None else None
    return certificate is not None and isPeerCertificate(certificate.to_cryptography())


@implementer(IProtocolNegotiationFactory)
class IdentityRouter(Factory):
    """
    The protocol factory inside TLS on a shared port: once the handshake
    has completed, a peer's connection (``isPeer(transport)``) goes to
    ``peerFactory``, any other to ``clientFactory``.  As the sniffer does,
    it hands the transport over and leaves the data path (the TLS
    transport's ``wrappedProtocol`` is rebound).  ALPN tokens offered are
    the peer factory's (the superset); a client that negotiated a peer
    token is refused by the client routes.  Connections still in their
    handshake when the router stops are aborted (as a sniffer aborts those
    it is still sniffing), and none is handed over once it has stopped.
    """

    noisy = False

    def __init__(self, peerFactory, clientFactory, isPeer=_isPeerTransport):
        self.peerFactory = peerFactory
        self.clientFactory = clientFactory
        self.isPeer = isPeer
        self.waiting = set()

    def buildProtocol(self, addr):
        return _IdentityGate(self, addr)

    def acceptableProtocols(self):
        if IProtocolNegotiationFactory.providedBy(self.peerFactory):
            return self.peerFactory.acceptableProtocols()
        return []

    def doStart(self):
        self.peerFactory.doStart()
        self.clientFactory.doStart()
        Factory.doStart(self)  # type: ignore[arg-type]

    def doStop(self):
        Factory.doStop(self)  # type: ignore[arg-type]
        self.peerFactory.doStop()
        self.clientFactory.doStop()

    def stopFactory(self):
        for gate in list(self.waiting):
            gate.abort()


@implementer(IHandshakeListener)
class _IdentityGate(Protocol):
    """One connection until its TLS handshake says whose it is."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    log = Logger()

    def __init__(self, router, addr):
        self.router = router
        self.addr = addr
        self.buffered = []
        self.proto = None

    def connectionMade(self):
        self.router.waiting.add(self)

    def abort(self):
        self.router.waiting.discard(self)
        self.transport.abortConnection()

    def handshakeCompleted(self):
        router = self.router
        router.waiting.discard(self)
        if not router.numPorts:
            self.transport.abortConnection()
            return
        peer = router.isPeer(self.transport)
        factory = router.peerFactory if peer else router.clientFactory
        proto = factory.buildProtocol(self.addr)
        if proto is None:
            self.transport.abortConnection()
            return
        self.proto = proto
        transport = self.transport
        if getattr(transport, "wrappedProtocol", None) is self:
            transport.wrappedProtocol = proto
        proto.makeConnection(transport)
        if IHandshakeListener.providedBy(proto):
            proto.handshakeCompleted()
        buffered, self.buffered = self.buffered, []
        for data in buffered:
            proto.dataReceived(data)

    def dataReceived(self, data):
        # TLS delivers no application data before the handshake completes;
        # should a transport do so, keep it for the chosen protocol.
        if self.proto is not None:
            self.proto.dataReceived(data)
        else:
            self.buffered.append(data)

    def connectionLost(self, reason=connectionDone):
        self.router.waiting.discard(self)
        proto, self.proto = self.proto, None
        if proto is not None:
            proto.connectionLost(reason)
