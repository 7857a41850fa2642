# -*- test-case-name: raftmux.test.test_memberlist_codec -*-
"""
memberlist's stream (TCP) messages: reading one from bytes as they arrive,
and writing one.

A stream carries one message and no length prefix: a type byte, then
msgpack values read one after another (Go decodes straight off the
connection), then raw user bytes whose length a header announced.  So the
reader must parse to know where a message ends; ``StreamDecoder.feed``
keeps the values it has decoded, retries only the incomplete one, and
refuses a declared size past ``maxBytes`` before the bytes arrive.

Types on streams: pushPull (6: ``PushPullHeader``, ``Nodes`` ``PushNodeState``
values, ``UserStateLen`` bytes), userMsg (8: ``UserMsgHeader`` then the
bytes), ping (0) and ack (2) for the TCP fallback probe, errMsg (13), and
compressMsg (9: one msgpack ``Compress`` whose LZW holds a whole message of
the other types).  Encrypted streams (10) are refused.
"""

from typing import Any

from raftmux.memberlist.messages import (
    MAX_PUSH_STATE_BYTES,
    Ack,
    Compress,
    DecodeError,
    ErrResp,
    MessageType,
    Ping,
    PushNodeState,
    PushPull,
    PushPullHeader,
    UserMsgHeader,
    UserStream,
    compressMessage,
    decompressStruct,
    unpackOne,
)

_SIMPLE: dict[int, Any] = {MessageType.PING: Ping, MessageType.ACK: Ack, MessageType.ERR: ErrResp}
#: the smallest a PushNodeState can be on the wire (a 7-entry fixmap with its keys)
_MIN_NODE_STATE = 50

# What _value and _raw return while the bytes are not all there (a decoded
# msgpack nil is None, so None cannot mean "wait").
_INCOMPLETE = object()


def encodeStream(message, compress=False):
    """Bytes for one stream message; ``compress`` wraps it as Go does when compression is on."""
    data = message.encode()
    if compress:
        return compressMessage(data)
    return data


class StreamDecoder:
    """
    ``feed(data)`` returns the message once complete (a ``PushPull``,
    ``UserStream``, ``Ping``, ``Ack`` or ``ErrResp``), else ``None``.
    Raises ``DecodeError`` for bad or oversized input, and stays failed.
    Bytes after the message are ignored, as Go ignores them.
    """

    def __init__(self, maxBytes=MAX_PUSH_STATE_BYTES):
        self.maxBytes = maxBytes
        self._buf = bytearray()
        self._pos = 0
        self._type = None
        self._header = None
        self._nodes = []
        self._result = None
        self._error = None
        self._compressed = False

    def feed(self, data):
        if self._error is not None:
            raise self._error
        if self._result is not None:
            return self._result
        self._buf += data
        if len(self._buf) > self.maxBytes:
            self._fail(DecodeError("stream message larger than %d bytes" % self.maxBytes))
        try:
            self._result = self._parse(final=False)
        except DecodeError as e:
            self._fail(e)
        if self._result is not None:
            self._buf = bytearray()
        return self._result

    def _fail(self, error):
        self._error = error
        self._buf = bytearray()
        raise error

    def _parse(self, final):
        buf = self._buf
        if self._type is None:
            if len(buf) <= self._pos:
                self._incomplete(final)
                return None
            self._type = buf[self._pos]
            self._pos += 1
            if self._type == MessageType.ENCRYPT:
                raise DecodeError("Remote state is encrypted and encryption is not configured")
            if self._type == MessageType.COMPRESS:
                if self._compressed:
                    raise DecodeError("compressed message inside a compressed message")
                self._compressed = True
        msgType = self._type
        if msgType == MessageType.COMPRESS:
            value = self._value(final)
            if value is _INCOMPLETE:
                return None
            inner = decompressStruct(Compress.fromWire(value), self.maxBytes)
            # the compressed message must be whole: decode it as a stream that has ended
            self._buf = bytearray(inner)
            self._pos = 0
            self._type = None
            return self._parse(final=True)
        if msgType in _SIMPLE:
            value = self._value(final)
            if value is _INCOMPLETE:
                return None
            return _SIMPLE[msgType].fromWire(value)
        if msgType == MessageType.USER:
            if self._header is None:
                value = self._value(final)
                if value is _INCOMPLETE:
                    return None
                self._header = UserMsgHeader.fromWire(value)
                self._checkLength(self._header.userMsgLen)
            data = self._raw(self._header.userMsgLen, final)
            if data is _INCOMPLETE:
                return None
            return UserStream(data)
        if msgType == MessageType.PUSH_PULL:
            if self._header is None:
                value = self._value(final)
                if value is _INCOMPLETE:
                    return None
                header = PushPullHeader.fromWire(value)
                self._checkLength(header.userStateLen)
                if header.nodes < 0 or header.nodes * _MIN_NODE_STATE > self.maxBytes:
                    raise DecodeError("push/pull header declares %d nodes" % header.nodes)
                self._header = header
            while len(self._nodes) < self._header.nodes:
                value = self._value(final)
                if value is _INCOMPLETE:
                    return None
                self._nodes.append(PushNodeState.fromWire(value))
            data = self._raw(self._header.userStateLen, final)
            if data is _INCOMPLETE:
                return None
            return PushPull(join=self._header.join, nodes=self._nodes, userState=data)
        raise DecodeError("Received invalid msgType (%d)" % (msgType,))

    def _checkLength(self, n):
        if n < 0 or n > self.maxBytes:
            raise DecodeError("declared length %d is out of bounds" % (n,))

    def _incomplete(self, final):
        if final:
            raise DecodeError("truncated stream message")
        return _INCOMPLETE

    def _value(self, final):
        result = unpackOne(self._buf, self._pos)
        if result is None:
            return self._incomplete(final)
        value, self._pos = result
        return value

    def _raw(self, n, final):
        if len(self._buf) - self._pos < n:
            return self._incomplete(final)
        data = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return data
