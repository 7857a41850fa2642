"""
The contracts of the HTTP/2 shell: what a server's router and handler
factories provide, and what a stream handler may implement beyond a plain
protocol.
"""

from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol
from zope.interface import Attribute, Interface


class IH2StreamHandler(IProtocol, IHalfCloseableProtocol):
    """
    The protocol on one HTTP/2 stream (an ``H2Stream``, its transport).

    The body arrives through ``dataReceived``; the peer's END_STREAM through
    ``readConnectionLost``; our own END_STREAM having been sent through
    ``writeConnectionLost``; the end of the stream, whatever the cause,
    through ``connectionLost`` (a reset arrives as ``StreamReset``).
    Received bytes are credited back to the peer only once delivered, so
    ``transport.pauseProducing()`` pushes back on the peer through flow
    control.  Writes never block; a registered producer is paused while the
    send window is shut or the connection's transport is full.

    Any ``IProtocol`` can sit on a stream; these two calls are made only on
    protocols that provide this interface.
    """

    def headersReceived(headers):
        """
        The peer's opening header block, a list of ``(name, value)`` bytes
        pairs, pseudo-header fields first: the request on a server (right
        after ``makeConnection``), the final response on a client (1xx
        responses are not reported).
        """

    def trailersReceived(headers):
        """The peer's trailing header block, delivered after the body and
        before ``readConnectionLost``."""


class IH2HandlerFactory(Interface):
    """What a server's router answers a request with."""

    def buildStream(connection, streamId, request):
        """
        The ``H2Stream`` (or subclass: a framing stream) that carries this
        request; usually ``H2Stream(connection, streamId, request)``.
        """

    def buildHandler(stream):
        """
        Serve the request on ``stream`` (``stream.request`` is the parsed
        request): return an ``IProtocol`` (preferably an
        ``IH2StreamHandler``) to attach, or ``None`` when the factory answered
        already (``stream.respond``) or hands the stream to someone who
        attaches a protocol later; until then received bytes wait, uncredited.
        """


class IH2Router(Interface):
    """Maps requests to handler factories: routing is the application's."""

    def route(request):
        """
        The ``IH2HandlerFactory`` for ``request`` (an ``H2Request``: headers,
        method, path, authority, scheme, ``header(name)``), or ``None`` for a
        404.
        """


class IH2ConnectionListener(Interface):
    """What a client connection tells its pool."""

    def connectionReady(connection):
        """The connection can carry requests (TLS negotiated h2 through ALPN)."""

    def capacityChanged(connection):
        """A stream finished or the peer's stream limit changed: slots may be free."""

    def connectionGone(connection, reason):
        """The connection is closing or closed (GOAWAY, loss, idle timeout)."""


class IH2Request(Interface):
    """A request's header block, parsed once."""

    headers = Attribute("list of (name, value) bytes pairs, pseudo-header fields first")
    method = Attribute(":method (bytes)")
    path = Attribute(":path (bytes)")
    scheme = Attribute(":scheme (bytes or None)")
    authority = Attribute(":authority (bytes or None)")

    def header(name, default=None):
        """The first value of the field ``name`` (lower-case bytes)."""
