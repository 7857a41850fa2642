"""
Fuzz targets for muxado, both generations: the frame decoders, the sans-IO
sessions (``MuxadoConnection``, ``MuxadoV1Connection``) driven by peer bytes
and local calls, and the Twisted ``MuxadoSession`` over a StringTransport.
"""

from struct import Struct

from prometheus_client import CollectorRegistry

from raftmux.fuzz import target
from raftmux.fuzz._support import Budget, LogFailures, check, pieces, runClock, split
from raftmux.muxado import connection as v2events
from raftmux.muxado import frames as v2
from raftmux.muxado import v1frames as v1
from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.connection import MuxadoConnection
from raftmux.muxado.errors import ErrorCode, FrameEncodeError, ProtocolError
from raftmux.muxado.v1connection import MuxadoV1Connection

_u16 = Struct(">H")

# Golden vectors of the spec (muxado.md section 11 and Appendix A), as the
# frame tests use them.
def _h(text):
    return bytes.fromhex(text.replace(" ", ""))


V2_VECTORS = [
    _h("00000513 00000001 68656c6c6f"),                   # SYN|FIN "hello"
    _h("00000512 00000003 68656c6c6f 00000011 00000003"),  # SYN, then FIN
    _h("00000420 00000001 000003e8"),                      # WNDINC 1000
    _h("00000830 00000000 00000003 00000000"),             # GOAWAY
    _h("00000400 00000001 00000004"),                      # RST
    v2.encodeGoAway(3, 0, b"bye") + _h("00000910 00000003") + b"123456789",
    _h("00000550 00000001 68656c6c6f"),                   # unknown type 5
]
V1_VECTORS = [
    _h("00000001 00000003"),                               # SYN
    _h("00080701 00000003 7fffffff fffffeff"),             # SYN|FIN, priority and type
    _h("00000001 00000003 00040003 00000003 70696e67"),    # SYN, DATA "ping"
    _h("00040004 00000003 000003e8"),                      # WNDINC
    _h("00040002 00000003 00000007"),                      # RST
    _h("00100006 00000000 00000003 00000000") + b"no error",  # GOAWAY (Go's length)
    _h("00050103 00000003 68656c6c6f"),                   # DATA|FIN
]


# -- frame decoders ---------------------------------------------------------------

def _merge(decoded, generation):
    """DATA pieces joined per frame; every frame as a comparable tuple."""
    out = []
    for f in decoded:
        kind = type(f).__name__
        if kind == "Data":
            if f.first:
                out.append(["data", f.streamId, f.flags, b"", f.length])
            check(out and out[-1][0] == "data", "a DATA piece without its first piece")
            out[-1][3] += bytes(f.data)
            if f.last:
                check(len(out[-1][3]) == f.length, "DATA pieces add up to %d, not %d",
                      len(out[-1][3]), f.length)
        elif kind == "Syn":
            out.append(("syn", f.streamId, f.flags, f.priority, f.streamType))
        elif kind == "Rst":
            out.append(("rst", f.streamId, f.code))
        elif kind == "WndInc":
            out.append(("wndinc", f.streamId, f.increment))
        elif kind == "GoAway":
            out.append(("goaway", f.lastStreamId, f.code, bytes(f.debug)))
        elif kind == "Unknown":
            out.append(("unknown", f.frameType, f.flags, f.streamId, f.length))
        else:
            raise AssertionError("unexpected frame %r" % (f,))
    return [tuple(x) for x in out]


def _decode(module, chunks, maxDebug):
    """(merged frames, error) from feeding ``chunks`` to a fresh decoder."""
    decoder = module.FrameDecoder(maxDebug)
    bound = module.HEADER_SIZE + 8 + min(maxDebug, getattr(module, "MAX_GOAWAY_DEBUG", maxDebug))
    frames = []
    error = None
    for chunk in chunks:
        try:
            frames += decoder.receiveData(chunk)
        except ProtocolError as e:
            check(isinstance(e.code, ErrorCode), "ProtocolError without an ErrorCode: %r", e.code)
            frames += getattr(e, "decoded", [])
            error = e
            break
        check(decoder.bufferedBytes <= bound, "decoder holds %d bytes (bound %d)",
              decoder.bufferedBytes, bound)
    if error is not None:
        # A dead decoder stays dead.
        try:
            decoder.receiveData(b"\x00" * 8)
        except ProtocolError as again:
            check(again.code == error.code, "a dead decoder changed its error")
        else:
            raise AssertionError("a dead decoder decoded again")
    return frames, error


def _reencode(module, frame):
    """The bytes a merged frame encodes to, or None when our encoder refuses it."""
    kind = frame[0]
    try:
        if kind == "data":
            _, streamId, flags, payload, _ = frame
            if module is v2:
                return v2.encodeHeader(len(payload), v2.TYPE_DATA, flags, streamId) + payload
            return v1.encodeHeader(len(payload), v1.TYPE_DATA, flags, streamId) + payload
        if kind == "syn":
            _, streamId, flags, priority, streamType = frame
            return v1.encodeSyn(streamId, priority, streamType, fin=bool(flags & v1.FLAG_FIN))
        if kind == "rst":
            return module.encodeRst(frame[1], frame[2])
        if kind == "wndinc":
            return module.encodeWndInc(frame[1], frame[2])
        if kind == "goaway":
            return module.encodeGoAway(frame[1], frame[2], frame[3])
    except FrameEncodeError:
        return None
    return None


def _normal(frame):
    """What a re-encoded frame must keep (the encoders leave out zero SYN fields)."""
    if frame[0] == "syn":
        _, streamId, flags, priority, streamType = frame
        return ("syn", streamId, flags & v1.FLAG_FIN, priority or None, streamType or None)
    return frame


def _frames(data, module):
    control, wire = split(data)
    maxDebug = 64 if control & 0x80 else 65536
    whole, wholeError = _decode(module, [wire], maxDebug)
    chunked, chunkedError = _decode(module, pieces(wire, control & 0x7F), maxDebug)
    check((wholeError is None) == (chunkedError is None) and (
        wholeError is None or wholeError.code == chunkedError.code),
        "chunking changed the outcome: %r vs %r", wholeError, chunkedError)
    wholeFrames = _merge(whole, module)
    chunkedFrames = _merge(chunked, module)
    if wholeError is None or module is v1:
        # v1 keeps the frames decoded before an error; v2 drops that call's.
        check(wholeFrames == chunkedFrames, "chunking changed the frames")
    for frame in wholeFrames:
        if frame[0] == "data" and len(frame[3]) < frame[4]:
            continue  # cut short by the end of the input
        wire = _reencode(module, frame)
        if wire is None:
            continue
        again, error = _decode(module, [wire], maxDebug)
        check(error is None, "our own encoding of %r does not decode: %r", frame, error)
        check([_normal(f) for f in _merge(again, module)] == [_normal(frame)],
              "round trip changed %r", frame)


@target("muxado-v2-frames", """
    v2 FrameDecoder: only ProtocolError (with a muxado code); any chunking
    decodes the same frames and error; at most a header + GOAWAY body
    buffered; every decoded frame our encoders accept re-encodes and decodes
    to itself.""", seeds=lambda: [b"\x00" + v for v in V2_VECTORS] + [b"\x03" + b"".join(V2_VECTORS)])
def muxadoV2Frames(data):
    _frames(data, v2)


@target("muxado-v1-frames", """
    v1 FrameDecoder: only ProtocolError (with a muxado code); any chunking
    decodes the same frames and error; at most a header or fixed body
    buffered; every decoded frame our encoders accept re-encodes and decodes
    to itself.""", seeds=lambda: [b"\x00" + v for v in V1_VECTORS] + [b"\x05" + b"".join(V1_VECTORS)])
def muxadoV1Frames(data):
    _frames(data, v1)


# -- sans-IO connections -----------------------------------------------------------

class _Generation:
    def __init__(self, connectionClass, module, maxStreams):
        self.connectionClass = connectionClass
        self.module = module
        self.maxStreams = maxStreams


_V2 = _Generation(MuxadoConnection, v2, 8)
_V1 = _Generation(MuxadoV1Connection, v1, 8)

_RECEIVE, _OPEN, _SEND, _ACK, _END, _CLOSE, _RESET, _GOAWAY = range(8)


class _Ops:
    """Reads the op program after the control byte."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def more(self):
        return self.pos < len(self.data)

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self):
        return (self.byte() << 8) | self.byte()

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class _PeerView:
    """
    What the peer allowed and what we sent, per stream, from both byte
    streams decoded independently: our DATA on a stream may never pass its
    window plus the peer's WNDINCs, and our output must always decode.
    """

    def __init__(self, generation, window):
        self.module = generation.module
        self.window = window
        self.inbound = generation.module.FrameDecoder()
        self.outbound = generation.module.FrameDecoder()
        self.inboundDead = False
        self.credit = {}
        self.sent = {}
        self.goAwaySent = False

    def peerSent(self, data):
        if self.inboundDead:
            return
        try:
            frames = self.inbound.receiveData(data)
        except ProtocolError as e:
            frames = getattr(e, "decoded", [])
            self.inboundDead = True
        for f in frames:
            if type(f).__name__ == "WndInc":
                self.credit[f.streamId] = self.credit.get(f.streamId, 0) + f.increment

    def weSent(self, data, v2Rules):
        try:
            frames = self.outbound.receiveData(data)
        except ProtocolError as e:
            raise AssertionError("our own output does not decode: %s" % (e,))
        for f in frames:
            kind = type(f).__name__
            if v2Rules:
                check(not self.goAwaySent, "%r sent after our GOAWAY", f)
            if kind == "GoAway":
                self.goAwaySent = True
            elif kind == "Data":
                n = self.sent.get(f.streamId, 0) + len(f.data)
                self.sent[f.streamId] = n
                check(n <= self.window + self.credit.get(f.streamId, 0),
                      "sent %d bytes on stream %d; the peer allowed %d", n, f.streamId,
                      self.window + self.credit.get(f.streamId, 0))


def _connection(data, generation):
    control, program = split(data)
    client = bool(control & 1)
    conn = generation.connectionClass(client, maxIncomingStreams=generation.maxStreams,
                                      maxGoAwayDebug=64)
    window = conn.window
    view = _PeerView(generation, window)
    unacked = {}
    ops = _Ops(program)
    budget = Budget(10000)
    terminated = False
    v2Rules = generation is _V2
    while ops.more():
        budget.step()
        op = ops.byte() % 8
        ids = conn.streamIds()
        pick = ids[ops.byte() % len(ids)] if ids and op not in (_RECEIVE, _OPEN, _GOAWAY) else None
        if op == _RECEIVE:
            chunk = ops.take(ops.u16())
            view.peerSent(chunk)
            events = conn.receiveData(chunk)
            if terminated:
                check(events == [], "events after the session was terminated")
            for event in events:
                if isinstance(event, v2events.DataReceived):
                    unacked[event.streamId] = unacked.get(event.streamId, 0) + len(event.data)
                elif isinstance(event, v2events.ConnectionTerminated):
                    check(isinstance(event.code, int), "terminated without a code")
                    terminated = True
                    check(event is events[-1], "events after ConnectionTerminated")
        elif op == _OPEN:
            try:
                if generation is _V1:
                    conn.openStream(ops.byte() or None, ops.byte() or None)
                else:
                    conn.openStream()
            except ValueError:
                pass
        elif pick is not None and op == _SEND:
            conn.sendData(pick, b"x" * (ops.byte() * 97))
        elif pick is not None and op == _ACK:
            n = min(ops.u16(), unacked.get(pick, 0))
            unacked[pick] = unacked.get(pick, 0) - n
            conn.acknowledgeReceivedData(pick, n)
        elif pick is not None and op == _END:
            conn.endStream(pick)
        elif pick is not None and op == _CLOSE:
            conn.closeStream(pick)
        elif pick is not None and op == _RESET:
            conn.resetStream(pick)
        elif op == _GOAWAY:
            conn.goAway(ErrorCode.NO_ERROR, b"fuzz")
        remote = [i for i in conn.streamIds() if not conn.isLocal(i)]
        check(len(remote) <= generation.maxStreams, "%d peer streams open (limit %d)",
              len(remote), generation.maxStreams)
        out = b"".join(conn.dataToSend())
        view.weSent(out, v2Rules)


def _connectionSeeds(vectors, client):
    seeds = []
    for vector in vectors:
        seeds.append(bytes([client]) + bytes([_RECEIVE]) + _u16.pack(len(vector)) + vector)
    program = bytes([_OPEN, _SEND, 0, 50, _RECEIVE]) + _u16.pack(len(vectors[0])) + vectors[0]
    program += bytes([_ACK, 0, 0, 5, _END, 0, _GOAWAY])
    seeds.append(bytes([client]) + program)
    return seeds


@target("muxado-v2-connection", """
    MuxadoConnection (client or server) under peer bytes and local calls: no
    exception (errors become one ConnectionTerminated, the last event, and
    nothing follows); peer streams never above maxIncomingStreams; all it
    sends decodes, nothing follows its GOAWAY, and no stream gets more DATA
    than its window plus the peer's credit.""",
        seeds=lambda: _connectionSeeds(V2_VECTORS, 0) + _connectionSeeds(V2_VECTORS, 1))
def muxadoV2Connection(data):
    _connection(data, _V2)


@target("muxado-v1-connection", """
    MuxadoV1Connection under peer bytes and local calls: no exception
    (errors become one ConnectionTerminated, the last event); peer streams
    never above maxIncomingStreams; all it sends decodes and no stream gets
    more DATA than its window plus the peer's credit.""",
        seeds=lambda: _connectionSeeds(V1_VECTORS, 0) + _connectionSeeds(V1_VECTORS, 1))
def muxadoV1Connection(data):
    _connection(data, _V1)


# -- the Twisted session ---------------------------------------------------------

_registry = CollectorRegistry()


def _sessionParts():
    from twisted.internet.protocol import Protocol
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from raftmux._quiet import QuietFactory

    class Echo(Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

        def readConnectionLost(self):
            self.transport.loseConnection()

    class Sink(Protocol):
        """Pauses its stream on the first byte: the window must hold the peer back."""

        def dataReceived(self, data):
            self.transport.pauseProducing()

    return QuietFactory.forProtocol(Echo), QuietFactory.forProtocol(Sink), MemoryReactorClock, \
        StringTransport


@target("muxado-session", """
    MuxadoSession (server, either generation, told from the first frame)
    over a StringTransport, streams echoed or paused: nothing is raised out
    of dataReceived and no error is logged; peer streams stay within
    maxIncomingStreams; what it writes decodes as its generation.""",
        seeds=lambda: [bytes([c]) + v for c in (0, 1, 0x41)
                       for v in V2_VECTORS[:2] + V1_VECTORS[:3]] + [
            b"\x00" + V1_VECTORS[2] + V1_VECTORS[3] + V1_VECTORS[5]])
def muxadoSession(data):
    from raftmux.muxado.session import MuxadoSession

    echo, sink, Clock, Transport = _sessionParts()
    control, wire = split(data)
    clock = Clock()
    config = MuxadoConfig(version=None, maxIncomingStreams=8, acceptBacklog=4,
                          maxGoAwayDebug=64)
    session = MuxadoSession(False, sink if control & 0x40 else echo, config, clock, _registry)
    transport = Transport()
    with LogFailures():
        session.makeConnection(transport)
        for chunk in pieces(wire, control & 0x3F):
            if transport.disconnecting:
                break
            session.dataReceived(chunk)
            runClock(clock, 0)
            check(len(session.streams) <= 8 + 1, "%d streams open (limit 8 + heartbeat)",
                  len(session.streams))
        runClock(clock, 2)
        session.connectionLost(_lost())
        runClock(clock, 0)
    written = transport.value()
    version = session.version
    if version is not None and written:
        module = v1 if version == 1 else v2
        try:
            module.FrameDecoder().receiveData(written)
        except ProtocolError as e:
            raise AssertionError("the session wrote bytes that do not decode: %s" % (e,))


def _lost():
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    return Failure(ConnectionDone())
