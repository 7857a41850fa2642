# -*- test-case-name: raftmux.test.test_etcd_jsonpb -*-
"""
Protobuf messages as etcd 3.4's JSON gateway writes and reads them:
grpc-gateway v1's default marshaler, golang/protobuf 1.3's ``jsonpb``
with ``OrigName: true`` and ``EmitDefaults: false``.

Writing: proto field names as declared (``create_revision``, ``dbSize``,
``ID``), fields at their zero value left out, 64-bit integers as decimal
strings, bytes as standard base64 with padding, enums by name, compact,
with Go's escaping of ``<``, ``>``, ``&``, U+2028 and U+2029.  That is
``json_format.MessageToDict(preserving_proto_field_name=True)`` without
any of the "print defaults" options, which is why it does not depend on
the protobuf release (they changed name between 4.x and 5.x).

Reading is ours rather than ``json_format.Parse``, because jsonpb and
Python's parser disagree on what they accept: jsonpb takes the proto name
or the lowerCamel JSON name, ignores unknown fields and ``null`` values,
takes 64- and 32-bit integers as numbers or quoted numbers, enums by
name or number, and bytes only in standard base64 (newlines skipped), and
it reads one JSON value from the body and ignores what follows.  Errors
carry the text Go gives where it is easy to reproduce (wrong JSON types,
bad base64 with its offset, unknown enum names); a JSON syntax error
gets a message in Go's style, not always Go's exact words.
"""

import json

from google.protobuf import descriptor, json_format

__all__ = ["JSONError", "dumps", "loads", "iterLoads", "goJSON"]

_FD = descriptor.FieldDescriptor

_INT64 = {_FD.TYPE_INT64: "int64", _FD.TYPE_SINT64: "int64", _FD.TYPE_SFIXED64: "int64",
          _FD.TYPE_UINT64: "uint64", _FD.TYPE_FIXED64: "uint64"}
_INT32 = {_FD.TYPE_INT32: "int32", _FD.TYPE_SINT32: "int32", _FD.TYPE_SFIXED32: "int32",
          _FD.TYPE_UINT32: "uint32", _FD.TYPE_FIXED32: "uint32"}
_RANGES = {"int64": (-(1 << 63), (1 << 63) - 1), "uint64": (0, (1 << 64) - 1),
           "int32": (-(1 << 31), (1 << 31) - 1), "uint32": (0, (1 << 32) - 1)}

_B64 = {c: i for i, c in enumerate(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


class JSONError(ValueError):
    """A request body jsonpb would refuse; ``str()`` is Go's message."""


def goJSON(value):
    """``value`` as compact JSON escaped the way Go's encoder escapes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


def toDict(message):
    """``message`` as the gateway's JSON object (a dict)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def dumps(message):
    """``message`` as the gateway writes it (bytes)."""
    return goJSON(toDict(message)).encode("utf-8")


# -- reading -----------------------------------------------------------------

def _jsonKind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _typeError(value, goType):
    return JSONError("json: cannot unmarshal %s into Go value of type %s"
                     % (_jsonKind(value), goType))


_OBJECT = "map[string]json.RawMessage"


def _numberText(raw):
    return raw if isinstance(raw, str) else json.dumps(raw)


def _integer(value, kind):
    """jsonpb's integers: numbers, or numbers in quotes."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text, parse_float=_Float)
        except ValueError:
            first = text.lstrip(" \t\r\n")[:1]
            if not first:
                raise JSONError("unexpected end of JSON input")
            raise JSONError("invalid character %s looking for beginning of value"
                            % (_quoteChar(first),))
    if isinstance(value, bool) or not isinstance(value, (int, float, _Float)):
        raise _typeError(value, kind)
    if isinstance(value, (float, _Float)):
        raise JSONError("json: cannot unmarshal number %s into Go value of type %s"
                        % (value.text if isinstance(value, _Float) else value, kind))
    low, high = _RANGES[kind]
    if not low <= value <= high:
        raise JSONError("json: cannot unmarshal number %s into Go value of type %s"
                        % (int(value), kind))
    return int(value)


class _Float(float):
    """A JSON number with a fraction or exponent, with its text kept for errors."""

    def __new__(cls, text):
        self = float.__new__(cls, text)
        self.text = text
        return self


def _quoteChar(c):
    return "'%s'" % (c,) if c != "'" else "'\\''"


def goBase64(text):
    """Go's ``base64.StdEncoding`` decoding, with its error offsets."""
    src = text.encode("utf-8")
    out = bytearray()
    si = 0
    n = len(src)
    while True:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        trailing = None
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise JSONError("illegal base64 data at input byte %d" % (si - j,))
            c = src[si]
            si += 1
            v = _B64.get(c)
            if v is not None:
                dbuf[j] = v
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != 0x3D:
                raise JSONError("illegal base64 data at input byte %d" % (si - 1,))
            if j in (0, 1):
                raise JSONError("illegal base64 data at input byte %d" % (si - 1,))
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    raise JSONError("illegal base64 data at input byte %d" % (n,))
                if src[si] != 0x3D:
                    raise JSONError("illegal base64 data at input byte %d" % (si - 1,))
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                trailing = si
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        chunk = bytes(((val >> 16) & 0xFF, (val >> 8) & 0xFF, val & 0xFF))
        out += chunk[:dlen - 1]
        if trailing is not None:
            raise JSONError("illegal base64 data at input byte %d" % (trailing,))
        if dlen < 4:
            return bytes(out)


def _goTypeOf(field):
    if field.type == _FD.TYPE_MESSAGE:
        return _OBJECT
    if field.type == _FD.TYPE_BYTES:
        return "[]uint8"
    if field.type == _FD.TYPE_STRING:
        return "string"
    if field.type == _FD.TYPE_BOOL:
        return "bool"
    if field.type in _INT64:
        return _INT64[field.type]
    if field.type in _INT32:
        return _INT32[field.type]
    if field.type == _FD.TYPE_ENUM:
        package = field.enum_type.file.package
        name = field.enum_type.full_name[len(package) + 1:]
        return "%s.%s" % (package, name.replace(".", "_"))
    return "interface {}"


def _scalar(field, value):
    t = field.type
    if t == _FD.TYPE_BYTES:
        if not isinstance(value, str):
            raise _typeError(value, "[]uint8")
        return goBase64(value)
    if t == _FD.TYPE_STRING:
        if not isinstance(value, str):
            raise _typeError(value, "string")
        return value
    if t == _FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _typeError(value, "bool")
        return value
    if t in _INT64:
        return _integer(value, _INT64[t])
    if t in _INT32:
        return _integer(value, _INT32[t])
    if t == _FD.TYPE_ENUM:
        if isinstance(value, str):
            v = field.enum_type.values_by_name.get(value)
            if v is None:
                raise JSONError("unknown value %s for enum %s" % (
                    json.dumps(value), _goTypeOf(field)))
            return v.number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _typeError(value, _goTypeOf(field))
        return _integer(value, "int32")
    if t in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        if isinstance(value, str):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _typeError(value, "float64")
        return float(value)
    raise JSONError("unsupported field type %d" % (t,))


def _isRepeated(field):
    # protobuf >= 5 has is_repeated; 4.x only label (gone in 7.x).
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        return field.label == _FD.LABEL_REPEATED
    return repeated


def _fieldsByName(descriptor_):
    names = {}
    for f in descriptor_.fields:
        names[f.json_name] = f
    for f in descriptor_.fields:
        names[f.name] = f
    return names


_NAMES = {}


def _fill(message, value):
    """Set ``message`` from ``value`` (a decoded JSON object, or None)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _typeError(value, _OBJECT)
    d = message.DESCRIPTOR
    names = _NAMES.get(d.full_name)
    if names is None:
        names = _NAMES[d.full_name] = _fieldsByName(d)
    for key, item in value.items():
        field = names.get(key)
        if field is None or item is None:
            continue
        if _isRepeated(field):
            if not isinstance(item, list):
                raise _typeError(item, "[]json.RawMessage")
            target = getattr(message, field.name)
            del target[:]
            for element in item:
                if field.type == _FD.TYPE_MESSAGE:
                    _fill(target.add(), element)
                elif element is None:
                    target.append(field.default_value if field.type != _FD.TYPE_BYTES else b"")
                else:
                    target.append(_scalar(field, element))
        elif field.type == _FD.TYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()
            _fill(sub, item)
        else:
            setattr(message, field.name, _scalar(field, item))


def _syntaxError(text, pos):
    if pos >= len(text):
        return JSONError("unexpected EOF")
    return JSONError("invalid character %s looking for beginning of value"
                     % (_quoteChar(text[pos]),))


_DECODER = json.JSONDecoder(parse_float=_Float)


def _skipSpace(text, pos):
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def iterLoads(body, messageClass):
    """
    The messages of a streaming request body: one per JSON value, in order,
    as grpc-gateway's decoder reads them.  Raises L{JSONError} at the first
    value that does not parse (those before it have been yielded).
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise JSONError("invalid character in JSON input")
    pos = _skipSpace(text, 0)
    while pos < len(text):
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise _syntaxError(text, e.pos) from None
        message = messageClass()
        _fill(message, value)
        yield message
        pos = _skipSpace(text, end)


def loads(body, messageClass):
    """
    The message in a unary request body: the first JSON value (an empty
    body is an empty message), or L{JSONError}.
    """
    for message in iterLoads(body, messageClass):
        return message
    return messageClass()
