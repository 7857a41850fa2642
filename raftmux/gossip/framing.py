# -*- test-case-name: raftmux.test.test_gossip_framing -*-
"""
ckit's gossiphttp frame codec, sans-IO.

A frame is ``0xCC`` + a 2-byte big-endian length (payloads up to 65,535
bytes) or ``0xCD`` + a 4-byte length (only above 65,535, so pre-2025 peers
still read everything small).  A ``/message`` body and each half of a
``/stream`` are sequences of frames.  The decoder never allocates for a
declared length: it only keeps bytes that have arrived, and refuses a
declared length above its maximum before any payload arrives.
"""

import struct

MAGIC_SHORT = 0xCC
MAGIC_LONG = 0xCD
SHORT_LIMIT = 0xFFFF
LONG_LIMIT = 0xFFFFFFFF
# memberlist v0.5.3 caps a push/pull state at 20 MiB; a frame carries one.
DEFAULT_MAX_FRAME_SIZE = 20 * 1024 * 1024

_short = struct.Struct(">BH")
_long = struct.Struct(">BI")


class FramingError(Exception):
    """
    The byte sequence is not a valid frame sequence (ckit answers 400).
    ``decoded`` holds the payloads of the whole frames fed before the error.
    """

    decoded = ()


class BadMagic(FramingError):
    def __init__(self, byte):
        FramingError.__init__(self, "unrecognized magic byte (%02x)" % (byte,))
        self.byte = byte


class FrameTooLarge(FramingError):
    def __init__(self, length, maximum):
        FramingError.__init__(
            self, "message length %d exceeds size limit %d" % (length, maximum))
        self.length = length
        self.maximum = maximum


class TruncatedFrame(FramingError):
    """The body ended inside a frame (Go's unexpected EOF)."""


def frameHeader(length):
    """The header for a payload of ``length`` bytes: 3 bytes if it fits, else 5."""
    if length <= SHORT_LIMIT:
        return _short.pack(MAGIC_SHORT, length)
    if length <= LONG_LIMIT:
        return _long.pack(MAGIC_LONG, length)
    raise FrameTooLarge(length, LONG_LIMIT)


def encodeFrame(payload):
    """One whole frame as bytes."""
    return frameHeader(len(payload)) + bytes(payload)


class FrameDecoder:
    """
    Incremental decoder: ``feed(bytes) -> [payload, ...]``, then ``end()``
    when the body is over.  After a ``FramingError`` the decoder is dead
    (every later call raises the same error) so a shell cannot resume on
    garbage.  ``buffered`` is what it holds, never more than one header
    plus ``maxFrameSize`` beyond the newest chunk fed.
    """

    def __init__(self, maxFrameSize=DEFAULT_MAX_FRAME_SIZE):
        self.maxFrameSize = maxFrameSize
        self._buf = bytearray()
        self._need = None  # payload length of the current frame, once its header is read
        self._error = None

    @property
    def buffered(self):
        return len(self._buf)

    def feed(self, data):
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        out = []
        pos = 0
        try:
            while True:
                if self._need is None:
                    avail = len(buf) - pos
                    if avail < 3:
                        break
                    magic = buf[pos]
                    if magic == MAGIC_SHORT:
                        self._need = (buf[pos + 1] << 8) | buf[pos + 2]
                        pos += 3
                    elif magic == MAGIC_LONG:
                        if avail < 5:
                            break
                        length = _long.unpack_from(buf, pos)[1]
                        if length > self.maxFrameSize:
                            raise FrameTooLarge(length, self.maxFrameSize)
                        self._need = length
                        pos += 5
                    else:
                        raise BadMagic(magic)
                    if self._need > self.maxFrameSize:
                        raise FrameTooLarge(self._need, self.maxFrameSize)
                need = self._need
                if len(buf) - pos < need:
                    break
                out.append(bytes(buf[pos:pos + need]))
                pos += need
                self._need = None
        except FramingError as e:
            e.decoded = out  # whole frames before the error: ckit delivers them
            self._error = e
            self._buf = bytearray()
            raise
        finally:
            if pos and self._error is None:
                del buf[:pos]
        return out

    def end(self):
        """The body ended: raise ``TruncatedFrame`` unless it ended between frames."""
        if self._error is not None:
            raise self._error
        if self._buf or self._need is not None:
            self._error = TruncatedFrame(
                "body ended inside a frame (%d bytes buffered)" % (len(self._buf),))
            raise self._error


def decodeAll(data, maxFrameSize=DEFAULT_MAX_FRAME_SIZE):
    """Decode a complete body (a ``/message`` request) into its payloads."""
    decoder = FrameDecoder(maxFrameSize)
    out = decoder.feed(data)
    decoder.end()
    return out
