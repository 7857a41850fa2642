# -*- test-case-name: raftmux.test.test_muxado_generation -*-
"""
Which muxado generation a client speaks, told from its first frame (spec
15.3).  muxado has no preface and no version field, but the first frame a
client sends is always the opening of a stream, and the two generations
open streams differently:

* v1: an explicit SYN frame, ``00 LL FF 01 + odd stream id``: a 14-bit
  length of 0, 4 or 8 (the optional priority and type fields, as the flags
  PRIORITY 0x2 and TYPE 0x4 say), flags within 0x07, type 1.
* v2: a DATA frame with the SYN flag, byte 3 ``0x12`` or ``0x13``, on an odd
  stream id, its length within the stream window.

The two never collide (v1's byte 3 is at most 6; v2's is 0x1_), so one
server can take both.  Used by ``MuxadoSession`` (server side) and by the
sniffer's ``muxado()`` matcher; sans-IO.
"""

NEED_MORE = None
NEITHER = 0

V1_SYN_TYPE = 0x01
_V1_FLAG_FIN, _V1_FLAG_PRIORITY, _V1_FLAG_TYPE = 0x1, 0x2, 0x4
_V2_SYN_BYTES = frozenset({0x12, 0x13})

DEFAULT_V2_MAX_LENGTH = 0x40000


def _v1Length(flags):
    return (4 if flags & _V1_FLAG_PRIORITY else 0) + (4 if flags & _V1_FLAG_TYPE else 0)


def firstFrameVersion(data, v2MaxLength=DEFAULT_V2_MAX_LENGTH):
    """
    ``1`` or ``2`` once ``data`` (a client's first bytes) is recognisably
    the first frame of that generation, ``NEED_MORE`` (None) while a prefix
    could still be either, ``NEITHER`` (0) when it is neither.  Decides on
    at most 8 bytes; never raises.
    """
    n = len(data)
    v1 = v2 = True
    if n >= 1:
        v1 = data[0] == 0
        v2 = data[0] <= (v2MaxLength >> 16)
    if n >= 3:
        v1 = v1 and data[2] & ~0x07 == 0 and data[1] == _v1Length(data[2])
        v2 = v2 and (data[0] << 16 | data[1] << 8 | data[2]) <= v2MaxLength
    if n >= 4:
        v1 = v1 and data[3] == V1_SYN_TYPE
        v2 = v2 and data[3] in _V2_SYN_BYTES
    if n >= 5 and data[4] & 0x80:
        return NEITHER
    if not (v1 or v2):
        return NEITHER
    if n < 8:
        return NEED_MORE
    if not data[7] & 1:
        return NEITHER
    return 1 if v1 else 2


# Byte values a muxado client's connection can start with (either generation).
def firstBytes(v2MaxLength=DEFAULT_V2_MAX_LENGTH):
    return frozenset(range(min(v2MaxLength >> 16, 0xFF) + 1))


def likelyVersion(data):
    """
    For a first frame that is neither generation's opening: the generation
    whose GOAWAY should answer it.  v1 headers have byte 3 below 0x10 (types
    1-6); v2's at or above, for every type but RST (which no client opens
    with).
    """
    return 1 if len(data) >= 4 and data[3] < 0x10 else 2
