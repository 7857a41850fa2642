# -*- test-case-name: raftmux.test.test_h2_validate -*-
"""
The checks RFC 9113 (8.2, 8.3) asks of a received header block, as
``h2``'s ``validate_inbound_headers`` makes them, but cheaper: the checks
on one field (its characters, case, surrounding whitespace, ``te``,
connection-specific fields) are remembered for fields seen before, so a
peer that sends the same fields on every request (every client does)
costs a dictionary lookup per field; the checks on the block as a whole
(pseudo-header fields: known, not repeated, first, the ones a request or a
response needs; ``:authority``/``host``; an empty ``:path``) run every
time.  A test checks that it accepts and refuses what h2 does.

The answer is an error message (the block is malformed: a stream error
PROTOCOL_ERROR, RFC 9113 8.1.1) or None.  h2 makes the same findings a
connection error; one bad request should not end every other stream.
"""

import re

__all__ = ["checkRequest", "checkResponse", "checkTrailers"]

_BAD_NAME = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_CONNECTION = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                         b"transfer-encoding", b"upgrade"})
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":status",
                     b":protocol"})
_REQUEST_ONLY = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_WHITESPACE = (0x20, 0x09)

#: fields that passed, remembered (only short ones; emptied when full)
_checked = {}
CACHE_SIZE = 4096
CACHE_FIELD = 256


def fieldError(name, value):
    """What is wrong with one field on its own, or None."""
    if not name:
        return "empty field name"
    if _BAD_NAME.search(name):
        return "illegal character in field name %r" % (name,)
    if name.find(b":", 1) != -1:
        return "illegal ':' in field name %r" % (name,)
    if value:
        if _BAD_VALUE.search(value):
            return "illegal character in the value of %r" % (name,)
        if value[0] in _WHITESPACE or value[-1] in _WHITESPACE:
            return "whitespace around the value of %r" % (name,)
    if name == b"te" and value.lower() != b"trailers":
        return "te other than trailers: %r" % (value,)
    if name in _CONNECTION:
        return "connection-specific field %r" % (name,)
    return None


def _fields(headers):
    """Check every field; return (error, pseudo fields in order as a dict)."""
    checked = _checked
    pseudo = {}
    regular = False
    for field in headers:
        if field not in checked:
            name, value = field
            error = fieldError(name, value)
            if error is not None:
                return error, None
            if len(name) + len(value) <= CACHE_FIELD:
                if len(checked) >= CACHE_SIZE:
                    checked.clear()
                checked[(name, value)] = True
        name = field[0]
        if name[0] == 0x3A:  # ':'
            if regular:
                return "pseudo-header field %r after a regular one" % (name,), None
            if name in pseudo:
                return "repeated pseudo-header field %r" % (name,), None
            if name not in _PSEUDO:
                return "unknown pseudo-header field %r" % (name,), None
            pseudo[name] = field[1]
        else:
            regular = True
    return None, pseudo


def checkRequest(headers):
    """A request's header block: None if well formed, else what is wrong."""
    error, pseudo = _fields(headers)
    if error is not None:
        return error
    method = pseudo.get(b":method")
    if method is None:
        return "no :method"
    if b":status" in pseudo:
        return ":status in a request"
    connect = method == b"CONNECT"
    if connect and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            return "no :scheme or :path"
        if not connect and b":protocol" in pseudo:
            return ":protocol outside CONNECT"
    if b":path" in pseudo and not pseudo[b":path"]:
        return "empty :path"
    authority = pseudo.get(b":authority")
    host = None
    for name, value in headers:
        if name == b"host":
            if host is not None:
                return "more than one host field"
            host = value
    if authority is None and host is None:
        return "neither :authority nor host"
    if authority is not None and host is not None and authority != host:
        return ":authority and host differ"
    return None


def checkResponse(headers):
    """A response's (or a 1xx's) header block: None if well formed, else what is wrong."""
    error, pseudo = _fields(headers)
    if error is not None:
        return error
    if b":status" not in pseudo:
        return "no :status"
    for name in pseudo:
        if name in _REQUEST_ONLY:
            return "request pseudo-header field %r in a response" % (name,)
    return None


def checkTrailers(headers):
    """A trailing header block: None if well formed, else what is wrong."""
    error, pseudo = _fields(headers)
    if error is not None:
        return error
    if pseudo:
        return "pseudo-header field in trailers"
    return None
