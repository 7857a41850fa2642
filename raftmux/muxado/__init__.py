"""
muxado v2 stream multiplexing for Twisted, byte-compatible with Go's
``inconshreveable/muxado`` (master) and ngrok's ``muxado/v2``.

Layers: ``frames`` (the wire codec) and ``connection`` (the session state
machine) are sans-IO; ``session``, ``stream``, ``factory`` and ``endpoint``
are the Twisted shell.
"""

from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.endpoint import SessionEndpoint
from raftmux.muxado.errors import (
    ErrorCode,
    MuxadoError,
    ProtocolError,
    SessionClosed,
    StreamRefused,
    StreamReset,
    StreamsExhausted,
)
from raftmux.muxado.factory import MuxadoClientFactory, MuxadoServerFactory, connectSession
from raftmux.muxado.session import MuxadoSession
from raftmux.muxado.stream import MuxadoStream

__all__ = [
    "ErrorCode",
    "MuxadoClientFactory",
    "MuxadoConfig",
    "MuxadoError",
    "MuxadoServerFactory",
    "MuxadoSession",
    "MuxadoStream",
    "ProtocolError",
    "SessionClosed",
    "SessionEndpoint",
    "StreamRefused",
    "StreamReset",
    "StreamsExhausted",
    "connectSession",
]
