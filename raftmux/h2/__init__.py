"""
One HTTP/2 layer for raftmux, on ``h2``: a server and client shell (h2
does the protocol; the shell does Twisted), and ``H2Agent``, a
``twisted.web.iweb.IAgent`` over HTTP/2.  See ``docs/h2.md``.

Server: an ``IH2Router`` maps each request to an ``IH2HandlerFactory``,
which builds the stream and its ``IH2StreamHandler``::

    factory = H2ServerFactory(router, H2Config(idleTimeout=300))
    endpoint.listen(factory)        # h2c prior knowledge; ALPN h2 inside TLS

Client::

    agent = H2Agent(reactor)
    response = yield agent.request(b"GET", b"https://example.com/")
    treq.client.HTTPClient(H2Agent(reactor))   # treq, unchanged
"""

from raftmux.h2.agent import H2Agent, H2Response, ResponseTimeout
from raftmux.h2.client import H2ClientProtocol
from raftmux.h2.config import H2Config
from raftmux.h2.connection import H2Protocol
from raftmux.h2.errors import (
    BodyTooLarge,
    ConnectionGoneAway,
    NotHTTP2,
    NotReplayable,
    StreamReset,
)
from raftmux.h2.interfaces import (
    IH2ConnectionListener,
    IH2HandlerFactory,
    IH2Request,
    IH2Router,
    IH2StreamHandler,
)
from raftmux.h2.pool import ALPN_PROTOCOLS, H2ConnectionPool, Origin, withALPN
from raftmux.h2.server import H2ServerFactory, H2ServerProtocol, HandlerFactory, StatusResponse
from raftmux.h2.stream import H2Request, H2Stream, statusOf

__all__ = [
    "ALPN_PROTOCOLS",
    "BodyTooLarge",
    "ConnectionGoneAway",
    "H2Agent",
    "H2ClientProtocol",
    "H2Config",
    "H2ConnectionPool",
    "H2Protocol",
    "H2Request",
    "H2Response",
    "H2ServerFactory",
    "H2ServerProtocol",
    "H2Stream",
    "HandlerFactory",
    "IH2ConnectionListener",
    "IH2HandlerFactory",
    "IH2Request",
    "IH2Router",
    "IH2StreamHandler",
    "NotHTTP2",
    "NotReplayable",
    "Origin",
    "ResponseTimeout",
    "StatusResponse",
    "StreamReset",
    "statusOf",
    "withALPN",
]
