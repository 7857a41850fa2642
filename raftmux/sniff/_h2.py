# -*- test-case-name: raftmux.test.test_sniff_matchers -*-
"""
The few HTTP/2 framing facts the sniffer needs, sans-IO: the client
preface, walking the client's first frames to its first header block (the
block itself is decoded by ``hpack``), and the filter that hides the
client's ACK of the sniffer's own SETTINGS from the real server.
"""

from struct import Struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

FRAME_HEADER = 9
TYPE_DATA = 0x0
TYPE_HEADERS = 0x1
TYPE_RST_STREAM = 0x3
TYPE_SETTINGS = 0x4
TYPE_PUSH_PROMISE = 0x5
TYPE_GOAWAY = 0x7
TYPE_CONTINUATION = 0x9
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# A client may not send frames over the default SETTINGS_MAX_FRAME_SIZE
# before the server raises it, and the sniffer's SETTINGS never does.
MAX_FRAME = 16384

# An empty server SETTINGS frame: length 0, type 4, flags 0, stream 0.
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"

_u32 = Struct(">I")
_NOT_BEFORE_HEADERS = frozenset({TYPE_DATA, TYPE_RST_STREAM, TYPE_PUSH_PROMISE, TYPE_GOAWAY})


class _Bad:
    def __repr__(self):
        return "BAD"


BAD = _Bad()


def _frameHeader(data, pos):
    length = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
    streamId = _u32.unpack_from(data, pos + 5)[0] & 0x7FFFFFFF
    return length, data[pos + 3], data[pos + 4], streamId


def firstHeaderBlock(data):
    """
    The HPACK bytes of the first header block after the preface in
    ``data``; ``None`` if more bytes are needed; ``BAD`` if the frames
    break HTTP/2's rules for a client's opening (first frame not a
    SETTINGS, DATA before HEADERS, an interleaved CONTINUATION, an
    oversized frame).  PING, PRIORITY, WINDOW_UPDATE and unknown frames
    are skipped.
    """
    pos = len(PREFACE)
    first = True
    blockStream = None
    fragments = []
    n = len(data)
    while True:
        if n - pos < FRAME_HEADER:
            return None
        length, frameType, flags, streamId = _frameHeader(data, pos)
        if length > MAX_FRAME:
            return BAD
        if first:
            if frameType != TYPE_SETTINGS or flags & FLAG_ACK:
                return BAD
            first = False
        if blockStream is not None and (frameType != TYPE_CONTINUATION or streamId != blockStream):
            return BAD
        end = pos + FRAME_HEADER + length
        if n < end:
            return None
        start = pos + FRAME_HEADER
        if blockStream is not None:
            fragments.append(data[start:end])
            if flags & FLAG_END_HEADERS:
                return b"".join(fragments)
        elif frameType == TYPE_HEADERS:
            if streamId % 2 == 0:
                return BAD
            padding = 0
            if flags & FLAG_PADDED:
                if length < 1:
                    return BAD
                padding = data[start]
                start += 1
            if flags & FLAG_PRIORITY:
                start += 5
            if start + padding > end:
                return BAD
            fragment = data[start:end - padding]
            if flags & FLAG_END_HEADERS:
                return fragment
            blockStream = streamId
            fragments = [fragment]
        elif frameType == TYPE_SETTINGS:
            if streamId != 0 or length % 6 or (flags & FLAG_ACK and length):
                return BAD
        elif frameType == TYPE_CONTINUATION or frameType in _NOT_BEFORE_HEADERS:
            return BAD
        pos = end


def sawClientSettings(data):
    """True once ``data`` holds the preface and a whole non-ACK SETTINGS."""
    if len(data) < len(PREFACE) + FRAME_HEADER or not data.startswith(PREFACE):
        return False
    length, frameType, flags, streamId = _frameHeader(data, len(PREFACE))
    return (frameType == TYPE_SETTINGS and not flags & FLAG_ACK and streamId == 0
            and len(data) >= len(PREFACE) + FRAME_HEADER + length)


class SettingsAckFilter:
    """
    Removes the client's first SETTINGS ACK (the answer to the sniffer's
    own empty SETTINGS) from the client's byte stream, which starts with
    the preface.  The client ACKs in the order it received SETTINGS, and the
    sniffer's came first, so its first ACK is the sniffer's.  Holds at most
    8 bytes of a split frame header; passes everything else on untouched.
    """

    def __init__(self):
        self._passThrough = len(PREFACE)
        self._header = b""
        self.done = False

    def feed(self, data):
        if self.done:
            return data
        out = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._passThrough:
                take = min(self._passThrough, n - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._passThrough -= take
                continue
            need = FRAME_HEADER - len(self._header)
            self._header += data[pos:pos + need]
            pos += need
            if len(self._header) < FRAME_HEADER:
                break
            header, self._header = self._header, b""
            length, frameType, flags, _ = _frameHeader(header, 0)
            if frameType == TYPE_SETTINGS and flags & FLAG_ACK and length == 0:
                self.done = True
                out.append(data[pos:])
                break
            out.append(header)
            self._passThrough = length
        return b"".join(out)
