"""
Fuzz targets for rafthttp's codecs: the message stream's framing,
msgappv2, and the snapshot body (decoder and the reader that saves it).
"""

import io
import os
import shutil
import tempfile

from raftmux import raftpb
from raftmux.fuzz import target
from raftmux.fuzz._support import check, pieces, split
from raftmux.rafthttp.codec import (
    CodecError,
    MessageDecoder,
    MsgAppV2Decoder,
    MsgAppV2Encoder,
    encodeMessage,
    isLinkHeartbeat,
    linkHeartbeatMessage,
)
from raftmux.rafthttp.snapshot import receiveSnapshot, snapshotPath
from raftmux.rafthttp.snapshot_codec import (
    SnapshotBodyDecoder,
    SnapshotData,
    SnapshotMessage,
    encodeSnapshotHead,
)
from raftmux.raftpb import Entry, Message, encode

MAX_SIZE = 1 << 16
LOCAL, REMOTE = 2, 1


def _h(text):
    return bytes.fromhex(text.replace(" ", ""))


def _message(**fields):
    sender = fields.pop("from_", None)
    m = Message(**fields)
    if sender is not None:
        setattr(m, "from", sender)
    return m


# Spec 14.1 and 14.2, as the codec tests use them.
HEARTBEAT_FRAMED = _h(
    "00 00 00 00 00 00 00 1e 08 08 10 02 18 01 20 05 28 00 30 00 40 03 4a 0a 12 08 0a 02 28 00"
    " 10 00 18 00 50 00 58 00")
FULL_APP_RECORD = _h(
    "02 00 00 00 00 00 00 00 26 08 03 10 02 18 01 20 02 28 01 30 02 3a 06 08 00 10 02 18 03"
    " 40 02 4a 0a 12 08 0a 02 28 00 10 00 18 00 50 00 58 00")
HELLO_RECORD = _h(
    "01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 0d 08 00 10 02 18 04 22 05 68 65 6c 6c 6f"
    " 00 00 00 00 00 00 00 03")
COMMIT_RECORD = _h("01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 04")


def _decodeAll(make, chunks, end=True):
    """(encoded messages, error class) from a fresh decoder fed ``chunks``."""
    decoder = make()
    out = []
    error = None
    try:
        for chunk in chunks:
            out += decoder.receiveData(chunk)
            check(decoder.bufferedBytes <= decoder.maxSize + 17,
                  "decoder holds %d bytes (max message %d)", decoder.bufferedBytes,
                  decoder.maxSize)
        if end:
            decoder.endOfStream()
    except CodecError as e:
        error = type(e)
        try:
            decoder.receiveData(b"\x00")
        except CodecError:
            pass
        else:
            raise AssertionError("a dead decoder decoded again")
    return [encode(m) for m in out], error, decoder


def _sameOutcome(whole, chunked):
    check(whole[1] == chunked[1], "chunking changed the error: %r vs %r", whole[1], chunked[1])
    if whole[1] is None:
        check(whole[0] == chunked[0], "chunking changed the messages")


@target("rafthttp-message-stream", """
    MessageDecoder (u64 length + Message): only CodecError; a length over
    maxSize refused before its body; at most one record buffered; any
    chunking gives the same messages; every message re-encodes (encodeMessage)
    to a record that decodes to it.""",
        seeds=lambda: [b"\x00" + HEARTBEAT_FRAMED, b"\x01" + HEARTBEAT_FRAMED * 2,
                       b"\x07" + encodeMessage(_message(type=raftpb.MsgApp, to=2, from_=1,
                                                        entries=[Entry(Index=1, Data=b"x")])),
                       b"\x00" + b"\x00" * 7 + b"\x00"])
def rafthttpMessageStream(data):
    control, wire = split(data)
    make = lambda: MessageDecoder(maxSize=MAX_SIZE)  # noqa: E731
    whole = _decodeAll(make, [wire])
    chunked = _decodeAll(make, pieces(wire, control))
    _sameOutcome(whole, chunked)
    if whole[0]:
        again = _decodeAll(make, [b"".join(encodeMessage(Message.FromString(m))
                                           for m in whole[0])])
        check(again[1] is None and again[0] == whole[0], "round trip changed the messages")


def _canonical(message):
    """Does msgappv2 carry ``message`` without loss (a MsgApp between our two IDs)?"""
    if isLinkHeartbeat(message):
        return encode(message) == encode(linkHeartbeatMessage())
    if message.type != raftpb.MsgApp:
        return False
    rebuilt = _message(type=raftpb.MsgApp, to=LOCAL, from_=REMOTE, term=message.term,
                       logTerm=message.logTerm, index=message.index, commit=message.commit,
                       entries=list(message.entries))
    return encode(rebuilt) == encode(message)


@target("rafthttp-msgappv2", """
    MsgAppV2Decoder: only CodecError; sizes over maxSize refused; at most
    one record piece buffered; any chunking gives the same messages; a
    stream of MsgApps between the two IDs re-encodes with MsgAppV2Encoder
    and decodes to the same messages.""",
        seeds=lambda: [b"\x00" + b"\x00" + FULL_APP_RECORD + HELLO_RECORD + b"\x00" + COMMIT_RECORD,
                       b"\x01" + FULL_APP_RECORD, b"\x09" + HELLO_RECORD + COMMIT_RECORD])
def rafthttpMsgAppV2(data):
    control, wire = split(data)
    make = lambda: MsgAppV2Decoder(LOCAL, REMOTE, maxSize=MAX_SIZE)  # noqa: E731
    whole = _decodeAll(make, [wire])
    chunked = _decodeAll(make, pieces(wire, control))
    _sameOutcome(whole, chunked)
    messages = [Message.FromString(m) for m in whole[0]]
    if not messages or not all(_canonical(m) for m in messages):
        return
    encoder = MsgAppV2Encoder()
    records = b"".join(encoder.encode(m) for m in messages)
    again = _decodeAll(make, [records])
    check(again[1] is None, "our own msgappv2 records do not decode: %r", again[1])
    check(again[0] == whole[0], "msgappv2 round trip changed the messages")


def _snapshotSeed(index, database):
    m = _message(type=raftpb.MsgSnap, to=2, from_=1, term=3)
    m.snapshot.metadata.index = index
    m.snapshot.metadata.term = 3
    m.snapshot.metadata.conf_state.voters.extend([1, 2, 3])
    m.snapshot.data = b"v2 store"
    return encodeSnapshotHead(m) + database


def _scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="raftmux-fuzz-", dir=base)


@target("rafthttp-snapshot-body", """
    SnapshotBodyDecoder and receiveSnapshot (the reader that saves the
    database): only CodecError; the MsgSnap size bounded before it is read;
    any chunking gives the same message and database bytes; a failed read
    leaves no file behind, a good one leaves exactly the database.""",
        seeds=lambda: [b"\x00" + _snapshotSeed(5, b"database bytes"),
                       b"\x03" + _snapshotSeed(0x1122, b""), b"\x01" + _snapshotSeed(9, b"x" * 50)])
def rafthttpSnapshotBody(data):
    control, body = split(data)

    def decode(chunks):
        decoder = SnapshotBodyDecoder(maxMessageSize=MAX_SIZE)
        message, database, error = None, b"", None
        try:
            for chunk in chunks:
                for event in decoder.receiveData(chunk):
                    if isinstance(event, SnapshotMessage):
                        check(message is None, "two SnapshotMessage events")
                        message = encode(event.message)
                    else:
                        check(isinstance(event, SnapshotData) and message is not None,
                              "%r before the message", event)
                        database += event.data
            size = decoder.endOfBody()
            check(size == len(database), "endOfBody says %d database bytes, events %d",
                  size, len(database))
        except CodecError as e:
            error = type(e)
        return message, database, error

    whole = decode([body])
    chunked = decode(pieces(body, control))
    check(whole == chunked, "chunking changed the snapshot body's meaning")
    directory = _scratch()
    try:
        try:
            message, path, size = receiveSnapshot(io.BytesIO(body), directory, MAX_SIZE)
        except CodecError as e:
            check(whole[2] is type(e), "the reader failed with %r, the decoder with %r",
                  e, whole[2])
            check(os.listdir(directory) == [], "a failed read left %s", os.listdir(directory))
            return
        check(whole[2] is None, "the reader accepted what the decoder refused")
        expected = snapshotPath(directory, message.snapshot.metadata.index)
        check(path == expected and os.listdir(directory) == [os.path.basename(expected)],
              "the reader left %s", os.listdir(directory))
        with open(path, "rb") as f:
            check(f.read() == whole[1], "the saved database differs from the body")
        check(size == len(whole[1]), "the reader counted %d bytes", size)
    finally:
        shutil.rmtree(directory, ignore_errors=True)



@target("rafthttp-headers", """
    The peer request headers rafthttp parses (X-Server-From and other IDs,
    X-Server-Version and X-Min-Cluster-Version): an ID parses to a u64 that
    formats back to the same hex, or to None, never raising; a version pair
    is compatible, incompatible or MalformedVersion, nothing else.""",
        seeds=lambda: [b"8e9e05c52164694d\x003.4.23\x003.0.0", b"0\x002.3.7\x00",
                       b"ffffffffffffffff\x003.4.23-rc.1+abc\x003.4.0"])
def rafthttpHeaders(data):
    from raftmux.rafthttp.headers import (
        MalformedVersion,
        checkVersionCompatibility,
        supportsStreams,
    )
    from raftmux.rafthttp.ids import formatID, parseID

    fields = data.split(b"\x00")
    sender, server, minimum = (fields + [None, None])[:3]
    parsed = parseID(sender)
    if parsed is not None:
        check(0 <= parsed < 1 << 64, "ID %r parsed to %r", sender, parsed)
        check(formatID(parsed) == (sender.lower().lstrip(b"0") or b"0").decode(),
              "ID %r formats back as %r", sender, formatID(parsed))
    try:
        result = checkVersionCompatibility(server, minimum)
        check(result in (True, False), "compatibility is %r", result)
        supportsStreams(server)
    except MalformedVersion:
        pass
