# -*- test-case-name: raftmux.test.test_muxado_connection -*-
"""
The sans-IO muxado session: what goes on the wire in answer to what, per
spec sections 5-7 (Go's verified behaviour), with no reactor at all.
"""

from binascii import unhexlify

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import connection as ev
from raftmux.muxado.connection import DEFAULT_WINDOW, MuxadoConnection
from raftmux.muxado.errors import ErrorCode
from raftmux.muxado.frames import (
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    WndInc,
    encodeData,
    encodeGoAway,
    encodeRst,
    encodeWndInc,
)


def wire(conn):
    return b"".join(conn.dataToSend())


def sent(conn):
    """Decode what ``conn`` queued, DATA pieces merged into (id, flags, payload)."""
    out = []
    for f in FrameDecoder().receiveData(wire(conn)):
        if isinstance(f, Data):
            if f.first:
                out.append(("data", f.streamId, f.flags, b""))
            out[-1] = out[-1][:3] + (out[-1][3] + f.data,)
        elif isinstance(f, Rst):
            out.append(("rst", f.streamId, f.code))
        elif isinstance(f, WndInc):
            out.append(("wndinc", f.streamId, f.increment))
        elif isinstance(f, GoAway):
            out.append(("goaway", f.lastStreamId, f.code, f.debug))
    return out


def kinds(events):
    return [e.__class__.__name__ for e in events]


class StreamIdTests(SynchronousTestCase):

    def test_clientStartsAtThreeAndUsesOddIds(self):
        conn = MuxadoConnection(client=True)
        self.assertEqual([conn.openStream() for _ in range(3)], [3, 5, 7])

    def test_serverUsesEvenIds(self):
        conn = MuxadoConnection(client=False)
        self.assertEqual([conn.openStream() for _ in range(3)], [2, 4, 6])

    def test_exhaustion(self):
        client = MuxadoConnection(client=True)
        client._nextId = 0x7FFFFFFD
        self.assertEqual(client.openStream(), 0x7FFFFFFF)
        self.assertRaises(ValueError, client.openStream)
        server = MuxadoConnection(client=False)
        server._nextId = 0x7FFFFFFC
        self.assertEqual(server.openStream(), 0x7FFFFFFE)
        self.assertRaises(ValueError, server.openStream)

    def test_wrongParitySynIsProtocolError(self):
        """Go's TestWrongClientParity / TestWrongServerParity."""
        for client, streamId in [(False, 300), (True, 301)]:
            conn = MuxadoConnection(client=client)
            events = conn.receiveData(encodeData(streamId, b"x", syn=True))
            self.assertEqual(kinds(events), ["ConnectionTerminated"])
            [goAway] = sent(conn)
            self.assertEqual(goAway[:3], ("goaway", 0 if client else 1,
                                          ErrorCode.PROTOCOL_ERROR))

    def test_acceptStream(self):
        """Go's TestAcceptStream: a client accepts SYN on even id 300."""
        conn = MuxadoConnection(client=True)
        events = conn.receiveData(encodeData(300, b"hi", syn=True))
        self.assertEqual(kinds(events), ["StreamOpened", "DataReceived"])
        self.assertEqual((events[0].streamId, events[0].length), (300, 2))

    def test_duplicateSynIsProtocolError(self):
        conn = MuxadoConnection(client=False)
        conn.receiveData(encodeData(3, b"a", syn=True))
        events = conn.receiveData(encodeData(3, b"b", syn=True))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])


class OpeningTests(SynchronousTestCase):

    def test_lazyOpenSynOnFirstData(self):
        conn = MuxadoConnection(client=True)
        streamId = conn.openStream()
        self.assertEqual(wire(conn), b"")
        conn.sendData(streamId, b"hello")
        conn.sendData(streamId, b"again")
        self.assertEqual(sent(conn), [("data", 3, 0x2, b"hello"), ("data", 3, 0, b"again")])

    def test_goldenOpenWriteCloseWrite(self):
        """Spec vector a': exactly a Go client's bytes."""
        conn = MuxadoConnection(client=True)
        streamId = conn.openStream()
        conn.sendData(streamId, b"hello")
        conn.endStream(streamId)
        self.assertEqual(wire(conn), unhexlify("000005120000000368656c6c6f0000001100000003"))

    def test_neverSynFinInOneFrame(self):
        """A Go acceptor that sees SYN|FIN can never answer (spec 5.2)."""
        conn = MuxadoConnection(client=True)
        streamId = conn.openStream()
        conn.endStream(streamId)
        self.assertEqual(sent(conn), [("data", 3, 0x2, b""), ("data", 3, 0x1, b"")])
        streamId = conn.openStream()
        conn.closeStream(streamId)
        self.assertEqual(sent(conn), [("data", 5, 0x2, b""), ("data", 5, 0x1, b"")])

    def test_emptyWriteDoesNotEatSyn(self):
        """Go's quirk: a zero-length write uses up the SYN; ours does not."""
        conn = MuxadoConnection(client=True)
        streamId = conn.openStream()
        conn.sendData(streamId, b"")
        conn.sendData(streamId, b"x")
        self.assertEqual(sent(conn), [("data", 3, 0x2, b"x")])

    def test_resetOfUnannouncedStreamSendsNothing(self):
        conn = MuxadoConnection(client=True)
        streamId = conn.openStream()
        conn.resetStream(streamId)
        self.assertEqual(wire(conn), b"")
        self.assertFalse(conn.isOpen(streamId))

    def test_synAfterGoAwaySentIsRefused(self):
        conn = MuxadoConnection(client=False)
        conn.goAway()
        wire(conn)
        events = conn.receiveData(encodeData(3, b"x", syn=True))
        self.assertEqual(kinds(events), ["StreamRefusedLocally"])
        self.assertEqual(events[0].code, ErrorCode.STREAM_REFUSED)
        # Nothing may follow a GOAWAY on the wire, not even that RST.
        self.assertEqual(wire(conn), b"")

    def test_incomingStreamLimit(self):
        conn = MuxadoConnection(client=False, maxIncomingStreams=2)
        conn.receiveData(encodeData(3, b"a", syn=True) + encodeData(5, b"b", syn=True))
        events = conn.receiveData(encodeData(7, b"c", syn=True))
        self.assertEqual(kinds(events), ["StreamRefusedLocally"])
        self.assertEqual(sent(conn), [("rst", 7, ErrorCode.ACCEPT_QUEUE_FULL)])
        conn.closeStream(3)
        wire(conn)
        events = conn.receiveData(encodeData(9, b"d", syn=True))
        self.assertEqual(kinds(events), ["StreamOpened", "DataReceived"])


class UnknownStreamTests(SynchronousTestCase):
    """Spec 5.5: replies to frames for streams the receiver does not have."""

    def test_emptyFinIgnored(self):
        conn = MuxadoConnection(client=False)
        self.assertEqual(conn.receiveData(encodeData(9, fin=True)), [])
        self.assertEqual(wire(conn), b"")

    def test_dataGetsRstStreamClosed(self):
        conn = MuxadoConnection(client=False)
        self.assertEqual(conn.receiveData(encodeData(9, b"late")), [])
        self.assertEqual(sent(conn), [("rst", 9, ErrorCode.STREAM_CLOSED)])
        conn.receiveData(encodeData(11))
        self.assertEqual(sent(conn), [("rst", 11, ErrorCode.STREAM_CLOSED)])

    def test_rstAndWndIncIgnored(self):
        conn = MuxadoConnection(client=False)
        self.assertEqual(conn.receiveData(encodeRst(9, 4) + encodeWndInc(9, 10)), [])
        self.assertEqual(wire(conn), b"")

    def test_dataAfterLocalCloseGetsRst(self):
        conn = MuxadoConnection(client=False)
        conn.receiveData(encodeData(3, b"a", syn=True))
        conn.closeStream(3)
        self.assertEqual(sent(conn), [("data", 3, FIN, b"")])
        conn.receiveData(encodeData(3, b"more"))
        self.assertEqual(sent(conn), [("rst", 3, ErrorCode.STREAM_CLOSED)])

    def test_dataAfterPeerFin(self):
        conn = MuxadoConnection(client=False)
        conn.receiveData(encodeData(3, b"a", syn=True, fin=False) + encodeData(3, fin=True))
        # Go repeats empty FINs: tolerated silently.
        self.assertEqual(conn.receiveData(encodeData(3, fin=True)), [])
        events = conn.receiveData(encodeData(3, b"x"))
        self.assertEqual(kinds(events), ["StreamReset"])
        self.assertEqual((events[0].code, events[0].remote), (ErrorCode.STREAM_CLOSED, False))
        self.assertEqual(sent(conn), [("rst", 3, ErrorCode.STREAM_CLOSED)])

    def test_unknownFrameTypeSkipped(self):
        conn = MuxadoConnection(client=False)
        junk = unhexlify("0000057000000003") + b"12345"
        events = conn.receiveData(junk + encodeData(3, b"ok", syn=True))
        self.assertEqual(kinds(events), ["StreamOpened", "DataReceived"])


FIN = 0x1


class FlowControlTests(SynchronousTestCase):

    def test_sendWindowLimitsData(self):
        conn = MuxadoConnection(client=True, window=10)
        streamId = conn.openStream()
        self.assertEqual(conn.sendData(streamId, b"x" * 25), 10)
        self.assertEqual(conn.sendData(streamId, b"y"), 0)
        events = conn.receiveData(encodeWndInc(streamId, 4))
        self.assertEqual(kinds(events), ["WindowUpdated"])
        self.assertEqual(conn.sendData(streamId, b"z" * 9), 4)

    def test_defaultWindowIsGos(self):
        self.assertEqual(DEFAULT_WINDOW, 262144)
        conn = MuxadoConnection(client=True)
        self.assertEqual(conn.sendWindow(conn.openStream()), 262144)

    def test_overrunGetsRstFlowControl(self):
        conn = MuxadoConnection(client=False, window=10)
        events = conn.receiveData(encodeData(3, b"x" * 10, syn=True))
        self.assertEqual(kinds(events), ["StreamOpened", "DataReceived"])
        events = conn.receiveData(encodeData(3, b"y"))
        self.assertEqual(kinds(events), ["StreamReset"])
        self.assertEqual(events[0].code, ErrorCode.FLOW_CONTROL_ERROR)
        self.assertEqual(sent(conn), [("rst", 3, ErrorCode.FLOW_CONTROL_ERROR)])
        # The session goes on.
        self.assertEqual(kinds(conn.receiveData(encodeData(5, b"z", syn=True))),
                         ["StreamOpened", "DataReceived"])

    def test_creditReturnedInBatches(self):
        conn = MuxadoConnection(client=False, window=100, windowUpdateThreshold=30)
        conn.receiveData(encodeData(3, b"x" * 100, syn=True))
        conn.acknowledgeReceivedData(3, 20)
        self.assertEqual(wire(conn), b"")
        conn.acknowledgeReceivedData(3, 20)
        self.assertEqual(sent(conn), [("wndinc", 3, 40)])
        # Credit given back lets the peer send exactly that much more.
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"y" * 40))), ["DataReceived"])
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"z"))), ["StreamReset"])

    def test_zeroWndIncIsSessionFatal(self):
        conn = MuxadoConnection(client=False)
        conn.receiveData(encodeData(3, b"x", syn=True))
        events = conn.receiveData(unhexlify("000004200000000300000000"))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(sent(conn)[0][:3], ("goaway", 3, ErrorCode.PROTOCOL_ERROR))


class GoAwayTests(SynchronousTestCase):

    def test_goAwayReportsRetryableStreams(self):
        conn = MuxadoConnection(client=True)
        ids = [conn.openStream() for _ in range(3)]   # 3, 5, 7
        for streamId in ids:
            conn.sendData(streamId, b"req")
        events = conn.receiveData(encodeGoAway(3, 0, b"bye"))
        [goAway] = events
        self.assertEqual(goAway.refused, [5, 7])
        self.assertEqual((goAway.code, goAway.debug), (0, b"bye"))
        self.assertTrue(conn.isOpen(3))
        self.assertFalse(conn.isOpen(5))

    def test_goAwayIsTheLastFrame(self):
        conn = MuxadoConnection(client=False)
        conn.receiveData(encodeData(3, b"x", syn=True))
        conn.goAway(ErrorCode.NO_ERROR, b"no error")
        conn.sendData(3, b"late")
        conn.acknowledgeReceivedData(3, 100000)
        conn.endStream(3)
        self.assertEqual(wire(conn), encodeGoAway(3, 0, b"no error"))

    def test_serverGoAwayWithNoStreamsSaysOne(self):
        """Spec vector f: a Go server that saw no client stream reports last id 1."""
        conn = MuxadoConnection(client=False)
        conn.goAway(0, b"no error")
        self.assertEqual(wire(conn), unhexlify(
            "000010300000000000000001000000006e6f206572726f72"))

    def test_goAwayNonZeroStreamIsProtocolError(self):
        conn = MuxadoConnection(client=False)
        events = conn.receiveData(unhexlify("0000083000000001") + bytes(8))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(events[0].code, ErrorCode.PROTOCOL_ERROR)

    def test_nothingProcessedAfterTermination(self):
        conn = MuxadoConnection(client=False)
        events = conn.receiveData(unhexlify("000004000000000000000001")
                                  + encodeData(3, b"x", syn=True))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(conn.receiveData(encodeData(5, b"x", syn=True)), [])


class _Peer:
    """A session plus the bytes it has received, for the random-schedule test."""

    def __init__(self, client):
        self.conn = MuxadoConnection(client=client, window=64, windowUpdateThreshold=16)
        self.received = {}
        self.ended = set()


class RandomScheduleTests(SynchronousTestCase):

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["open", "send", "end", "deliver"]),
                              st.booleans(), st.integers(0, 7), st.binary(max_size=90)),
                    max_size=60),
           st.lists(st.integers(1, 50), min_size=1, max_size=10))
    def test_twoCompliantPeersNeverBreakTheRules(self, ops, cuts):
        """
        Whatever two well-behaved sessions do, neither ever sees a protocol or
        flow-control error, and every byte sent within the window arrives in
        order on the right stream.
        """
        peers = [_Peer(True), _Peer(False)]
        pipes = [b"", b""]
        wrote = {}
        for op, which, pick, data in ops:
            me, other = peers[which], peers[not which]
            ids = me.conn.streamIds()
            if op == "open":
                me.conn.openStream()
            elif op == "send" and ids:
                streamId = ids[pick % len(ids)]
                n = me.conn.sendData(streamId, data)
                wrote.setdefault((which, streamId), bytearray()).extend(data[:n])
            elif op == "end" and ids:
                me.conn.endStream(ids[pick % len(ids)])
            pipes[which] += b"".join(me.conn.dataToSend())
            if op == "deliver":
                buf, pipes[which] = pipes[which], b""
                pos = 0
                for cut in cuts + [len(buf)]:
                    for e in other.conn.receiveData(buf[pos:pos + cut]):
                        self.assertNotIsInstance(e, (ev.ConnectionTerminated, ev.StreamReset))
                        if isinstance(e, ev.DataReceived):
                            other.received.setdefault(e.streamId, bytearray()).extend(e.data)
                            other.conn.acknowledgeReceivedData(e.streamId, len(e.data))
                    pos += cut
                pipes[not which] += b"".join(other.conn.dataToSend())
        for (which, streamId), data in wrote.items():
            got = peers[not which].received.get(streamId, b"")
            self.assertTrue(bytes(data).startswith(bytes(got)))
