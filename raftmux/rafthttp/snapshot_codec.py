# -*- test-case-name: raftmux.test.test_rafthttp_codec_snapshot -*-
"""
The body of ``POST /raft/snapshot`` (spec 3.3), sans-IO::

    u64be N | N bytes: the MsgSnap Message | the raw database, until EOF

``SnapshotBodyDecoder`` turns the body, in pieces of any size, into one
``SnapshotMessage`` event and then ``SnapshotData`` events carrying the
database bytes as they arrive, for the caller to write to a file.  Only the
MsgSnap itself is ever buffered (at most ``maxMessageSize``); database bytes
are handed on in the pieces they came in, so a 10 GiB database costs no more
memory than a 10 KiB one.

``encodeSnapshotHead`` and ``snapshotBody`` build the body on the sending
side.

Errors map to etcd's replies (spec 1.8): a ``CodecError`` other than
``WrongMessageType`` is 400 ``failed to decode raft message (<err>)``,
``WrongMessageType`` is 400 ``wrong raft message type``.
"""

from struct import Struct
from typing import Any

from raftmux.rafthttp.codec import (
    READ_BYTES_LIMIT,
    CodecError,
    MalformedMessage,
    SizeLimitExceeded,
    UnexpectedEOF,
    encodeMessage,
)
from raftmux.raftpb import DecodeError, Message, MsgSnap

__all__ = [
    "SnapshotMessage", "SnapshotData", "SnapshotBodyDecoder", "WrongMessageType",
    "encodeSnapshotHead", "snapshotBody",
]

_u64 = Struct(">Q")

_HEADER = 0
_MESSAGE = 1
_DATABASE = 2


class WrongMessageType(CodecError):
    """The body's Message is not a MsgSnap."""

    def __init__(self, messageType):
        self.messageType = messageType
        super().__init__("wrong raft message type %d" % (messageType,))


class SnapshotMessage:
    """The body's MsgSnap, decoded; always the first event."""

    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return "<SnapshotMessage index=%d term=%d>" % (
            self.message.snapshot.metadata.index, self.message.snapshot.metadata.term)


class SnapshotData:
    """A piece of the database, in stream order."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __repr__(self):
        return "<SnapshotData %d bytes>" % (len(self.data),)


class SnapshotBodyDecoder:
    """
    Bytes of a snapshot body in, ``SnapshotMessage`` then ``SnapshotData``
    events out.  ``maxMessageSize`` bounds the MsgSnap part; etcd's bound is
    2^63 (none), ours defaults to the message stream's 512 MiB, far above a
    real MsgSnap (its ``Snapshot.data`` is the small v2 store).  After an
    error the decoder is dead.  Call ``endOfBody()`` at the end of the
    request body.
    """

    def __init__(self, maxMessageSize=READ_BYTES_LIMIT):
        self.maxMessageSize = maxMessageSize
        self.message = None
        self.databaseSize = 0
        self._state = _HEADER
        self._need = 8
        self._buf = bytearray()
        self._dead = None

    def receiveData(self, data):
        """Feed body bytes; return the events they complete."""
        if self._dead is not None:
            raise self._dead
        if self._state == _DATABASE:
            if not data:
                return []
            self.databaseSize += len(data)
            return [SnapshotData(bytes(data))]
        try:
            return self._receiveHead(memoryview(data))
        except CodecError as e:
            self._dead = e
            self._buf = bytearray()
            raise

    def _receiveHead(self, data):
        events: list[Any] = []
        pos = 0
        end = len(data)
        while self._state != _DATABASE:
            buf = self._buf
            take = min(self._need - len(buf), end - pos)
            buf += data[pos:pos + take]
            pos += take
            if len(buf) < self._need:
                return events
            if self._state == _HEADER:
                size = _u64.unpack(buf)[0]
                if size > self.maxMessageSize:
                    raise SizeLimitExceeded(size, self.maxMessageSize)
                self._buf = bytearray()
                self._state = _MESSAGE
                self._need = size
            else:
                try:
                    message = Message.FromString(bytes(buf))
                except DecodeError as e:
                    raise MalformedMessage("bad Message protobuf: %s" % (e,)) from None
                self._buf = bytearray()
                if message.type != MsgSnap:
                    raise WrongMessageType(message.type)
                self.message = message
                self._state = _DATABASE
                events.append(SnapshotMessage(message))
        if pos < end:
            rest = bytes(data[pos:])
            self.databaseSize += len(rest)
            events.append(SnapshotData(rest))
        return events

    def endOfBody(self):
        """
        The body ended.  Raise ``UnexpectedEOF`` if the MsgSnap was not
        complete; otherwise return the number of database bytes received.
        """
        if self._dead is not None:
            raise self._dead
        if self._state != _DATABASE:
            self._dead = UnexpectedEOF(
                "snapshot body ended inside its message (%d bytes of a piece of %d)"
                % (len(self._buf), self._need))
            raise self._dead
        return self.databaseSize


def encodeSnapshotHead(message):
    """The body's first part: u64be length + the MsgSnap as etcd encodes it."""
    if message.type != MsgSnap:
        raise ValueError("a snapshot body carries a MsgSnap, not type %d" % (message.type,))
    return encodeMessage(message)


def snapshotBody(message, databaseFile, size=None, chunkSize=65536):
    """
    Yield a whole snapshot body: the head, then ``databaseFile`` (a binary
    file object) in pieces of at most ``chunkSize`` bytes.  Like etcd's
    sender, when ``size`` is given a database that turns out shorter or
    longer raises ``ValueError`` (after what was read has been yielded, so
    the upload must then be aborted, not finished).
    """
    yield encodeSnapshotHead(message)
    sent = 0
    while True:
        want = chunkSize if size is None else min(chunkSize, size - sent)
        if want <= 0:
            break
        chunk = databaseFile.read(want)
        if not chunk:
            break
        sent += len(chunk)
        yield chunk
    if size is not None:
        if sent < size:
            raise ValueError("database ended after %d of %d bytes" % (sent, size))
        if databaseFile.read(1):
            raise ValueError("database is longer than %d bytes" % (size,))
