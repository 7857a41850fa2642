# -*- test-case-name: raftmux.test.test_gossip -*-
"""
grafana/ckit's ``gossiphttp`` gossip transport over HTTP/2, client and
server, for Twisted: ``/api/v1/ckit/transport/message`` carries packets,
``/api/v1/ckit/transport/stream`` carries bidirectional streams.  See
``docs/gossip.md``.

    gossip = GossipTransport(reactor, "10.0.0.1:7946", onPacket, onStream)
    endpoint.listen(gossip.serverFactory())   # or route h2Factory()/http1Resource()
    gossip.writeTo(b"packet", "10.0.0.2:7946")
    stream = yield gossip.dialTimeout("10.0.0.2:7946", 2.0)
    stream.attach(myProtocol)
"""

from raftmux.gossip.client import GossipClient
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
from raftmux.gossip.metrics import GossipMetrics
from raftmux.gossip.server import (
    CONTENT_TYPE,
    MESSAGE_PATH,
    STREAM_PATH,
    CkitHTTP1Resource,
    GossipRouter,
)
from raftmux.gossip.stream import GossipStream
from raftmux.gossip.transport import MAX_BATCH_BYTES, MAX_BATCH_PACKETS, GossipTransport

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_FRAME_SIZE",
    "MESSAGE_PATH",
    "STREAM_PATH",
    "BadMagic",
    "CkitHTTP1Resource",
    "ConnectionGoneAway",
    "FrameDecoder",
    "FrameTooLarge",
    "FramingError",
    "GossipClient",
    "GossipMetrics",
    "GossipRouter",
    "GossipStream",
    "GossipTransport",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_PACKETS",
    "NotHTTP2",
    "StreamRejected",
    "StreamReset",
    "TruncatedFrame",
    "decodeAll",
    "encodeFrame",
    "frameHeader",
]
