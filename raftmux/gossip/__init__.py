# -*- test-case-name: raftmux.test.test_gossip -*-
"""
grafana/ckit's ``gossiphttp`` gossip transport over HTTP/2, client and
server, for Twisted: ``/api/v1/ckit/transport/message`` carries packets,
``/api/v1/ckit/transport/stream`` carries bidirectional streams.  See
``docs/gossip.md``.

    gossip = GossipTransport(reactor, "10.0.0.1:7946", onPacket, onStream)
    endpoint.listen(gossip.serverFactory())
    gossip.writeTo(b"packet", "10.0.0.2:7946")
    stream = yield gossip.dialTimeout("10.0.0.2:7946", 2.0)
    stream.attach(myProtocol)
"""

from raftmux.gossip.errors import ConnectionGoneAway, NotHTTP2, StreamRejected, StreamReset
from raftmux.gossip.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    BadMagic,
    FrameDecoder,
    FrameTooLarge,
    FramingError,
    TruncatedFrame,
    decodeAll,
    encodeFrame,
    frameHeader,
)
from raftmux.gossip.h2client import H2ClientPool, H2ClientProtocol
from raftmux.gossip.h2server import (
    CONTENT_TYPE,
    MESSAGE_PATH,
    STREAM_PATH,
    GossipServerFactory,
    GossipServerProtocol,
)
from raftmux.gossip.metrics import GossipMetrics
from raftmux.gossip.stream import GossipStream
from raftmux.gossip.transport import MAX_BATCH_BYTES, MAX_BATCH_PACKETS, GossipTransport

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_FRAME_SIZE",
    "MESSAGE_PATH",
    "STREAM_PATH",
    "BadMagic",
    "ConnectionGoneAway",
    "FrameDecoder",
    "FrameTooLarge",
    "FramingError",
    "GossipMetrics",
    "GossipServerFactory",
    "GossipServerProtocol",
    "GossipStream",
    "GossipTransport",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_PACKETS",
    "H2ClientPool",
    "H2ClientProtocol",
    "NotHTTP2",
    "StreamRejected",
    "StreamReset",
    "TruncatedFrame",
    "decodeAll",
    "encodeFrame",
    "frameHeader",
]
