# -*- test-case-name: raftmux.test.test_h2_hpack -*-
"""
An HPACK encoder whose output depends on the header fields alone, so the
encoding of each field can be cached.

h2's per-request cost was mostly HPACK encoding (a search of the dynamic
table and Huffman coding for every field of every request).  This encoder
never inserts into the dynamic table: a field found whole in the static
table is sent as its index, any other as a literal *without indexing*
(with the static table's name index where there is one).  The peer's
decoder state then never changes, so a field's bytes are the same every
time and are kept in a bounded cache.  Header blocks get a little larger
than with a dynamic table (the values of repeated custom fields are sent
each time), which costs nothing measurable next to the CPU saved.

Dynamic table size updates (the peer lowering SETTINGS_HEADER_TABLE_SIZE)
are still signalled at the start of the next block, as RFC 7541 4.2 asks.
"""

from hpack import Encoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

#: fields whose encoding is kept; the cache is emptied when it is full
CACHE_SIZE = 4096

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

_STATIC_FIELD = {}
_STATIC_NAME = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_FIELD.setdefault((_name, _value), _index)
    _STATIC_NAME.setdefault(_name, _index)


def encodeInteger(value, prefixBits, flags=0):
    """RFC 7541 5.1: ``value`` on a ``prefixBits`` prefix, ``flags`` in the high bits."""
    limit = (1 << prefixBits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encodeString(data):
    """RFC 7541 5.2: Huffman-coded when that is shorter."""
    coded = _huffman.encode(data)
    if len(coded) < len(data):
        return encodeInteger(len(coded), 7, 0x80) + coded
    return encodeInteger(len(data), 7) + data


def encodeField(name, value):
    """One field, never touching the dynamic table."""
    index = _STATIC_FIELD.get((name, value))
    if index is not None:
        return encodeInteger(index, 7, 0x80)
    index = _STATIC_NAME.get(name)
    if index is not None:
        return encodeInteger(index, 4) + encodeString(value)
    return b"\x00" + encodeString(name) + encodeString(value)


class CachingEncoder(Encoder):
    """
    A drop-in ``hpack.Encoder`` for ``h2``'s ``H2Connection.encoder``.
    Fields must be bytes (h2 passes what the caller gave it; the shell sends
    bytes only).
    """

    def __init__(self, cacheSize=CACHE_SIZE):
        Encoder.__init__(self)
        self._cache = {}
        self._cacheSize = cacheSize

    def encode(self, headers, huffman=True):
        parts = []
        table = self.header_table
        if table.resized:
            for size in self.table_size_changes:
                parts.append(encodeInteger(size, 5, 0x20))
            self.table_size_changes = []
            table.resized = False
        if isinstance(headers, dict):
            headers = headers.items()
        cache = self._cache
        for field in headers:
            key = (field[0], field[1])
            encoded = cache.get(key)
            if encoded is None:
                name, value = key
                if isinstance(name, str):
                    name = name.encode("utf-8")
                if isinstance(value, str):
                    value = value.encode("utf-8")
                encoded = encodeField(name, value)
                if len(cache) >= self._cacheSize:
                    cache.clear()
                cache[key] = encoded
            parts.append(encoded)
        return b"".join(parts)
