# -*- test-case-name: raftmux.test.test_h2_hpack -*-
"""
An HPACK encoder that caches the encoding of each header field.

h2's per-request cost was mostly HPACK: hpack's encoder searches its
dynamic table and Huffman-codes every field of every request, and its
decoder Huffman-decodes every literal.  This encoder makes a field's bytes
depend only on the field and on a dynamic table that changes rarely, so
they can be cached:

* a field found whole in the static table is sent as its index;
* a field sent before (a repeated ``:path``, ``:authority``,
  ``content-type``...) is inserted into the dynamic table the second time,
  if it fits without evicting anything, and sent as its index from then on
  (an index the peer's decoder resolves without decoding a string);
* any other field is a literal *without indexing*, its value sent plain
  (Huffman-decoding it cost the peer more than the bytes saved);
* ``authorization``, ``cookie`` and the like are never indexed.

Entries are never evicted by us, so an entry's index only moves when a
newer one is inserted; the cache is emptied at each insertion and each
table resize (the peer's SETTINGS_HEADER_TABLE_SIZE), which stop happening
once the connection's repeated fields are in.  Table size updates are
signalled at the start of the next block, as RFC 7541 4.2 asks.
"""

from hpack import Decoder, Encoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

#: fields whose encoding (or count of uses) is kept; emptied when full
CACHE_SIZE = 4096
#: fields never put in the dynamic table and sent as never-indexed literals
SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_STATIC_COUNT = len(HeaderTable.STATIC_TABLE)

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


def encodeString(data, huffman=False):
    """RFC 7541 5.2: plain, or Huffman-coded when asked and shorter."""
    if huffman:
        coded = _huffman.encode(data)
        if len(coded) < len(data):
            return encodeInteger(len(coded), 7, 0x80) + coded
    return encodeInteger(len(data), 7) + data


def _literal(name, value, flags, prefixBits, huffman):
    index = _STATIC_NAME.get(name)
    if index is not None:
        return encodeInteger(index, prefixBits, flags) + encodeString(value, huffman)
    return bytes([flags]) + encodeString(name, huffman) + encodeString(value, huffman)


def entrySize(name, value):
    """RFC 7541 4.1: what an entry costs in the dynamic table."""
    return 32 + len(name) + len(value)


class CachingEncoder(Encoder):
    """
    A drop-in ``hpack.Encoder`` for ``h2``'s ``H2Connection.encoder``
    (h2 sets ``header_table_size`` from the peer's SETTINGS; ``encode`` is
    the only other call it makes).  Fields are bytes (or str, encoded
    UTF-8).
    """

    def __init__(self, cacheSize=CACHE_SIZE):
        Encoder.__init__(self)
        self._cacheSize = cacheSize
        self._cache = {}
        self._seen = {}
        self._entries = []      # (name, value, size), oldest first
        self._order = {}        # (name, value) -> insertion number
        self._inserted = 0
        self._size = 0

    @property
    def dynamicEntries(self):
        """The dynamic table as the peer's decoder holds it, newest first."""
        return [(name, value) for name, value, _ in reversed(self._entries)]

    def encode(self, headers, huffman=True):
        parts = []
        if self.header_table.resized:
            self._resized(parts)
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
                encoded, cacheable = self._encodeField(name, value)
                if cacheable:
                    if len(cache) >= self._cacheSize:
                        cache.clear()
                    cache[key] = encoded
                else:
                    cache = self._cache  # emptied by an insertion
            parts.append(encoded)
        return b"".join(parts)

    def _encodeField(self, name, value):
        """The bytes of one field, and whether they stay valid until the table changes."""
        key = (name, value)
        index = _STATIC_FIELD.get(key)
        if index is not None:
            return encodeInteger(index, 7, 0x80), True
        order = self._order.get(key)
        if order is not None:
            return encodeInteger(_STATIC_COUNT + 1 + self._inserted - order, 7, 0x80), True
        if name in SENSITIVE:
            return _literal(name, value, 0x10, 4, False), True
        literal = _literal(name, value, 0x00, 4, False)
        seen = self._seen
        if key not in seen:
            # First sighting: not cached, so that a second one is noticed.
            if len(seen) >= self._cacheSize:
                seen.clear()
            seen[key] = True
            return literal, False
        del seen[key]
        if self._size + entrySize(name, value) <= self.header_table.maxsize:
            return self._insert(name, value), False
        return literal, True

    def _insert(self, name, value):
        """Literal with incremental indexing: the peer adds it to its table, as we do."""
        size = entrySize(name, value)
        self._inserted += 1
        self._order[(name, value)] = self._inserted
        self._entries.append((name, value, size))
        self._size += size
        self._cache = {}  # every dynamic index moved by one
        return _literal(name, value, 0x40, 6, True)

    def _resized(self, parts):
        """The peer changed SETTINGS_HEADER_TABLE_SIZE: signal it, evict as the decoder will."""
        table = self.header_table
        for size in self.table_size_changes:
            parts.append(encodeInteger(size, 5, 0x20))
            while self._size > size and self._entries:
                name, value, entry = self._entries.pop(0)
                self._size -= entry
                del self._order[(name, value)]
        self.table_size_changes = []
        table.resized = False
        self._cache = {}


#: header blocks whose decoding is kept, and the largest kept
DECODE_CACHE_SIZE = 1024
DECODE_CACHE_BLOCK = 1024


class CachingDecoder(Decoder):
    """
    ``hpack.Decoder`` remembering the decoding of header blocks that left
    its dynamic table as it was (blocks of indexed fields and literals
    without indexing: what a peer sends once its repeated fields are in its
    table).  Such a block decodes to the same fields as long as the table
    is unchanged, which the cache checks (its length, its newest entry, its
    size limit) before answering from memory.
    """

    def __init__(self, max_header_list_size=65536):
        Decoder.__init__(self, max_header_list_size=max_header_list_size)
        self._decoded = {}

    def _tableState(self):
        table = self.header_table
        entries = table.dynamic_entries
        return (len(entries), id(entries[0]) if entries else 0, table.maxsize,
                self.max_header_list_size)

    def decode(self, data, raw=False):
        key = (data, raw)
        cached = self._decoded.get(key)
        state = self._tableState()
        if cached is not None and cached[0] == state:
            return list(cached[1])
        headers = super().decode(data, raw)
        if len(data) <= DECODE_CACHE_BLOCK and self._tableState() == state:
            if len(self._decoded) >= DECODE_CACHE_SIZE:
                self._decoded.clear()
            self._decoded[(bytes(data), raw)] = (state, tuple(headers))
        return headers
