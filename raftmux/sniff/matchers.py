# -*- test-case-name: raftmux.test.test_sniff_matchers -*-
"""
Sans-IO matchers: each one looks at the bytes a connection has sent so far
and answers ``MATCH``, ``NO_MATCH`` or ``NEED_MORE``.

A matcher is any object with

* ``maxBytes``: the most bytes it may need before it can decide (the shell
  turns ``NEED_MORE`` into ``NO_MATCH`` once that many have arrived);
* ``match(data) -> MATCH | NO_MATCH | NEED_MORE``: pure, no I/O, no clock,
  and a function of ``data`` alone, so the shell may call it again with a
  longer buffer and hypothesis can test it;
* ``name``: a short label, used for logs and the ``route`` metric label;
* ``protocolName``: what a match means on the wire (``b"h2"``,
  ``b"http/1.1"``, ``b"tls"``, ``b"muxado"``) or ``None``; the shell uses
  ``b"h2"`` to hand a twisted.web ``Site`` straight to its HTTP/2 code;
* optionally ``firstBytes``: the byte values a matching connection can
  start with (a frozenset), or ``None`` for any; the shell does not ask
  the matcher about a connection that starts with another byte;
* optionally ``greeting(data) -> bytes``: bytes the shell writes to the
  client (at most once per connection) while this matcher is the one
  waiting; only ``http2HeaderField(..., sendSettings=True)`` has one.

Matchers never raise on any input (checked with hypothesis) and the
protocol matchers (``http1``, ``http2``, ``tls``, ``muxado``) never both
match the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hpack import Decoder
from hpack.exceptions import HPACKError

from raftmux.muxado.generation import DEFAULT_V2_MAX_LENGTH, NEITHER, firstFrameVersion
from raftmux.muxado.generation import firstBytes as muxadoFirstBytes
from raftmux.sniff import _h2, _results, _tls
from raftmux.sniff._results import Result

MATCH, NO_MATCH, NEED_MORE = _results.MATCH, _results.NO_MATCH, _results.NEED_MORE

DEFAULT_HEADER_BYTES = 4096


class Matcher:
    """Base class: subclasses set ``name`` and ``maxBytes`` and define ``match``."""

    name = "matcher"
    protocolName: bytes | None = None
    maxBytes = 0
    firstBytes: frozenset[int] | None = None

    def match(self, data: bytes) -> Result:
        raise NotImplementedError()

    def greeting(self, data: bytes) -> bytes:
        return b""

    def __repr__(self):
        return "<%s %s maxBytes=%d>" % (type(self).__name__, self.name, self.maxBytes)


class _AnyBytes(Matcher):
    name = "any"

    def match(self, data: bytes) -> Result:
        return MATCH


def anyBytes() -> Matcher:
    """
    Match every connection at once, even one that has sent nothing yet (cmux's
    ``Any()``): put it last, as a fallback, or first to disable sniffing.
    """
    return _AnyBytes()


class _Prefix(Matcher):
    name = "prefix"

    def __init__(self, prefixes):
        if not prefixes or not all(isinstance(p, bytes) and p for p in prefixes):
            raise ValueError("prefix() needs one or more non-empty bytes")
        self._prefixes = tuple(prefixes)
        self.maxBytes = max(len(p) for p in prefixes)
        self.firstBytes = frozenset(p[0] for p in prefixes)

    def match(self, data: bytes) -> Result:
        waiting = False
        for p in self._prefixes:
            if data.startswith(p):
                return MATCH
            if p.startswith(data):
                waiting = True
        return NEED_MORE if waiting else NO_MATCH


def prefix(*prefixes: bytes) -> Matcher:
    """
    Match when the connection starts with one of ``prefixes`` (bytes).  Unlike
    cmux it reads no byte past the longest prefix and decides as early as the
    bytes allow.
    """
    return _Prefix(prefixes)


# -- HTTP/1.x ----------------------------------------------------------------

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TCHAR_BYTES = frozenset(b for b in range(256) if re.fullmatch(_TCHAR, bytes([b])))
_TARGET = rb"[^\x00-\x20\x7f]"
_REQUEST_LINE = re.compile(_TCHAR + rb"+ " + _TARGET + rb"+ HTTP/1\.[0-9]\r?\n")
_PARTIAL_LINE = re.compile(
    _TCHAR + rb"*|"
    + _TCHAR + rb"+ " + _TARGET + rb"*|"
    + _TCHAR + rb"+ " + _TARGET + rb"+ (?:H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?")
_HEADER_LINE = re.compile(rb"(" + _TCHAR + rb"+):[ \t]*(.*?)[ \t]*\r?\n", re.DOTALL)


def _requestLine(data):
    """(result, end of the request line) for the start of ``data``."""
    m = _REQUEST_LINE.match(data)
    if m is not None:
        return MATCH, m.end()
    if b"\n" in data or _PARTIAL_LINE.fullmatch(data) is None:
        return NO_MATCH, 0
    return NEED_MORE, 0


class _HTTP1(Matcher):
    name = "http1"
    protocolName = b"http/1.1"
    firstBytes = _TCHAR_BYTES

    def __init__(self, maxBytes):
        self.maxBytes = maxBytes

    def match(self, data: bytes) -> Result:
        return _requestLine(data)[0]


def http1(maxBytes: int = DEFAULT_HEADER_BYTES) -> Matcher:
    """
    Match an HTTP/1.0 or 1.1 request line: any method token (PATCH included,
    unlike cmux's ``HTTP1Fast``), a target, ``HTTP/1.x`` and a line end.
    Bytes that cannot start such a line are rejected at once.
    """
    return _HTTP1(maxBytes)


def _asBytes(s):
    return s.encode("latin-1") if isinstance(s, str) else bytes(s)


def _valueMatches(found, value, valuePrefix):
    return found.startswith(value) if valuePrefix else found == value


class _HTTP1HeaderField(Matcher):
    name = "http1HeaderField"
    protocolName = b"http/1.1"
    firstBytes = _TCHAR_BYTES

    def __init__(self, name, value, valuePrefix, maxBytes):
        self._field = _asBytes(name).lower()
        self._value = _asBytes(value)
        self._valuePrefix = valuePrefix
        self.maxBytes = maxBytes

    def match(self, data: bytes) -> Result:
        result, pos = _requestLine(data)
        if result is not MATCH:
            return result
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                return NEED_MORE
            if data[pos:end] in (b"", b"\r"):
                return NO_MATCH  # end of the head: the field is absent
            m = _HEADER_LINE.match(data, pos, end + 1)
            if m is None:
                return NO_MATCH  # malformed line or obsolete folding
            if m.group(1).lower() == self._field:
                found = m.group(2)
                return MATCH if _valueMatches(found, self._value, self._valuePrefix) else NO_MATCH
            pos = end + 1


def http1HeaderField(name: bytes | str, value: bytes | str, valuePrefix: bool = False,
                     maxBytes: int = DEFAULT_HEADER_BYTES) -> Matcher:
    """
    Match an HTTP/1.x request whose first ``name`` header field (any case)
    has exactly ``value`` (or starts with it, with ``valuePrefix=True``).
    Decides on the line of that field; the request head after it is not
    needed.  A head longer than ``maxBytes`` does not match.
    """
    return _HTTP1HeaderField(name, value, valuePrefix, maxBytes)


# -- HTTP/2 ------------------------------------------------------------------


def _preface(data):
    if len(data) >= len(_h2.PREFACE):
        return MATCH if data.startswith(_h2.PREFACE) else NO_MATCH
    return NEED_MORE if _h2.PREFACE.startswith(data) else NO_MATCH


class _HTTP2(Matcher):
    name = "http2"
    protocolName = b"h2"
    firstBytes = frozenset(_h2.PREFACE[:1])
    maxBytes = len(_h2.PREFACE)

    def match(self, data: bytes) -> Result:
        return _preface(data)


def http2() -> Matcher:
    """
    Match the 24-byte HTTP/2 client connection preface (prior knowledge,
    h2c).  Needs nothing from the server, so it never waits on clients that
    wait for the server's SETTINGS.
    """
    return _HTTP2()


class _HTTP2HeaderField(Matcher):
    name = "http2HeaderField"
    protocolName = b"h2"
    firstBytes = _HTTP2.firstBytes

    def __init__(self, name, value, valuePrefix, sendSettings, maxBytes):
        self._field = _asBytes(name).lower()
        self._value = _asBytes(value)
        self._valuePrefix = valuePrefix
        self._sendSettings = sendSettings
        self.maxBytes = maxBytes

    def match(self, data: bytes) -> Result:
        prefaceResult = _preface(data)
        if prefaceResult is not MATCH:
            return prefaceResult
        block = _h2.firstHeaderBlock(data)
        if block is None:
            return NEED_MORE
        if block is _h2.BAD:
            return NO_MATCH
        try:
            fields = Decoder().decode(block, raw=True)
        except (HPACKError, ValueError, IndexError, UnicodeDecodeError):
            return NO_MATCH
        for name, value in fields:
            if name == self._field:
                return MATCH if _valueMatches(value, self._value, self._valuePrefix) else NO_MATCH
        return NO_MATCH

    def greeting(self, data: bytes) -> bytes:
        if self._sendSettings and _h2.sawClientSettings(data):
            return _h2.EMPTY_SETTINGS
        return b""


def http2HeaderField(name: bytes | str, value: bytes | str, valuePrefix: bool = False,
                     sendSettings: bool = False, maxBytes: int = DEFAULT_HEADER_BYTES) -> Matcher:
    """
    Match h2c whose first header block carries ``name`` (lower case on the
    wire) with ``value`` (or a value starting with it).  The block is
    decoded with ``hpack``; only the first field of that name counts.

    ``sendSettings=True`` is for clients (gRPC) that wait for the server's
    SETTINGS before they send HEADERS: once the client's SETTINGS has
    arrived the sniffer writes one empty SETTINGS frame, once per
    connection, and later removes the client's ACK of it from the bytes it
    hands on, so the real HTTP/2 server never sees an ACK it did not ask for
    (cmux forwards that ACK, and Go's server calls it a PROTOCOL_ERROR).
    """
    return _HTTP2HeaderField(name, value, valuePrefix, sendSettings, maxBytes)


# -- TLS ---------------------------------------------------------------------


class _TLS(Matcher):
    name = "tls"
    protocolName = b"tls"
    firstBytes = frozenset({_tls.CONTENT_HANDSHAKE})

    def __init__(self, serverNames, alpn, validate, maxBytes):
        self._serverNames = None if serverNames is None else frozenset(
            _asBytes(n).lower().rstrip(b".") for n in serverNames)
        self._alpn = None if alpn is None else tuple(_asBytes(p) for p in alpn)
        self._parse = validate or self._serverNames is not None or self._alpn is not None
        self.maxBytes = maxBytes if self._parse else _tls.RECORD_START

    def match(self, data: bytes) -> Result:
        start = _tls.recordStart(data)
        if start is not MATCH or not self._parse:
            return start
        hello = _tls.parseClientHello(data)
        if hello is NEED_MORE or hello is NO_MATCH:
            return hello
        if self._serverNames is not None:
            if hello.serverName is None or hello.serverName.lower() not in self._serverNames:
                return NO_MATCH
        if self._alpn is not None:
            if not any(p in hello.alpn for p in self._alpn):
                return NO_MATCH
        return MATCH


def tls(serverNames: Iterable[str] | None = None, alpn: Iterable[bytes] | None = None,
        validate: bool = True, maxBytes: int = _tls.MAX_HELLO_BYTES) -> Matcher:
    """
    Match a TLS connection: handshake records (``16 03 00..04``, a sane
    length) holding a well-formed ClientHello, parsed across records within
    ``maxBytes``.  Validating the whole hello means garbage behind a record
    header is refused here, under the sniff deadline, instead of leaving a
    TLS layer waiting for the rest of a bogus 16 MiB handshake message.
    ``validate=False`` decides on the first 6 bytes (cmux reads 3).

    With ``serverNames`` the SNI must be one of them (case-insensitive);
    with ``alpn`` the client must offer one of those protocols.
    """
    return _TLS(serverNames, alpn, validate, maxBytes)


# -- muxado ------------------------------------------------------------------

DEFAULT_MUXADO_WINDOW = DEFAULT_V2_MAX_LENGTH


class _Muxado(Matcher):
    name = "muxado"
    protocolName = b"muxado"
    maxBytes = 8

    def __init__(self, maxLength):
        self._maxLength = maxLength
        self.firstBytes = muxadoFirstBytes(maxLength)

    def match(self, data: bytes) -> Result:
        version = firstFrameVersion(data, self._maxLength)
        if version is None:
            return NEED_MORE
        return NO_MATCH if version == NEITHER else MATCH


def muxado(maxLength: int = DEFAULT_MUXADO_WINDOW) -> Matcher:
    """
    Match a muxado client's first frame, of either generation (see
    ``raftmux.muxado.generation``): v2's DATA with SYN (or SYN|FIN), v1's
    explicit SYN frame, on an odd stream ID with the R bit clear.  muxado
    has no preface, so this is a heuristic; a v2 payload length must fit the
    stream window (``maxLength``, muxado's default 256 KiB), which also keeps
    it disjoint from TLS (first byte 0x16) and HTTP (an ASCII letter).
    """
    return _Muxado(maxLength)
