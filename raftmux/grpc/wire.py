# -*- test-case-name: raftmux.test.test_grpc_wire -*-
"""
gRPC's wire format over HTTP/2, sans-IO: length-prefixed messages,
``grpc-timeout``, ``grpc-message`` percent-encoding, custom metadata
(``-bin`` keys base64) and the status trailers.  No reactor, no h2: header
blocks are lists of ``(name, value)`` bytes pairs as the shell passes them.
"""

import base64
import binascii
import math
import struct

from raftmux.grpc.status import Code, GRPCError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE", "MessageDecoder", "encodeMessage",
    "parseTimeout", "encodeTimeout", "percentEncode", "percentDecode",
    "encodeMetadata", "decodeMetadata", "statusHeaders", "readStatus",
    "isGRPCContentType", "RESERVED_HEADERS",
]

#: grpc-go's and grpcio's default largest received message
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

_prefix = struct.Struct(">BI")
PREFIX_SIZE = 5


def encodeMessage(payload):
    """One uncompressed length-prefixed message."""
    return _prefix.pack(0, len(payload)) + payload


class MessageDecoder:
    """
    Splits a stream of DATA bytes into messages.  ``feed`` returns the
    ``(compressed, payload)`` pairs completed by the bytes given; a declared
    length above ``maxSize`` raises RESOURCE_EXHAUSTED as soon as the 5-byte
    prefix is in, before any payload is kept.  After an error the decoder
    stays dead (every later ``feed`` raises the same error); the messages
    decoded before the error in the same call are on the error's
    ``decoded``.  Only bytes that arrived are kept (``buffered``).
    """

    def __init__(self, maxSize=DEFAULT_MAX_MESSAGE_SIZE):
        self.maxSize = maxSize
        self._parts = []
        self._have = 0
        self._need = None      # payload length of the message in progress
        self._flag = 0
        self.error = None

    @property
    def buffered(self):
        """Bytes kept for a message not yet complete."""
        return self._have

    @property
    def atBoundary(self):
        """True when no partial message is pending (a clean end of stream)."""
        return self._have == 0 and self._need is None

    def feed(self, data):
        if self.error is not None:
            raise self.error
        out: list[tuple[int, bytes]] = []
        if self._have:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts = []
            self._have = 0
        pos = 0
        n = len(data)
        need = self._need
        maxSize = self.maxSize
        while True:
            if need is None:
                if n - pos < PREFIX_SIZE:
                    break
                flag, need = _prefix.unpack_from(data, pos)
                pos += PREFIX_SIZE
                if need > maxSize:
                    self._need = None
                    self._fail(GRPCError(
                        Code.RESOURCE_EXHAUSTED,
                        "grpc: received message larger than max (%d vs. %d)" % (need, maxSize)),
                        out)
                self._flag = flag
            if n - pos < need:
                break
            end = pos + need
            out.append((self._flag, data[pos:end] if pos or end != n else data))
            pos = end
            need = None
        self._need = need
        if pos < n:
            rest = data[pos:] if pos else data
            self._parts = [rest]
            self._have = len(rest)
        return out

    def _fail(self, error, decoded):
        error.decoded = decoded
        self.error = error
        self._parts = []
        self._have = 0
        raise error


# -- grpc-timeout -------------------------------------------------------------

_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_UNITS_NS = ((b"n", 1), (b"u", 1000), (b"m", 1000000), (b"S", 10 ** 9),
             (b"M", 60 * 10 ** 9), (b"H", 3600 * 10 ** 9))


def parseTimeout(value):
    """
    ``grpc-timeout`` (bytes: at most 8 ASCII digits and a unit) in seconds.
    ValueError when malformed.
    """
    unit = _UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not 1 <= len(digits) <= 8 or not digits.isdigit():
        raise ValueError("malformed grpc-timeout %r" % (value,))
    return int(digits) * unit


def encodeTimeout(seconds):
    """``seconds`` (> 0) as ``grpc-timeout``: the finest unit whose value fits 8 digits."""
    ns = max(1, math.ceil(seconds * 1e9))
    for unit, size in _UNITS_NS:
        value = -(-ns // size)
        if value < 100000000:
            return b"%d%s" % (value, unit)
    return b"99999999H"


# -- grpc-message --------------------------------------------------------------

_PLAIN = frozenset(range(0x20, 0x7F)) - {0x25}


def percentEncode(text):
    """``grpc-message``'s encoding of ``text``: UTF-8, then %XX outside 0x20-0x7E and for %."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if all(b in _PLAIN for b in data):
        return data
    return b"".join(bytes((b,)) if b in _PLAIN else b"%%%02X" % (b,) for b in data)


def percentDecode(value):
    """Back to text; a malformed ``%`` sequence is kept as it is (as grpc-go does)."""
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    out = bytearray()
    i = 0
    n = len(value)
    while i < n:
        b = value[i]
        if b == 0x25 and _isHex(value[i + 1:i + 3]):
            out.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "replace")


def _isHex(pair):
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


# -- metadata -------------------------------------------------------------------

#: header fields that are gRPC's own, never custom metadata
RESERVED_HEADERS = frozenset({
    b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding",
    b"grpc-status", b"grpc-message", b"grpc-status-details-bin", b"grpc-previous-rpc-attempts",
    b"grpc-retry-pushback-ms", b"connection", b"host",
})

_KEY_CHARS = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz-_.")


def encodeMetadata(metadata):
    """
    ``(key, value)`` pairs as header fields: keys lower-case ASCII
    (``0-9 a-z - _ .``); a ``-bin`` key's value is bytes, sent base64
    without padding; any other value is printable ASCII.  ValueError
    otherwise.
    """
    out = []
    for key, value in metadata:
        name = key.encode("ascii") if isinstance(key, str) else bytes(key)
        name = name.lower()
        if not name or not all(c in _KEY_CHARS for c in name) or name in RESERVED_HEADERS:
            raise ValueError("invalid metadata key %r" % (key,))
        if name.endswith(b"-bin"):
            if isinstance(value, str):
                value = value.encode("utf-8")
            value = binascii.b2a_base64(bytes(value), newline=False).rstrip(b"=")
        else:
            if isinstance(value, str):
                value = value.encode("ascii")
            if not all(0x20 <= c <= 0x7E for c in value):
                raise ValueError("invalid metadata value for %r" % (key,))
        out.append((name, value))
    return out


def decodeMetadata(headers):
    """
    The custom metadata in a header block: ``(key, value)`` with ``key``
    str, a ``-bin`` value bytes (base64 decoded, padding optional), others
    str.  Pseudo-headers and gRPC's reserved fields are left out.
    ValueError for a ``-bin`` value that is not base64.
    """
    out = []
    for name, value in headers:
        if name[:1] == b":" or name in RESERVED_HEADERS:
            continue
        key = name.decode("ascii", "replace")
        if name.endswith(b"-bin"):
            out.append((key, _b64decode(value)))
        else:
            out.append((key, value.decode("latin-1")))
    return out


def _b64decode(value):
    value = value.strip()
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("malformed binary metadata %r" % (value[:64],))


# -- status ---------------------------------------------------------------------

_OK = [(b"grpc-status", b"0")]


def statusHeaders(code=0, message="", details=None, metadata=()):
    """The status fields (for trailers or a trailers-only answer)."""
    if not code and not message and details is None and not metadata:
        return list(_OK)
    out = [(b"grpc-status", b"%d" % (int(code),))]
    if message:
        out.append((b"grpc-message", percentEncode(message)))
    if details is not None:
        out.append((b"grpc-status-details-bin",
                    binascii.b2a_base64(bytes(details), newline=False).rstrip(b"=")))
    if metadata:
        out.extend(encodeMetadata(metadata))
    return out


def readStatus(headers):
    """
    ``(code, message, details, metadata)`` from a trailer block (or a
    trailers-only answer); ``code`` is None when there is no usable
    ``grpc-status``.
    """
    code = None
    message = ""
    details = None
    for name, value in headers:
        if name == b"grpc-status":
            code = int(value) if value.isdigit() and len(value) < 6 else None
        elif name == b"grpc-message":
            message = percentDecode(value)
        elif name == b"grpc-status-details-bin":
            try:
                details = _b64decode(value)
            except ValueError:
                details = None
    try:
        metadata = decodeMetadata(headers)
    except ValueError:
        metadata = []
    return code, message, details, metadata


def isGRPCContentType(value):
    """``application/grpc`` and its ``+proto``/``;...`` variants (not grpc-web)."""
    if value is None or not value.startswith(b"application/grpc"):
        return False
    rest = value[16:17]
    return rest in (b"", b"+", b";")
