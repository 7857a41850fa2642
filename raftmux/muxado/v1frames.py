"""
muxado generation 1 ("v1") frames: encoders and a streaming, sans-IO decoder.

Wire format (spec Appendix A, checked against Go's ``proto/frame``): an 8-byte
big-endian header: bytes 0-1 hold the payload length in their low 14 bits
(max 16,383; the top 2 bits are reserved and ignored), byte 2 the flags,
byte 3 the type in its low 5 bits, bytes 4-7 an R bit (masked off on read)
and a 31-bit stream ID.  Unlike v2 a stream is opened by an explicit SYN
frame that may carry a priority and a stream type.

The decoder never buffers a DATA payload (each piece is handed up as it
arrives) and holds at most an 8-byte header or fixed body, so its memory is
bounded whatever the peer sends.

Frames carry v1 *wire* error codes; everything above this module speaks the
semantic ``ErrorCode`` of ``errors.py``.  ``toWireCode``/``fromWireCode``
translate, from the one table ``CODE_TABLE``.
"""

from enum import IntEnum
from struct import Struct
from typing import Any

from raftmux.muxado.errors import ErrorCode, FrameEncodeError, ProtocolError
from raftmux.muxado.frames import Data, Rst, WndInc  # noqa: F401  (decoded here too)

TYPE_SYN = 0x1
TYPE_RST = 0x2
TYPE_DATA = 0x3
TYPE_WNDINC = 0x4
TYPE_PRI = 0x5      # declared by Go v1, never implemented: receiving it is fatal
TYPE_GOAWAY = 0x6

FLAG_FIN = 0x1        # SYN or DATA
FLAG_PRIORITY = 0x2   # SYN only: a u32 priority follows
FLAG_TYPE = 0x4       # SYN only: a u32 stream type follows (after the priority)

HEADER_SIZE = 8
MAX_LENGTH = 0x3FFF
MAX_STREAM_ID = 0x7FFFFFFF
MAX_PRIORITY = 0x7FFFFFFF
MAX_INCREMENT = 0x7FFFFFFF
MAX_U32 = 0xFFFFFFFF
MAX_GOAWAY_DEBUG = MAX_LENGTH - 8

# Stream types at or above this go to Go's "extensions"; the heartbeat is the first.
MIN_EXTENSION_TYPE = 0xFFFFFFFF - 0x100
HEARTBEAT_TYPE = MIN_EXTENSION_TYPE
HEARTBEAT_PRIORITY = 0x7FFFFFFF

_header = Struct(">HBBI")
_u32 = Struct(">I")
_twoU32 = Struct(">II")
_packHeader = _header.pack


class WireCode(IntEnum):
    """Error codes as v1 numbers them on the wire (Go ``proto/frame/error.go``)."""

    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 4
    FRAME_SIZE_ERROR = 5
    REFUSED_STREAM = 6
    CANCEL = 7


# The one translation table: (semantic ErrorCode, v1 wire code).  Sending maps
# every row; receiving maps a wire code to the FIRST row that names it.  Codes
# with no v1 meaning of their own are sent as their nearest v1 relative, and
# any code missing here is sent as INTERNAL_ERROR (what Go v1 uses for every
# error that is not a framing one).  A received wire code >= 8 (never sent by
# Go, whose RST encoder refuses them) reads as ErrorCode.UNKNOWN; the frame
# keeps the raw number.
CODE_TABLE = (
    (ErrorCode.NO_ERROR, WireCode.NO_ERROR),
    (ErrorCode.PROTOCOL_ERROR, WireCode.PROTOCOL_ERROR),
    (ErrorCode.INTERNAL_ERROR, WireCode.INTERNAL_ERROR),
    (ErrorCode.FLOW_CONTROL_ERROR, WireCode.FLOW_CONTROL_ERROR),
    (ErrorCode.STREAM_CLOSED, WireCode.STREAM_CLOSED),
    (ErrorCode.FRAME_SIZE_ERROR, WireCode.FRAME_SIZE_ERROR),
    (ErrorCode.STREAM_REFUSED, WireCode.REFUSED_STREAM),
    (ErrorCode.STREAM_CANCELLED, WireCode.CANCEL),
    # Sent only: the stream was not processed -> refused.
    (ErrorCode.ACCEPT_QUEUE_FULL, WireCode.REFUSED_STREAM),
    (ErrorCode.ENHANCE_YOUR_CALM, WireCode.REFUSED_STREAM),
    (ErrorCode.REMOTE_GONE_AWAY, WireCode.REFUSED_STREAM),
    (ErrorCode.STREAMS_EXHAUSTED, WireCode.REFUSED_STREAM),
    # Sent only: given up on locally -> cancelled.
    (ErrorCode.STREAM_RESET, WireCode.CANCEL),
    (ErrorCode.WRITE_TIMEOUT, WireCode.CANCEL),
    (ErrorCode.SESSION_CLOSED, WireCode.CANCEL),
    # Sent only: Go v1 itself dies with InternalError on EOF and foreign errors.
    (ErrorCode.PEER_EOF, WireCode.INTERNAL_ERROR),
    (ErrorCode.HEARTBEAT_TIMEOUT, WireCode.INTERNAL_ERROR),
    (ErrorCode.UNKNOWN, WireCode.INTERNAL_ERROR),
)

_TO_WIRE = {code: wire for code, wire in CODE_TABLE}
_FROM_WIRE: dict[Any, Any] = {}
for _code, _wire in CODE_TABLE:
    _FROM_WIRE.setdefault(int(_wire), _code)
del _code, _wire


def toWireCode(code):
    """The v1 wire number (always 0-7) for a semantic ``ErrorCode`` (or any int)."""
    return _TO_WIRE.get(code, WireCode.INTERNAL_ERROR)


def fromWireCode(wire):
    """The semantic ``ErrorCode`` for a received v1 wire number."""
    return _FROM_WIRE.get(wire, ErrorCode.UNKNOWN)


# -- encoders -------------------------------------------------------------------


def encodeHeader(length, frameType, flags, streamId):
    """Pack one 8-byte header, refusing what the wire cannot carry."""
    if not 0 <= length <= MAX_LENGTH:
        raise FrameEncodeError("frame length %r out of range" % (length,))
    if not 0 <= streamId <= MAX_STREAM_ID:
        raise FrameEncodeError("stream id %r out of range" % (streamId,))
    if not 0 <= frameType <= 0x1F or not 0 <= flags <= 0xFF:
        raise FrameEncodeError("bad type %r or flags %r" % (frameType, flags))
    return _packHeader(length, flags, frameType, streamId)


def dataHeader(streamId, length, flags=0):
    """
    The header of a DATA frame.  Hot path: the connection has already checked
    the stream ID and keeps ``length`` within the window and MAX_LENGTH.
    """
    return _packHeader(length, flags, TYPE_DATA, streamId)


def encodeSyn(streamId, priority=None, streamType=None, fin=False):
    """
    A SYN frame.  As Go's encoder does, a priority or type of 0 (or None) is
    left out, so the same call gives Go's bytes; a receiver reads an absent
    field as 0 anyway.
    """
    if streamId == 0:
        raise FrameEncodeError("SYN stream id must not be zero")
    flags = FLAG_FIN if fin else 0
    body = b""
    if priority:
        if not 0 < priority <= MAX_PRIORITY:
            raise FrameEncodeError("priority %r out of range" % (priority,))
        flags |= FLAG_PRIORITY
        body += _u32.pack(priority)
    if streamType:
        if not 0 < streamType <= MAX_U32:
            raise FrameEncodeError("stream type %r out of range" % (streamType,))
        flags |= FLAG_TYPE
        body += _u32.pack(streamType)
    return encodeHeader(len(body), TYPE_SYN, flags, streamId) + body


def encodeData(streamId, data=b"", fin=False):
    """One whole DATA frame (at most MAX_LENGTH payload bytes)."""
    if streamId == 0:
        raise FrameEncodeError("DATA stream id must not be zero")
    return encodeHeader(len(data), TYPE_DATA, FLAG_FIN if fin else 0, streamId) + bytes(data)


def encodeRst(streamId, wireCode):
    """RST with a v1 wire code; Go's encoder refuses codes >= 8, so does this one."""
    if streamId == 0:
        raise FrameEncodeError("RST stream id must not be zero")
    if not 0 <= wireCode <= WireCode.CANCEL:
        raise FrameEncodeError("invalid v1 RST error code %r" % (wireCode,))
    return encodeHeader(4, TYPE_RST, 0, streamId) + _u32.pack(wireCode)


def encodeWndInc(streamId, increment):
    if streamId == 0:
        raise FrameEncodeError("WNDINC stream id must not be zero")
    if not 1 <= increment <= MAX_INCREMENT:
        raise FrameEncodeError("window increment %r out of range" % (increment,))
    return encodeHeader(4, TYPE_WNDINC, 0, streamId) + _u32.pack(increment)


def encodeGoAway(lastStreamId, wireCode, debug=b""):
    """
    A correct GOAWAY: length = 8 + len(debug), debug bytes present (Go v1's
    own encoder gets both wrong, see ``FrameDecoder``).
    """
    if not 0 <= lastStreamId <= MAX_STREAM_ID:
        raise FrameEncodeError("last stream id %r out of range" % (lastStreamId,))
    if not 0 <= wireCode <= MAX_U32:
        raise FrameEncodeError("error code %r out of range" % (wireCode,))
    if len(debug) > MAX_GOAWAY_DEBUG:
        raise FrameEncodeError("GOAWAY debug of %d bytes does not fit a frame" % (len(debug),))
    return (encodeHeader(8 + len(debug), TYPE_GOAWAY, 0, 0)
            + _twoU32.pack(lastStreamId, wireCode) + bytes(debug))


# -- decoded frames ----------------------------------------------------------------


class Syn:
    """A peer opens ``streamId``; ``priority``/``streamType`` are None when absent."""

    __slots__ = ("streamId", "flags", "priority", "streamType")

    def __init__(self, streamId, flags, priority, streamType):
        self.streamId = streamId
        self.flags = flags
        self.priority = priority
        self.streamType = streamType

    @property
    def fin(self):
        return bool(self.flags & FLAG_FIN)

    def __repr__(self):
        return "<Syn stream=%d flags=%x priority=%r type=%r>" % (
            self.streamId, self.flags, self.priority, self.streamType)


# DATA pieces, RST and WNDINC decode to the same classes as v2's (``frames``):
# an RST's ``code`` is then the v1 wire number, and a WNDINC's ``increment``
# has its R bit masked off (Go v1 accepts 0, which adds nothing).


class GoAway:
    """
    ``code`` is the v1 wire number.  ``debug`` is always empty: the only v1
    encoder in use (Go's) never sends the debug text it declares, whose
    length is ``declaredDebug`` (see ``FrameDecoder``).
    """

    __slots__ = ("lastStreamId", "code", "debug", "declaredDebug")

    def __init__(self, lastStreamId, code, debug=b"", declaredDebug=0):
        self.lastStreamId = lastStreamId
        self.code = code
        self.debug = debug
        self.declaredDebug = declaredDebug

    @property
    def truncated(self):
        return len(self.debug) < self.declaredDebug

    def __repr__(self):
        return "<GoAway last=%d code=%d debug=%r/%d>" % (
            self.lastStreamId, self.code, self.debug, self.declaredDebug)


# -- decoder ------------------------------------------------------------------------

_HEADER = 0      # collecting an 8-byte header
_BODY = 1        # collecting a fixed body (SYN fields, RST, WNDINC, GOAWAY's 8 bytes)
_STREAMING = 2   # passing DATA payload through

_TYPE_NAMES = {TYPE_SYN: "SYN", TYPE_RST: "RST", TYPE_DATA: "DATA", TYPE_WNDINC: "WNDINC",
               TYPE_PRI: "PRI", TYPE_GOAWAY: "GOAWAY"}


class FrameDecoder:
    """
    Bytes in, v1 frames out.  ``receiveData`` returns the frames (``Syn``,
    ``Data`` pieces, ``Rst``, ``WndInc``, ``GoAway``) completed by the bytes
    given, and raises ``ProtocolError`` carrying the semantic ``ErrorCode``
    the connection must put in its GOAWAY (and, as ``decoded``, the frames
    completed before the bad one): PROTOCOL_ERROR for a PRI frame, an
    undefined type, a zero stream ID where one is required or a GOAWAY on
    a stream other than 0, and FRAME_SIZE_ERROR for a SYN whose length is
    not exactly its flagged fields or an RST/WNDINC/GOAWAY of the wrong
    length.  (Go v1 ends the session with
    InternalError for all of these, because its check for framing errors
    tests the wrong type; a Go peer never reads the code of a GOAWAY, so we
    send the code that says what went wrong.)  After an error the decoder is
    dead.

    GOAWAY: Go v1's encoder declares 16 + len(debug) bytes and writes only
    the 8-byte body.  Usually Go then closes the transport, but a Go
    application's ``GoAway()`` leaves the session open and goes on sending
    frames, which a reader waiting for the declared debug text would take
    for it (a Go v1 reader desyncs there).  So the decoder acts on the 8-byte
    body at once and goes on decoding right after it: the declared debug
    length is only recorded (``declaredDebug``).  raftmux's own v1 GOAWAYs
    declare no debug text (see ``MuxadoV1Connection.goAway``), so between
    raftmux peers nothing is lost, and every GOAWAY anyone sends decodes.
    """

    def __init__(self, maxGoAwayDebug=65536):
        self.maxGoAwayDebug = min(maxGoAwayDebug, MAX_GOAWAY_DEBUG)
        self._state = _HEADER
        self._buf = bytearray()
        self._need = HEADER_SIZE
        self._remaining = 0
        self._frameType = 0
        self._flags = 0
        self._streamId = 0
        self._length = 0
        self._dead = None

    @property
    def bufferedBytes(self):
        """Bytes held for an incomplete header or fixed body (never a DATA payload)."""
        return len(self._buf)

    def receiveData(self, data):
        if self._dead is not None:
            self._dead.decoded = []
            raise self._dead
        frames: list[Any] = []
        try:
            self._receive(data, frames)
        except ProtocolError as e:
            e.decoded = frames  # type: ignore[attr-defined]
            self._dead = e
            raise
        return frames

    def _receive(self, data, frames):
        pos = 0
        end = len(data)
        unpackHeader = _header.unpack_from
        while pos < end:
            state = self._state
            if state == _STREAMING:
                take = self._remaining
                if take > end - pos:
                    take = end - pos
                chunk = data if (pos == 0 and take == end) else data[pos:pos + take]
                pos += take
                self._remaining -= take
                frames.append(Data(self._streamId, self._flags, chunk, self._length,
                                   False, self._remaining == 0))
                if self._remaining == 0:
                    self._state = _HEADER
                continue
            # _HEADER or _BODY: collect self._need bytes.
            buf = self._buf
            if not buf and end - pos >= self._need:
                start = pos
                pos += self._need
                if state == _HEADER:
                    length, flags, frameType, streamId = unpackHeader(data, start)
                    pos = self._onHeader(length, flags, frameType, streamId,
                                         data, pos, end, frames)
                else:
                    pos = self._onBody(data[start:pos], data, pos, end, frames)
                continue
            take = min(self._need - len(buf), end - pos)
            buf += data[pos:pos + take]
            pos += take
            if len(buf) < self._need:
                break
            piece = bytes(buf)
            buf.clear()
            if state == _HEADER:
                length, flags, frameType, streamId = unpackHeader(piece, 0)
                pos = self._onHeader(length, flags, frameType, streamId, data, pos, end, frames)
            else:
                pos = self._onBody(piece, data, pos, end, frames)

    def _onHeader(self, length, flags, frameType, streamId, data, pos, end, frames):
        """Check and dispatch a header; returns the new read position."""
        length &= MAX_LENGTH
        frameType &= 0x1F
        streamId &= MAX_STREAM_ID
        self._frameType = frameType
        self._flags = flags
        self._streamId = streamId
        self._length = length
        if frameType == TYPE_DATA:
            if streamId == 0:
                raise ProtocolError("DATA frame stream id must not be zero")
            take = length if length <= end - pos else end - pos
            chunk = data if (take == end - pos and pos == 0) else data[pos:pos + take]
            last = take == length
            frames.append(Data(streamId, flags, chunk, length, True, last))
            if not last:
                self._remaining = length - take
                self._state = _STREAMING
            return pos + take
        if frameType == TYPE_SYN:
            expected = (4 if flags & FLAG_PRIORITY else 0) + (4 if flags & FLAG_TYPE else 0)
            if length != expected:
                raise ProtocolError(
                    "SYN length must be %d for flags 0x%x, got %d" % (expected, flags, length),
                    ErrorCode.FRAME_SIZE_ERROR)
            if streamId == 0:
                raise ProtocolError("SYN frame stream id must not be zero")
            if length == 0:
                frames.append(Syn(streamId, flags, None, None))
                return pos
            self._need = length
        elif frameType == TYPE_RST or frameType == TYPE_WNDINC:
            name = _TYPE_NAMES[frameType]
            if length != 4:
                raise ProtocolError("%s length must be 4, got %d" % (name, length),
                                    ErrorCode.FRAME_SIZE_ERROR)
            if streamId == 0:
                raise ProtocolError("%s frame stream id must not be zero" % (name,))
            self._need = 4
        elif frameType == TYPE_GOAWAY:
            if length < 8:
                raise ProtocolError("GOAWAY length must be at least 8, got %d" % (length,),
                                    ErrorCode.FRAME_SIZE_ERROR)
            if streamId != 0:
                raise ProtocolError("GOAWAY stream id must be zero, not %d" % (streamId,))
            self._need = 8
        elif frameType == TYPE_PRI:
            raise ProtocolError("STREAM_PRI frames are not implemented by muxado v1")
        else:
            raise ProtocolError("illegal frame type: %d" % (frameType,))
        self._state = _BODY
        return pos

    def _onBody(self, body, data, pos, end, frames):
        """Decode a complete fixed body; returns the new read position."""
        frameType = self._frameType
        self._state = _HEADER
        self._need = HEADER_SIZE
        if frameType == TYPE_SYN:
            flags = self._flags
            fields = iter(_u32.unpack_from(body, i)[0] for i in range(0, len(body), 4))
            priority = next(fields) if flags & FLAG_PRIORITY else None
            streamType = next(fields) if flags & FLAG_TYPE else None
            frames.append(Syn(self._streamId, flags, priority, streamType))
        elif frameType == TYPE_RST:
            frames.append(Rst(self._streamId, _u32.unpack(body)[0]))
        elif frameType == TYPE_WNDINC:
            frames.append(WndInc(self._streamId, _u32.unpack(body)[0] & MAX_INCREMENT))
        else:
            lastStreamId, code = _twoU32.unpack_from(body, 0)
            # Go's debug bytes never come: decoding goes on after the body.
            frames.append(GoAway(lastStreamId & MAX_STREAM_ID, code, b"", self._length - 8))
        return pos
