"""
muxado v2 frames: encoders and a streaming, sans-IO decoder.

Wire format (spec section 3): an 8-byte big-endian header holding a 24-bit
payload length, a 4-bit type, 4 bits of flags and an R bit + 31-bit stream
ID.  The decoder never buffers a DATA payload: it hands each piece up as it
arrives, so a 16 MiB frame costs no more memory than a 16-byte one.  Only a
header, an RST/WNDINC body and a GOAWAY body (its debug text capped) are ever
held, which bounds the decoder's memory whatever the peer sends.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

from raftmux.muxado.errors import ErrorCode, FrameEncodeError, ProtocolError

TYPE_RST = 0x0
TYPE_DATA = 0x1
TYPE_WNDINC = 0x2
TYPE_GOAWAY = 0x3

FLAG_FIN = 0x1
FLAG_SYN = 0x2

HEADER_SIZE = 8
MAX_LENGTH = 0xFFFFFF
MAX_STREAM_ID = 0x7FFFFFFF
MAX_INCREMENT = 0x7FFFFFFF
MAX_U32 = 0xFFFFFFFF

_header = Struct(">II")
_u32 = Struct(">I")
_twoU32 = Struct(">II")
_packHeader = _header.pack


# -- encoders ---------------------------------------------------------------


def encodeHeader(length, frameType, flags, streamId):
    """Pack one 8-byte header, refusing what the wire cannot carry."""
    if not 0 <= length <= MAX_LENGTH:
        raise FrameEncodeError("frame length %r out of range" % (length,))
    if not 0 <= streamId <= MAX_STREAM_ID:
        raise FrameEncodeError("stream id %r out of range" % (streamId,))
    if not 0 <= frameType <= 0xF or not 0 <= flags <= 0xF:
        raise FrameEncodeError("bad type %r or flags %r" % (frameType, flags))
    return _packHeader((length << 8) | (frameType << 4) | flags, streamId)


def dataHeader(streamId, length, flags=0):
    """
    The header of a DATA frame.  Hot path: the session has already checked
    the stream ID and keeps ``length`` within the send window.
    """
    return _packHeader((length << 8) | 0x10 | flags, streamId)


def encodeData(streamId: int, data: bytes = b"", fin: bool = False, syn: bool = False) -> bytes:
    """One whole DATA frame, as bytes (tests and small frames)."""
    if streamId == 0:
        raise FrameEncodeError("DATA stream id must not be zero")
    flags = (FLAG_FIN if fin else 0) | (FLAG_SYN if syn else 0)
    return encodeHeader(len(data), TYPE_DATA, flags, streamId) + bytes(data)


def encodeRst(streamId: int, code: int) -> bytes:
    if streamId == 0:
        raise FrameEncodeError("RST stream id must not be zero")
    if not 0 <= code <= MAX_U32:
        raise FrameEncodeError("error code %r out of range" % (code,))
    return encodeHeader(4, TYPE_RST, 0, streamId) + _u32.pack(code)


def encodeWndInc(streamId: int, increment: int) -> bytes:
    if streamId == 0:
        raise FrameEncodeError("WNDINC stream id must not be zero")
    if not 1 <= increment <= MAX_INCREMENT:
        raise FrameEncodeError("window increment %r out of range" % (increment,))
    return encodeHeader(4, TYPE_WNDINC, 0, streamId) + _u32.pack(increment)


def encodeGoAway(lastStreamId: int, code: int, debug: bytes = b"") -> bytes:
    if not 0 <= lastStreamId <= MAX_STREAM_ID:
        raise FrameEncodeError("last stream id %r out of range" % (lastStreamId,))
    if not 0 <= code <= MAX_U32:
        raise FrameEncodeError("error code %r out of range" % (code,))
    return (encodeHeader(8 + len(debug), TYPE_GOAWAY, 0, 0)
            + _twoU32.pack(lastStreamId, code) + bytes(debug))


# -- decoded frames -----------------------------------------------------------


class Data:
    """
    A piece of a DATA frame's payload.  A frame arrives as one or more pieces:
    ``first`` marks the piece that starts it (``length`` is the frame's whole
    payload length, ``flags`` its flags), ``last`` the piece that ends it.
    SYN is meaningful on the first piece, FIN on the last.
    """

    __slots__ = ("streamId", "flags", "data", "length", "first", "last")

    def __init__(self, streamId, flags, data, length, first, last):
        self.streamId = streamId
        self.flags = flags
        self.data = data
        self.length = length
        self.first = first
        self.last = last

    @property
    def syn(self):
        return self.first and bool(self.flags & FLAG_SYN)

    @property
    def fin(self):
        return self.last and bool(self.flags & FLAG_FIN)

    def __repr__(self):
        return "<Data stream=%d flags=%x len=%d/%d first=%s last=%s>" % (
            self.streamId, self.flags, len(self.data), self.length, self.first, self.last)


class Rst:
    __slots__ = ("streamId", "code")

    def __init__(self, streamId, code):
        self.streamId = streamId
        self.code = code

    def __repr__(self):
        return "<Rst stream=%d code=%d>" % (self.streamId, self.code)


class WndInc:
    __slots__ = ("streamId", "increment")

    def __init__(self, streamId, increment):
        self.streamId = streamId
        self.increment = increment

    def __repr__(self):
        return "<WndInc stream=%d +%d>" % (self.streamId, self.increment)


class GoAway:
    """``debug`` holds at most the decoder's cap; ``truncated`` says if more was sent."""

    __slots__ = ("lastStreamId", "code", "debug", "truncated")

    def __init__(self, lastStreamId, code, debug, truncated=False):
        self.lastStreamId = lastStreamId
        self.code = code
        self.debug = debug
        self.truncated = truncated

    def __repr__(self):
        return "<GoAway last=%d code=%d debug=%r>" % (self.lastStreamId, self.code, self.debug)


class Unknown:
    """A frame of type 4-15: reported once, its payload skipped (spec 4.5)."""

    __slots__ = ("frameType", "flags", "streamId", "length")

    def __init__(self, frameType, flags, streamId, length):
        self.frameType = frameType
        self.flags = flags
        self.streamId = streamId
        self.length = length

    def __repr__(self):
        return "<Unknown type=%d stream=%d len=%d>" % (self.frameType, self.streamId, self.length)


# -- decoder ------------------------------------------------------------------

_HEADER = 0      # collecting an 8-byte header
_BODY = 1        # collecting a fixed body (RST, WNDINC, GOAWAY)
_STREAMING = 2   # passing DATA payload through
_SKIPPING = 3    # discarding payload (unknown types, GOAWAY debug past the cap)


class FrameDecoder:
    """
    Bytes in, frames out.  ``receiveData`` returns the frames (``Data``
    pieces, ``Rst``, ``WndInc``, ``GoAway``, ``Unknown``) completed by the
    bytes given, and raises ``ProtocolError`` (with the muxado code the
    session must put in its GOAWAY) at the first frame that breaks the rules
    of spec section 4.  After an error the decoder is dead: a muxado session
    never recovers from a bad frame.
    """

    def __init__(self, maxGoAwayDebug: int = 65536) -> None:
        self.maxGoAwayDebug = maxGoAwayDebug
        self._state = _HEADER
        self._buf = bytearray()
        self._need = HEADER_SIZE
        self._remaining = 0
        self._frameType = 0
        self._flags = 0
        self._streamId = 0
        self._length = 0
        self._pendingGoAway: GoAway | None = None
        self._dead: ProtocolError | None = None

    @property
    def bufferedBytes(self):
        """Bytes held for an incomplete header or fixed body (never a DATA payload)."""
        return len(self._buf)

    def receiveData(self, data: bytes) -> list[Any]:
        if self._dead is not None:
            raise self._dead
        try:
            return self._receive(data)
        except ProtocolError as e:
            self._dead = e
            raise

    def _receive(self, data):
        frames = []
        pos = 0
        end = len(data)
        unpackHeader = _header.unpack_from
        while pos < end:
            state = self._state
            if state == _STREAMING:
                take = self._remaining
                if take > end - pos:
                    take = end - pos
                if pos == 0 and take == end:
                    chunk = data
                else:
                    chunk = data[pos:pos + take]
                pos += take
                self._remaining -= take
                frames.append(Data(self._streamId, self._flags, chunk, self._length,
                                   False, self._remaining == 0))
                if self._remaining == 0:
                    self._state = _HEADER
                continue
            if state == _SKIPPING:
                take = min(self._remaining, end - pos)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._finishSkip(frames)
                continue
            # _HEADER or _BODY: collect self._need bytes.
            buf = self._buf
            if not buf and end - pos >= self._need:
                # Fast path: the whole piece is in ``data``.
                start = pos
                pos += self._need
                if state == _HEADER:
                    word, streamId = unpackHeader(data, start)
                    pos = self._onHeader(word, streamId, data, pos, end, frames)
                else:
                    self._onBody(data[start:pos], frames)
                continue
            take = min(self._need - len(buf), end - pos)
            buf += data[pos:pos + take]
            pos += take
            if len(buf) < self._need:
                break
            piece = bytes(buf)
            buf.clear()
            if state == _HEADER:
                word, streamId = unpackHeader(piece, 0)
                pos = self._onHeader(word, streamId, data, pos, end, frames)
            else:
                self._onBody(piece, frames)
        return frames

    def _onHeader(self, word, streamId, data, pos, end, frames):
        """Dispatch a parsed header; returns the new read position."""
        length = word >> 8
        frameType = (word >> 4) & 0xF
        flags = word & 0xF
        self._frameType = frameType
        self._flags = flags
        self._streamId = streamId
        self._length = length
        if frameType == TYPE_DATA:
            if streamId == 0:
                raise ProtocolError("DATA frame stream id must not be zero")
            if streamId > MAX_STREAM_ID:
                raise ProtocolError("stream id 0x%x has the reserved bit set" % (streamId,))
            take = length if length <= end - pos else end - pos
            if take == end - pos and pos == 0:
                chunk = data
            else:
                chunk = data[pos:pos + take]
            last = take == length
            frames.append(Data(streamId, flags, chunk, length, True, last))
            if not last:
                self._remaining = length - take
                self._state = _STREAMING
            return pos + take
        if frameType == TYPE_RST or frameType == TYPE_WNDINC:
            if length != 4:
                raise ProtocolError(
                    "illegal %s frame length: 0x%x"
                    % ("RST" if frameType == TYPE_RST else "WNDINC", length),
                    ErrorCode.FRAME_SIZE_ERROR)
            if streamId == 0:
                raise ProtocolError("%s frame stream id must not be zero"
                                    % ("RST" if frameType == TYPE_RST else "WNDINC"))
            if streamId > MAX_STREAM_ID:
                raise ProtocolError("stream id 0x%x has the reserved bit set" % (streamId,))
            self._state = _BODY
            self._need = 4
            return pos
        if frameType == TYPE_GOAWAY:
            if length < 8:
                raise ProtocolError("illegal GOAWAY frame length: 0x%x" % (length,),
                                    ErrorCode.FRAME_SIZE_ERROR)
            if streamId != 0:
                raise ProtocolError("GOAWAY stream id must be zero, not: %d" % (streamId,))
            keep = min(length, 8 + self.maxGoAwayDebug)
            self._remaining = length - keep
            self._state = _BODY
            self._need = keep
            return pos
        # Unknown type: report it, skip its payload.
        frames.append(Unknown(frameType, flags, streamId, length))
        if length:
            self._remaining = length
            self._state = _SKIPPING
        return pos

    def _onBody(self, body, frames):
        frameType = self._frameType
        self._state = _HEADER
        self._need = HEADER_SIZE
        if frameType == TYPE_RST:
            frames.append(Rst(self._streamId, _u32.unpack(body)[0]))
        elif frameType == TYPE_WNDINC:
            increment = _u32.unpack(body)[0] & MAX_INCREMENT
            if increment == 0:
                raise ProtocolError("WNDINC increment must not be zero, got: 0")
            frames.append(WndInc(self._streamId, increment))
        else:
            lastStreamId, code = _twoU32.unpack_from(body, 0)
            goAway = GoAway(lastStreamId, code, bytes(body[8:]), self._remaining > 0)
            if self._remaining:
                self._pendingGoAway = goAway
                self._state = _SKIPPING
            else:
                frames.append(goAway)

    def _finishSkip(self, frames):
        self._state = _HEADER
        self._need = HEADER_SIZE
        pending = self._pendingGoAway
        if pending is not None:
            self._pendingGoAway = None
            frames.append(pending)
