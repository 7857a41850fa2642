# -*- test-case-name: raftmux.test.test_sniff_matchers -*-
"""
Just enough of a TLS ClientHello parser to read SNI and ALPN (RFC 8446
section 4.1.2, RFC 6066 section 3, RFC 7301), sans-IO.  Every length is
checked against its container; anything out of line is ``NO_MATCH``,
never an exception.
"""

from collections import namedtuple

from raftmux.sniff import _results

MATCH, NO_MATCH, NEED_MORE = _results.MATCH, _results.NO_MATCH, _results.NEED_MORE

CONTENT_HANDSHAKE = 0x16
HANDSHAKE_CLIENT_HELLO = 0x01
EXT_SERVER_NAME = 0x0000
EXT_ALPN = 0x0010
MAX_RECORD = 1 << 14
RECORD_HEADER = 5
RECORD_START = RECORD_HEADER + 1
MAX_HELLO_BYTES = RECORD_HEADER + MAX_RECORD
# Real ClientHellos, post-quantum key shares included, are a few KiB; a
# claimed length beyond this is garbage, refused without waiting for it.
MAX_HELLO_LENGTH = 1 << 16

ClientHello = namedtuple("ClientHello", ["serverName", "alpn"])


def recordStart(data):
    """
    Is ``data`` the start of a handshake record carrying a ClientHello?
    Decides from the first byte on: ``16``, ``03``, record version 00..04,
    a length of 1..2^14, handshake type ``01``.
    """
    n = len(data)
    if n >= 1 and data[0] != CONTENT_HANDSHAKE:
        return NO_MATCH
    if n >= 2 and data[1] != 3:
        return NO_MATCH
    if n >= 3 and data[2] > 4:
        return NO_MATCH
    if n >= 4 and data[3] > MAX_RECORD >> 8:
        return NO_MATCH
    if n >= 5 and not 1 <= (data[3] << 8 | data[4]) <= MAX_RECORD:
        return NO_MATCH
    if n < RECORD_START:
        return NEED_MORE
    return MATCH if data[5] == HANDSHAKE_CLIENT_HELLO else NO_MATCH


def parseClientHello(data):
    """
    A ``ClientHello(serverName, alpn)`` from the handshake records at the
    start of ``data`` (the hello may span records), or ``NEED_MORE`` /
    ``NO_MATCH``.
    """
    pieces = []
    have = 0
    pos = 0
    while True:
        if len(data) - pos < RECORD_HEADER:
            return NEED_MORE
        if data[pos] != CONTENT_HANDSHAKE or data[pos + 1] != 3 or data[pos + 2] > 4:
            return NO_MATCH
        length = data[pos + 3] << 8 | data[pos + 4]
        if not 1 <= length <= MAX_RECORD:
            return NO_MATCH
        end = pos + RECORD_HEADER + length
        if len(data) < end:
            return NEED_MORE
        pieces.append(data[pos + RECORD_HEADER:end])
        have += length
        pos = end
        if have < 4:
            continue
        handshake = b"".join(pieces)
        if handshake[0] != HANDSHAKE_CLIENT_HELLO:
            return NO_MATCH
        helloLength = handshake[1] << 16 | handshake[2] << 8 | handshake[3]
        if helloLength > MAX_HELLO_LENGTH:
            return NO_MATCH
        if have >= 4 + helloLength:
            return _parseHelloBody(handshake[4:4 + helloLength])


class _Short(Exception):
    """A length pointed past its container."""


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data, pos=0, end=None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n):
        if self.pos + n > self.end:
            raise _Short()
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self, n):
        return int.from_bytes(self.take(n), "big")

    def sub(self, lengthBytes):
        n = self.int(lengthBytes)
        if self.pos + n > self.end:
            raise _Short()
        reader = _Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return reader

    def left(self):
        return self.end - self.pos


def _parseHelloBody(body):
    try:
        r = _Reader(body)
        r.take(2 + 32)  # legacy_version, random
        if r.sub(1).left() > 32:  # legacy_session_id
            return NO_MATCH
        suites = r.sub(2).left()
        if suites < 2 or suites % 2:
            return NO_MATCH
        if r.sub(1).left() < 1:  # legacy_compression_methods
            return NO_MATCH
        serverName, alpn = None, ()
        if r.left() == 0:
            return ClientHello(serverName, alpn)
        extensions = r.sub(2)
        if r.left():
            return NO_MATCH
        while extensions.left():
            kind = extensions.int(2)
            ext = extensions.sub(2)
            if kind == EXT_SERVER_NAME:
                names = ext.sub(2)
                while names.left():
                    nameType = names.int(1)
                    name = names.sub(2)
                    if nameType == 0 and serverName is None:
                        serverName = name.take(name.left())
            elif kind == EXT_ALPN:
                protocols = ext.sub(2)
                offered = []
                while protocols.left():
                    p = protocols.sub(1)
                    if not p.left():
                        return NO_MATCH
                    offered.append(p.take(p.left()))
                alpn = tuple(offered)
        return ClientHello(serverName, alpn)
    except _Short:
        return NO_MATCH
