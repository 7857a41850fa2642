# -*- test-case-name: raftmux.test.test_rafthttp_codec -*-
"""
rafthttp's stream encodings, sans-IO: bytes in, raftpb Messages out.

* The plain framing (spec 3.1) of the ``message`` stream: an 8-byte
  big-endian length, then the Message protobuf.  ``encodeMessage`` and
  ``MessageDecoder``.
* msgappv2 (spec 3.2), the ``msgapp`` stream: one-byte record types, with a
  ``(term, index)`` pair tracked on both sides so that a MsgApp continuing the
  previous one travels as its entries and commit only.  ``MsgAppV2Encoder``
  and ``MsgAppV2Decoder``.

Decoders follow one contract.  ``receiveData(data)`` takes any slice of the
stream (chunk boundaries mean nothing) and returns the messages completed by
it; an incomplete record waits for more.  A length prefix above ``maxSize``
raises ``SizeLimitExceeded`` as soon as its 8 bytes are in, before anything
is buffered for it, so a decoder holds at most about ``maxSize`` bytes
whatever the peer sends.  The first error kills the decoder: every later
call raises it again, because the stream is out of step and etcd drops the
connection too.  ``endOfStream()`` at EOF raises ``UnexpectedEOF`` if a
record was cut short: the stream reader must tell that apart from a clean
EOF (spec 2.4: only the latter leaves the peer active).

Messages are protobuf objects; equality of two messages is best judged as
``encode(a) == encode(b)`` (see ``raftmux.raftpb``).
"""

from struct import Struct
from typing import Any

from raftmux.raftpb import DecodeError, Message, MsgApp, MsgHeartbeat, encode

__all__ = [
    "READ_BYTES_LIMIT", "LINK_HEARTBEAT", "MSGAPPV2_LINK_HEARTBEAT",
    "CodecError", "SizeLimitExceeded", "MalformedMessage", "UnknownRecordType",
    "UnexpectedEOF",
    "isLinkHeartbeat", "linkHeartbeatMessage", "encodeMessage", "MessageDecoder",
    "MsgAppV2Encoder", "MsgAppV2Decoder",
]

# readBytesLimit: the largest Message etcd accepts on the message stream.
READ_BYTES_LIMIT = 512 * 1024 * 1024

_u64 = Struct(">Q")
_packU64 = _u64.pack
_unpackU64From = _u64.unpack_from

# msgappv2 record types.
_TYPE_LINK_HEARTBEAT = 0
_TYPE_APP_ENTRIES = 1
_TYPE_APP = 2

# The link heartbeat, Message{Type: MsgHeartbeat}, as the message stream
# carries it (38 bytes), and as msgappv2 carries it (1 byte).
_LINK_HEARTBEAT_BODY = encode(Message(type=MsgHeartbeat))
LINK_HEARTBEAT = _packU64(len(_LINK_HEARTBEAT_BODY)) + _LINK_HEARTBEAT_BODY
MSGAPPV2_LINK_HEARTBEAT = b"\x00"
# An all-zero Message with every always-written field present: what a
# rebuilt AppEntries MsgApp starts from, so it looks like a decoded one.
_EMPTY_MESSAGE = encode(Message())


class CodecError(Exception):
    """The stream cannot be decoded; the connection must be dropped."""


class SizeLimitExceeded(CodecError):
    """A length prefix is above the decoder's ``maxSize``."""

    def __init__(self, size, limit):
        self.size = size
        self.limit = limit
        # etcd's text for it (ErrExceedSizeLimit).
        super().__init__("rafthttp: error limit exceeded (%d > %d)" % (size, limit))


class MalformedMessage(CodecError):
    """A Message or Entry record whose protobuf does not parse."""


class UnknownRecordType(CodecError):
    """A msgappv2 record type other than 0, 1 and 2."""

    def __init__(self, recordType):
        self.recordType = recordType
        super().__init__("failed to parse type %d in msgappv2 stream" % (recordType,))


class UnexpectedEOF(CodecError):
    """The stream ended inside a record (Go's io.ErrUnexpectedEOF)."""


def isLinkHeartbeat(message):
    """etcd's test: a MsgHeartbeat with neither From nor To (spec 3.1)."""
    return (message.type == MsgHeartbeat and message.to == 0
            and getattr(message, "from") == 0)


def linkHeartbeatMessage():
    """A new link heartbeat Message, as decoded from etcd's bytes."""
    return Message.FromString(_LINK_HEARTBEAT_BODY)


def encodeMessage(message):
    """One Message in the plain framing: u64be length + etcd's protobuf."""
    body = encode(message)
    return _packU64(len(body)) + body


def _parse(cls, data):
    try:
        return cls.FromString(data)
    except DecodeError as e:
        raise MalformedMessage("bad %s protobuf: %s" % (cls.__name__, e)) from None


def _parseInto(message, data):
    try:
        message.MergeFromString(data)
    except DecodeError as e:
        raise MalformedMessage("bad %s protobuf: %s" % (type(message).__name__, e)) from None


def _varint(n):
    """A protobuf varint (for the length of an embedded Entry)."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _StreamDecoder:
    """
    The incremental machinery shared by both decoders.

    Records that arrive whole inside one ``receiveData`` call (the common
    case) are parsed straight from the data by ``_parseRecords``.  A record
    cut by the end of the data goes through ``_parser()``, a generator that
    yields how many bytes it needs next and is sent exactly that many; only
    that record's current piece is ever buffered.  Both paths make the same
    checks and build the same messages.  The generator sets
    ``self._boundary`` while it waits for the start of a record.
    """

    def __init__(self, maxSize):
        self.maxSize = maxSize
        self._buf = bytearray()
        self._out: list[Any] = []
        self._boundary = True
        self._dead = None
        self._parserGen = self._parser()
        self._need = next(self._parserGen)

    def receiveData(self, data):
        """Feed stream bytes; return the list of Messages they complete."""
        if self._dead is not None:
            raise self._dead
        if not isinstance(data, bytes):
            data = bytes(data)
        out: list[Any] = []
        self._out = out
        buf = self._buf
        send = self._parserGen.send
        need = self._need
        pos = 0
        end = len(data)
        try:
            while True:
                if self._boundary and not buf:
                    pos = self._parseRecords(data, pos, end, out)
                if buf:
                    take = min(need - len(buf), end - pos)
                    buf += data[pos:pos + take]
                    pos += take
                    if len(buf) < need:
                        break
                    piece = bytes(buf)
                    buf.clear()
                elif end - pos >= need:
                    piece = data[pos:pos + need]
                    pos += need
                else:
                    if pos < end:
                        buf += data[pos:]
                    break
                need = send(piece)
        except CodecError as e:
            self._dead = e
            self._buf = bytearray()
            raise
        self._need = need
        return out

    def endOfStream(self):
        """
        The stream ended.  Raise ``UnexpectedEOF`` if it ended inside a
        record (the reader must count that as a failure); return quietly on
        a clean end, or if the decoder had already failed.
        """
        if self._dead is not None:
            return
        if self._buf or not self._boundary:
            self._dead = UnexpectedEOF(
                "stream ended inside a record (%d bytes of a piece received)" % (len(self._buf),))
            raise self._dead

    @property
    def bufferedBytes(self):
        """How many bytes are held for an incomplete piece."""
        return len(self._buf)

    def _checkSize(self, size):
        if size > self.maxSize:
            raise SizeLimitExceeded(size, self.maxSize)

    def _parseRecords(self, data, pos, end, out):
        """Parse the whole records in ``data[pos:end]``; return where they end."""
        return pos

    def _parser(self):
        raise NotImplementedError()


class MessageDecoder(_StreamDecoder):
    """
    The plain framing's decoder (the ``message`` stream, etcd's
    ``messageDecoder``).  ``maxSize`` defaults to etcd's 512 MiB.
    An empty body is a valid all-zero Message, as in Go.
    """

    def __init__(self, maxSize=READ_BYTES_LIMIT):
        super().__init__(maxSize)

    def _parseRecords(self, data, pos, end, out):
        maxSize = self.maxSize
        while end - pos >= 8:
            size = _unpackU64From(data, pos)[0]
            if size > maxSize:
                raise SizeLimitExceeded(size, maxSize)
            start = pos + 8
            if end - start < size:
                break
            pos = start + size
            out.append(_parse(Message, data[start:pos]))
        return pos

    def _parser(self):
        while True:
            self._boundary = True
            header = yield 8
            self._boundary = False
            size = _unpackU64From(header)[0]
            self._checkSize(size)
            body = yield size
            # (Never put a yield inside self._out.append(...): the bound
            # method would be looked up before the yield, on an old list.)
            self._out.append(_parse(Message, body))


class MsgAppV2Encoder:
    """
    etcd's ``msgAppV2Encoder``: one per connection, ``term`` and ``index``
    starting at 0.  ``encode(message)`` returns the record for a MsgApp or a
    link heartbeat and updates the state; the writer sends the records in
    the order they were made.
    """

    def __init__(self):
        self.term = 0
        self.index = 0

    def encode(self, message):
        if isLinkHeartbeat(message):
            return MSGAPPV2_LINK_HEARTBEAT
        if message.type != MsgApp:
            # Go would happily send, say, a MsgHeartbeat at index 0 as an
            # AppEntries record, which the far side rebuilds as a MsgApp.
            # rafthttp only routes MsgApp here (spec 5); refuse the rest.
            raise ValueError("only MsgApp and link heartbeats go on msgappv2, not type %d"
                             % (message.type,))
        entries = message.entries
        if (self.index == message.index and self.term == message.logTerm
                and message.logTerm == message.term):
            parts = [b"\x01", _packU64(len(entries))]
            for entry in entries:
                data = encode(entry)
                parts.append(_packU64(len(data)))
                parts.append(data)
            parts.append(_packU64(message.commit))
            self.index += len(entries)
            return b"".join(parts)
        body = encode(message)
        self.term = message.term
        self.index = entries[-1].Index if entries else message.index
        return b"\x02" + _packU64(len(body)) + body


# What follows the entries in a rebuilt MsgApp: the empty snapshot, reject
# and rejectHint (commit is set afterwards).
_APP_ENTRIES_TAIL = _EMPTY_MESSAGE[_EMPTY_MESSAGE.index(b"\x4a"):]


class MsgAppV2Decoder(_StreamDecoder):
    """
    etcd's ``msgAppV2Decoder`` for the stream from ``remoteID`` to
    ``localID``: AppEntries records are rebuilt into MsgApps from those IDs
    and the tracked ``(term, index)``.

    etcd itself checks no size on this stream; ``maxSize`` (default 512 MiB,
    as on the message stream) caps a full Message record and the total size
    of an AppEntries record, so the entries held for one record are bounded.
    """

    def __init__(self, localID, remoteID, maxSize=READ_BYTES_LIMIT):
        self.localID = localID
        self.remoteID = remoteID
        self.term = 0
        self.index = 0
        self._appEntriesHead = b"\x08\x03\x10%s\x18%s" % (_varint(localID), _varint(remoteID))
        super().__init__(maxSize)

    def _appEntries(self, blobs, commit):
        """
        The MsgApp an AppEntries record stands for, built as protobuf bytes
        and parsed once (cheaper than setting fields one by one); advances
        the tracked index past its entries.
        """
        parts = [self._appEntriesHead]
        for blob in blobs:
            parts.append(b"\x3a")
            parts.append(_varint(len(blob)))
            parts.append(blob)
        parts.append(_APP_ENTRIES_TAIL)
        message = _parse(Message, b"".join(parts))
        message.term = message.logTerm = self.term
        message.index = self.index
        message.commit = commit
        self.index += len(blobs)
        return message

    def _app(self, body):
        message = _parse(Message, body)
        self.term = message.term
        entries = message.entries
        self.index = entries[-1].Index if entries else message.index
        return message

    def _parseRecords(self, data, pos, end, out):
        maxSize = self.maxSize
        while pos < end:
            recordType = data[pos]
            if recordType == _TYPE_LINK_HEARTBEAT:
                out.append(linkHeartbeatMessage())
                pos += 1
            elif recordType == _TYPE_APP_ENTRIES:
                if end - pos < 17:
                    break
                count = _unpackU64From(data, pos + 1)[0]
                total = 8 * count + 16
                if total > maxSize:
                    break
                p = pos + 9
                blobs = []
                for _ in range(count):
                    if end - p < 8:
                        return pos
                    size = _unpackU64From(data, p)[0]
                    total += size
                    p += 8
                    if total > maxSize or end - p < size:
                        return pos
                    blobs.append(data[p:p + size])
                    p += size
                if end - p < 8:
                    break
                out.append(self._appEntries(blobs, _unpackU64From(data, p)[0]))
                pos = p + 8
            elif recordType == _TYPE_APP:
                if end - pos < 9:
                    break
                size = _unpackU64From(data, pos + 1)[0]
                start = pos + 9
                if size > maxSize or end - start < size:
                    break
                pos = start + size
                out.append(self._app(data[start:pos]))
            else:
                break
        # Anything left (a cut record, or an error) goes to _parser().
        return pos

    def _parser(self):
        maxSize = self.maxSize
        while True:
            self._boundary = True
            recordType = (yield 1)[0]
            self._boundary = False
            if recordType == _TYPE_LINK_HEARTBEAT:
                self._out.append(linkHeartbeatMessage())
            elif recordType == _TYPE_APP_ENTRIES:
                count = _unpackU64From((yield 8))[0]
                # Every entry takes at least its 8-byte length, plus 8 for
                # the count and 8 for the commit: a count that cannot fit
                # is refused before any entry is read.
                total = 8 * count + 16
                self._checkSize(total)
                blobs = []
                for _ in range(count):
                    size = _unpackU64From((yield 8))[0]
                    total += size
                    if total > maxSize:
                        raise SizeLimitExceeded(total, maxSize)
                    blob = yield size
                    blobs.append(blob)
                commit = _unpackU64From((yield 8))[0]
                self._out.append(self._appEntries(blobs, commit))
            elif recordType == _TYPE_APP:
                size = _unpackU64From((yield 8))[0]
                self._checkSize(size)
                body = yield size
                self._out.append(self._app(body))
            else:
                raise UnknownRecordType(recordType)
