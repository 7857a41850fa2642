# -*- test-case-name: raftmux.test.test_memberlist_codec -*-
"""
The LZW flavour memberlist compresses with: Go's ``compress/lzw`` in LSB
order with 8-bit literals (clear code 256, end code 257, codes 9 to 12
bits wide, a clear code emitted when the table is full).

Go memberlist turns compression on by default (``EnableCompression``), so
every Go peer may send us ``compressMsg`` packets and compressed streams:
reading them is required, writing them is what Go does by default.
Decompression is bounded by ``maxOutput`` because a few bytes of LZW can
expand a thousandfold.
"""

LIT_WIDTH = 8
CLEAR = 1 << LIT_WIDTH
EOF = CLEAR + 1
MAX_WIDTH = 12
MAX_CODE = (1 << MAX_WIDTH) - 1


class LZWError(ValueError):
    """Compressed data that Go's reader would refuse (or that is too large)."""


def compress(data):
    """``data`` compressed as Go's ``lzw.NewWriter(w, lzw.LSB, 8)`` does."""
    out = bytearray()
    bits = 0
    nBits = 0
    width = LIT_WIDTH + 1
    hi = EOF
    overflow = 1 << width
    table: dict[bytes, int] = {}

    def emit(code):
        nonlocal bits, nBits
        bits |= code << nBits
        nBits += width
        while nBits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nBits -= 8

    emit(CLEAR)
    if not data:
        emit(EOF)
        if nBits:
            out.append(bits & 0xFF)
        return bytes(out)
    code = data[0]
    for literal in data[1:]:
        key = (code << 8) | literal
        found = table.get(key)
        if found is not None:
            code = found
            continue
        emit(code)
        code = literal
        # incHi: the next code's width grows once hi reaches the overflow
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == MAX_CODE:
            emit(CLEAR)
            width = LIT_WIDTH + 1
            hi = EOF
            overflow = 1 << width
            table.clear()
            continue
        table[key] = hi
    emit(code)
    hi += 1
    if hi == overflow:
        width += 1
        overflow <<= 1
    if hi == MAX_CODE:
        emit(CLEAR)
        width = LIT_WIDTH + 1
    emit(EOF)
    if nBits:
        out.append(bits & 0xFF)
    return bytes(out)


def decompress(data, maxOutput):
    """
    Inverse of ``compress`` (and of Go's writer).  Raises ``LZWError`` for
    data Go's reader refuses (an invalid code, no end code) or whose output
    would pass ``maxOutput`` bytes.
    """
    out = bytearray()
    bits = 0
    nBits = 0
    width = LIT_WIDTH + 1
    hi = EOF
    overflow = 1 << width
    last = None
    entries: dict[int, bytes] = {}  # code -> bytes, for codes above EOF
    pos = 0
    n = len(data)
    while True:
        while nBits < width:
            if pos >= n:
                raise LZWError("lzw: unexpected end of data")
            bits |= data[pos] << nBits
            pos += 1
            nBits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        nBits -= width
        if code < CLEAR:
            entry = bytes((code,))
        elif code == CLEAR:
            width = LIT_WIDTH + 1
            hi = EOF
            overflow = 1 << width
            last = None
            entries.clear()
            continue
        elif code == EOF:
            return bytes(out)
        elif code == hi and last is not None:
            entry = last + last[:1]
        elif code <= hi and code in entries:
            entry = entries[code]
        else:
            raise LZWError("lzw: invalid code")
        out += entry
        if len(out) > maxOutput:
            raise LZWError("lzw: output larger than %d bytes" % (maxOutput,))
        if last is not None:
            entries[hi] = last + entry[:1]
        last = entry
        hi += 1
        if hi >= overflow:
            if width == MAX_WIDTH:
                last = None
                hi -= 1
            else:
                width += 1
                overflow <<= 1
