# -*- test-case-name: raftmux.test.test_muxado_v1_connection -*-
"""
The sans-IO muxado v1 session: what goes on the wire in answer to what, per
spec Appendix A and 15.2 (Go v1's ``proto/session.go`` and ``stream.go``),
with no reactor at all.
"""

from binascii import unhexlify

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import connection as ev
from raftmux.muxado.errors import ErrorCode
from raftmux.muxado.v1connection import DEFAULT_WINDOW, MuxadoV1Connection
from raftmux.muxado.v1frames import (
    FLAG_FIN,
    HEARTBEAT_PRIORITY,
    HEARTBEAT_TYPE,
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    Syn,
    WireCode,
    WndInc,
    encodeData,
    encodeGoAway,
    encodeRst,
    encodeSyn,
    encodeWndInc,
)

V1_EVENTS = (ev.StreamOpened, ev.StreamRefusedLocally, ev.DataReceived, ev.StreamEnded,
             ev.StreamReset, ev.WindowUpdated, ev.GoAwayReceived, ev.ConnectionTerminated)


def h(text):
    return unhexlify(text.replace(" ", ""))


def wire(conn):
    return b"".join(conn.dataToSend())


def sent(conn):
    """Decode what ``conn`` queued (wire codes), DATA pieces merged into (id, flags, payload)."""
    out = []
    for f in FrameDecoder().receiveData(wire(conn)):
        if isinstance(f, Data):
            if f.first:
                out.append(("data", f.streamId, f.flags, b""))
            out[-1] = out[-1][:3] + (out[-1][3] + f.data,)
        elif isinstance(f, Syn):
            out.append(("syn", f.streamId, f.flags, f.priority, f.streamType))
        elif isinstance(f, Rst):
            out.append(("rst", f.streamId, f.code))
        elif isinstance(f, WndInc):
            out.append(("wndinc", f.streamId, f.increment))
        elif isinstance(f, GoAway):
            out.append(("goaway", f.lastStreamId, f.code, f.debug))
    return out


def kinds(events):
    for e in events:
        assert isinstance(e, V1_EVENTS), e
    return [e.__class__.__name__ for e in events]


def opened(conn, *ids):
    """Let the peer open ``ids`` on ``conn`` (a server or client), discarding its output."""
    for streamId in ids:
        events = conn.receiveData(encodeSyn(streamId))
        assert kinds(events) == ["StreamOpened"], events
    wire(conn)


class StreamIdTests(SynchronousTestCase):

    def test_clientStartsAtThreeAndUsesOddIds(self):
        conn = MuxadoV1Connection(client=True)
        self.assertEqual([conn.openStream() for _ in range(3)], [3, 5, 7])

    def test_serverUsesEvenIds(self):
        conn = MuxadoV1Connection(client=False)
        self.assertEqual([conn.openStream() for _ in range(3)], [2, 4, 6])

    def test_exhaustion(self):
        client = MuxadoV1Connection(client=True)
        client._lastLocalId = 0x7FFFFFFD
        self.assertEqual(client.openStream(), 0x7FFFFFFF)
        self.assertRaises(ValueError, client.openStream)
        server = MuxadoV1Connection(client=False)
        server._lastLocalId = 0x7FFFFFFC
        self.assertEqual(server.openStream(), 0x7FFFFFFE)
        self.assertRaises(ValueError, server.openStream)

    def test_wrongParitySynIsProtocolError(self):
        """Go's TestFailWrongClientParity / TestWrongServerParity (SYN 300 / 301)."""
        for client, streamId in [(False, 300), (True, 301)]:
            conn = MuxadoV1Connection(client=client)
            events = conn.receiveData(encodeSyn(streamId))
            self.assertEqual(kinds(events), ["ConnectionTerminated"])
            self.assertEqual(events[0].code, ErrorCode.PROTOCOL_ERROR)
            [goAway] = sent(conn)
            self.assertEqual(goAway[:3], ("goaway", 0 if client else 1, WireCode.PROTOCOL_ERROR))

    def test_clientAcceptsEvenStreams(self):
        conn = MuxadoV1Connection(client=True)
        events = conn.receiveData(encodeSyn(300))
        self.assertEqual(kinds(events), ["StreamOpened"])
        self.assertEqual((events[0].streamId, events[0].length), (300, 0))
        self.assertEqual(wire(conn), b"")

    def test_synOnOneRefusedByServer(self):
        """A Go server's last remote ID starts at 1: a client's first stream must be >= 3."""
        conn = MuxadoV1Connection(client=False)
        self.assertEqual(kinds(conn.receiveData(encodeSyn(1))), ["ConnectionTerminated"])

    def test_synLowIdIsProtocolError(self):
        """Go's TestSynLowId: a SYN not above the last peer SYN ends the session."""
        conn = MuxadoV1Connection(client=False)
        opened(conn, 5)
        events = conn.receiveData(encodeSyn(3))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(sent(conn)[0][:3], ("goaway", 5, WireCode.PROTOCOL_ERROR))

    def test_duplicateSynIsProtocolError(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        self.assertEqual(kinds(conn.receiveData(encodeSyn(3))), ["ConnectionTerminated"])

    def test_gapsInPeerIdsAreFine(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3, 9, 101)
        self.assertEqual(sorted(conn.streamIds()), [3, 9, 101])


class IdleStreamTests(SynchronousTestCase):
    """A frame naming an ID above the highest used or seen for its parity ends the session."""

    def assertFatal(self, conn, frame):
        events = conn.receiveData(frame)
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(events[0].code, ErrorCode.PROTOCOL_ERROR)
        self.assertEqual(sent(conn)[-1][:3][2], WireCode.PROTOCOL_ERROR)

    def test_dataBeforeSyn(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        self.assertFatal(conn, encodeData(5, b"x"))

    def test_wndIncForLocalStreamNeverOpened(self):
        conn = MuxadoV1Connection(client=True)
        conn.openStream()
        wire(conn)
        self.assertFatal(conn, encodeWndInc(5, 10))

    def test_rstForIdleStream(self):
        conn = MuxadoV1Connection(client=False)
        self.assertFatal(conn, encodeRst(3, 7))

    def test_reorderedSynAfterData(self):
        conn = MuxadoV1Connection(client=False)
        self.assertFatal(conn, encodeData(3, b"x") + encodeSyn(3))

    def test_referencesToUsedIdsAreNotFatal(self):
        conn = MuxadoV1Connection(client=True)
        conn.openStream()
        conn.openStream()
        wire(conn)
        events = conn.receiveData(encodeWndInc(3, 1) + encodeRst(5, 4) + encodeRst(5, 4))
        self.assertEqual(kinds(events), ["WindowUpdated", "StreamReset"])
        self.assertIsNone(conn.terminated)


class OpeningTests(SynchronousTestCase):

    def test_synSentAtOnce(self):
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        self.assertEqual(wire(conn), h("00000001 00000003"))
        conn.sendData(streamId, b"ping")
        self.assertEqual(wire(conn), h("00040003 00000003 70696e67"))

    def test_typedAndPrioritisedSyn(self):
        conn = MuxadoV1Connection(client=True)
        conn.openStream(HEARTBEAT_TYPE, HEARTBEAT_PRIORITY)
        self.assertEqual(wire(conn), h("00080601 00000003 7fffffff fffffeff"))
        conn.openStream(streamType=9)
        conn.openStream(priority=9)
        conn.openStream(streamType=0, priority=0)
        self.assertEqual(sent(conn), [("syn", 5, 4, None, 9), ("syn", 7, 2, 9, None),
                                      ("syn", 9, 0, None, None)])

    def test_badFieldsRefusedWithoutUsingAnId(self):
        conn = MuxadoV1Connection(client=True)
        self.assertRaises(ValueError, conn.openStream, priority=0x80000000)
        self.assertRaises(ValueError, conn.openStream, streamType=-1)
        self.assertEqual(wire(conn), b"")
        self.assertEqual(conn.openStream(), 3)

    def test_streamOpenedCarriesTypeAndPriority(self):
        conn = MuxadoV1Connection(client=False)
        [a] = conn.receiveData(encodeSyn(3, HEARTBEAT_PRIORITY, HEARTBEAT_TYPE))
        [b] = conn.receiveData(encodeSyn(5))
        [c] = conn.receiveData(encodeSyn(7, streamType=42))
        self.assertEqual((a.streamId, a.streamType, a.priority),
                         (3, HEARTBEAT_TYPE, HEARTBEAT_PRIORITY))
        self.assertEqual((b.streamType, b.priority), (None, None))
        self.assertEqual((c.streamType, c.priority), (42, None))

    def test_neverSynFin(self):
        """endStream on a fresh stream: SYN went out at open, FIN goes separately."""
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        conn.endStream(streamId)
        self.assertEqual(sent(conn), [("syn", 3, 0, None, None), ("data", 3, FLAG_FIN, b"")])

    def test_synFinFromGoClosesOurSendHalf(self):
        """
        Go's OpenStream(fin=true) closes the opener's read side and sends
        SYN|FIN; a Go acceptor then cannot write but reads on.  So do we.
        """
        conn = MuxadoV1Connection(client=False)
        events = conn.receiveData(h("00080701 00000003 00000001 00000002"))
        self.assertEqual(kinds(events), ["StreamOpened"])
        self.assertFalse(conn.canSend(3))
        self.assertEqual(conn.sendData(3, b"reply"), 0)
        self.assertFalse(conn.endStream(3))
        self.assertEqual(wire(conn), b"")
        # The Go opener may still write, and ends with a DATA FIN.
        events = conn.receiveData(encodeData(3, b"push") + encodeData(3, fin=True))
        self.assertEqual(kinds(events), ["DataReceived", "StreamEnded"])
        self.assertFalse(conn.isOpen(3))
        self.assertEqual(wire(conn), b"")

    def test_canSend(self):
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        self.assertTrue(conn.canSend(streamId))
        conn.endStream(streamId)
        self.assertFalse(conn.canSend(streamId))
        self.assertTrue(conn.isOpen(streamId))
        self.assertFalse(conn.canSend(99))

    def test_incomingStreamLimit(self):
        conn = MuxadoV1Connection(client=False, maxIncomingStreams=2)
        opened(conn, 3, 5)
        events = conn.receiveData(encodeSyn(7))
        self.assertEqual(kinds(events), ["StreamRefusedLocally"])
        self.assertEqual(events[0].code, ErrorCode.ACCEPT_QUEUE_FULL)
        self.assertEqual(sent(conn), [("rst", 7, WireCode.REFUSED_STREAM)])
        self.assertEqual(conn.lastRemoteId, 5)
        # Late data on the refused stream: RST STREAM_CLOSED, not a session error.
        self.assertEqual(conn.receiveData(encodeData(7, b"x")), [])
        self.assertEqual(sent(conn), [("rst", 7, WireCode.STREAM_CLOSED)])
        conn.closeStream(3)
        wire(conn)
        self.assertEqual(kinds(conn.receiveData(encodeSyn(9))), ["StreamOpened"])

    def test_localStreamsDoNotCountTowardsTheLimit(self):
        conn = MuxadoV1Connection(client=False, maxIncomingStreams=1)
        for _ in range(3):
            conn.openStream()
        self.assertEqual(kinds(conn.receiveData(encodeSyn(3))), ["StreamOpened"])


class DataTests(SynchronousTestCase):

    def test_dataSplitIntoV1Frames(self):
        """At most 16,383 payload bytes per DATA frame, like Go's writer."""
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        wire(conn)
        payload = bytes(range(256)) * 160   # 40,960 bytes
        self.assertEqual(conn.sendData(streamId, payload), len(payload))
        frames = sent(conn)
        self.assertEqual([len(f[3]) for f in frames], [16383, 16383, 8194])
        self.assertEqual(b"".join(f[3] for f in frames), payload)

    def test_endAndFinBothWaysForgetsTheStream(self):
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        conn.sendData(streamId, b"hello")
        self.assertFalse(conn.endStream(streamId))
        self.assertEqual(wire(conn), h("00000001 00000003") + h("00050003 00000003")
                         + b"hello" + h("00000103 00000003"))
        events = conn.receiveData(encodeData(streamId, b"bye", fin=True))
        self.assertEqual(kinds(events), ["DataReceived", "StreamEnded"])
        self.assertFalse(conn.isOpen(streamId))

    def test_peerFinThenOurEnd(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.receiveData(encodeData(3, b"a", fin=True))
        self.assertTrue(conn.endStream(3))
        self.assertFalse(conn.isOpen(3))

    def test_dataForClosedStreamGetsRstStreamClosed(self):
        """DATA after our Close(): payload discarded, RST StreamClosed (4)."""
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.closeStream(3)
        self.assertEqual(sent(conn), [("data", 3, FLAG_FIN, b"")])
        self.assertEqual(conn.receiveData(encodeData(3, b"more")), [])
        self.assertEqual(sent(conn), [("rst", 3, WireCode.STREAM_CLOSED)])

    def test_repeatedEmptyFinTolerated(self):
        """Go's Close() after HalfClose() sends a second empty FIN."""
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.receiveData(encodeData(3, fin=True))
        self.assertEqual(conn.receiveData(encodeData(3, fin=True)), [])
        conn.closeStream(3)
        wire(conn)
        self.assertEqual(conn.receiveData(encodeData(3, fin=True)), [])
        self.assertEqual(wire(conn), b"")

    def test_dataAfterPeerFinGetsRst(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.receiveData(encodeData(3, b"a") + encodeData(3, fin=True))
        events = conn.receiveData(encodeData(3, b"x"))
        self.assertEqual(kinds(events), ["StreamReset"])
        self.assertEqual((events[0].code, events[0].remote), (ErrorCode.STREAM_CLOSED, False))
        self.assertEqual(sent(conn), [("rst", 3, WireCode.STREAM_CLOSED)])

    def test_rstAndWndIncForGoneStreamsIgnored(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.closeStream(3)
        wire(conn)
        self.assertEqual(conn.receiveData(encodeRst(3, 4) + encodeWndInc(3, 10)), [])
        self.assertEqual(wire(conn), b"")
        self.assertIsNone(conn.terminated)

    def test_rstReceivedCodesTranslated(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3, 5, 7, 9, 11)
        events = conn.receiveData(encodeRst(3, 7) + encodeRst(5, 6) + encodeRst(7, 5)
                                  + encodeRst(9, 4) + h("00040002 0000000b 00000009"))
        self.assertEqual([(e.streamId, e.code, e.remote) for e in events],
                         [(3, ErrorCode.STREAM_CANCELLED, True), (5, ErrorCode.STREAM_REFUSED, True),
                          (7, ErrorCode.FRAME_SIZE_ERROR, True), (9, ErrorCode.STREAM_CLOSED, True),
                          (11, ErrorCode.UNKNOWN, True)])
        self.assertEqual(conn.streamIds(), [])

    def test_resetStreamSendsV1Codes(self):
        conn = MuxadoV1Connection(client=True)
        codes = [ErrorCode.STREAM_CANCELLED, ErrorCode.ACCEPT_QUEUE_FULL,
                 ErrorCode.FRAME_SIZE_ERROR, ErrorCode.REMOTE_GONE_AWAY, ErrorCode.UNKNOWN]
        ids = [conn.openStream() for _ in codes]
        wire(conn)
        for streamId, code in zip(ids, codes, strict=True):
            conn.resetStream(streamId, code)
        self.assertEqual(sent(conn), [("rst", 3, 7), ("rst", 5, 6), ("rst", 7, 5),
                                      ("rst", 9, 6), ("rst", 11, 2)])
        self.assertEqual(conn.streamIds(), [])
        conn.resetStream(3)
        self.assertEqual(wire(conn), b"")


class FlowControlTests(SynchronousTestCase):

    def test_defaultWindowIsGoV1s(self):
        self.assertEqual(DEFAULT_WINDOW, 65536)
        conn = MuxadoV1Connection(client=True)
        self.assertEqual(conn.sendWindow(conn.openStream()), 65536)

    def test_sendWindowLimitsData(self):
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        self.assertEqual(conn.sendData(streamId, b"x" * 70000), 65536)
        self.assertEqual(conn.sendData(streamId, b"y"), 0)
        events = conn.receiveData(encodeWndInc(streamId, 4))
        self.assertEqual(kinds(events), ["WindowUpdated"])
        self.assertEqual(conn.sendData(streamId, b"z" * 9), 4)

    def test_incrementsAreNotCapped(self):
        """Go v1's sender adds every increment; a receiver may grant beyond 64 KiB."""
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        conn.receiveData(encodeWndInc(streamId, 100000))
        self.assertEqual(conn.sendWindow(streamId), 165536)

    def test_zeroIncrementIgnored(self):
        conn = MuxadoV1Connection(client=True)
        streamId = conn.openStream()
        self.assertEqual(conn.receiveData(h("00040004 00000003 00000000")), [])
        self.assertIsNone(conn.terminated)
        self.assertEqual(conn.sendWindow(streamId), 65536)

    def test_overrunGetsRstFlowControl(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        for size in (16383, 16383, 16383, 16383, 4):   # 65,536 in all
            self.assertEqual(kinds(conn.receiveData(encodeData(3, b"x" * size))),
                             ["DataReceived"])
        self.assertEqual(wire(conn), b"")
        events = conn.receiveData(encodeData(3, b"y"))
        self.assertEqual(kinds(events), ["StreamReset"])
        self.assertEqual((events[0].code, events[0].remote),
                         (ErrorCode.FLOW_CONTROL_ERROR, False))
        self.assertEqual(sent(conn), [("rst", 3, WireCode.FLOW_CONTROL_ERROR)])
        # The session goes on.
        self.assertEqual(kinds(conn.receiveData(encodeSyn(5) + encodeData(5, b"z"))),
                         ["StreamOpened", "DataReceived"])

    def test_creditReturnedInQuarterWindowBatches(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        conn.receiveData(encodeData(3, b"x" * 16383) + encodeData(3, b"x" * 16383))
        conn.acknowledgeReceivedData(3, 16383)
        self.assertEqual(wire(conn), b"")
        conn.acknowledgeReceivedData(3, 1)
        self.assertEqual(sent(conn), [("wndinc", 3, 16384)])

    def test_creditLetsThePeerSendExactlyThatMuchMore(self):
        conn = MuxadoV1Connection(client=False, window=100, windowUpdateThreshold=30)
        opened(conn, 3)
        conn.receiveData(encodeData(3, b"x" * 100))
        conn.acknowledgeReceivedData(3, 20)
        self.assertEqual(wire(conn), b"")
        conn.acknowledgeReceivedData(3, 20)
        self.assertEqual(sent(conn), [("wndinc", 3, 40)])
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"y" * 40))), ["DataReceived"])
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"z"))), ["StreamReset"])

    def test_everyReadCreditedWithThresholdOne(self):
        """Go's own behaviour (WNDINC per read) is one setting away."""
        conn = MuxadoV1Connection(client=False, windowUpdateThreshold=1)
        opened(conn, 3)
        conn.receiveData(encodeData(3, b"12345678"))
        conn.acknowledgeReceivedData(3, 4)
        conn.acknowledgeReceivedData(3, 4)
        self.assertEqual(sent(conn), [("wndinc", 3, 4), ("wndinc", 3, 4)])
        conn.acknowledgeReceivedData(3, 0)
        self.assertEqual(wire(conn), b"")


class GoAwayTests(SynchronousTestCase):

    def test_goBrokenGoAwayActedOnAtOnce(self):
        """
        Go v1's GOAWAY declares 16 debug bytes it never sends: the event comes
        at once, our streams above last-stream-id are refused, and frames that
        follow (Go's ``GoAway()`` leaves the session open) are read as frames.
        """
        conn = MuxadoV1Connection(client=True)
        ids = [conn.openStream() for _ in range(3)]   # 3, 5, 7
        wire(conn)
        events = conn.receiveData(h("00180006 00000000 00000003 00000000"))
        [goAway] = events
        self.assertIsInstance(goAway, ev.GoAwayReceived)
        self.assertEqual((goAway.lastStreamId, goAway.code, goAway.debug, goAway.refused),
                         (3, ErrorCode.NO_ERROR, b"", [5, 7]))
        self.assertEqual(conn.streamIds(), [ids[0]])
        self.assertEqual((conn.goAwayReceived.lastStreamId, conn.goAwayReceived.code,
                          conn.goAwayReceived.debug), (3, ErrorCode.NO_ERROR, b""))
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"late"))), ["DataReceived"])
        self.assertIsNone(conn.terminated)

    def test_gracefulGoAwayBetweenOurPeers(self):
        """Our GOAWAY declares no debug text, so a stream below last-stream-id can finish."""
        for debug, after in [(b"", ["DataReceived", "StreamEnded"]),
                             (b"bye", ["DataReceived", "StreamEnded"])]:
            client, server = MuxadoV1Connection(client=True), MuxadoV1Connection(client=False)
            streamId = client.openStream()
            kinds(server.receiveData(wire(client)))
            server.goAway(ErrorCode.NO_ERROR, debug)
            server.sendData(streamId, b"answer")
            server.endStream(streamId)
            events = client.receiveData(wire(server))
            self.assertEqual(kinds(events), ["GoAwayReceived"] + after)

    def test_goAwayCodeTranslated(self):
        conn = MuxadoV1Connection(client=True)
        [goAway] = conn.receiveData(encodeGoAway(0, 5))
        self.assertEqual((goAway.code, goAway.debug), (ErrorCode.FRAME_SIZE_ERROR, b""))

    def test_ourGoAwayIsCorrectAndCarriesNoDebug(self):
        """A correct frame (length 8); the debug text is kept here only."""
        conn = MuxadoV1Connection(client=False)
        conn.goAway(ErrorCode.NO_ERROR, b"no error")
        self.assertEqual(wire(conn), h("00080006 00000000 00000001 00000000"))
        self.assertEqual(conn.goAwayDebugSent, b"no error")
        conn.goAway(ErrorCode.PROTOCOL_ERROR, b"again")
        self.assertEqual(wire(conn), b"")

    def test_goAwayReportsLastPeerStream(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3, 7)
        conn.goAway(ErrorCode.FRAME_SIZE_ERROR, b"x")
        self.assertEqual(sent(conn), [("goaway", 7, WireCode.FRAME_SIZE_ERROR, b"")])

    def test_clientGoAwayWithNoStreamsSaysZero(self):
        conn = MuxadoV1Connection(client=True)
        conn.goAway()
        self.assertEqual(sent(conn), [("goaway", 0, 0, b"")])

    def test_longDebugKeptLocallyCutToOneFrame(self):
        conn = MuxadoV1Connection(client=True)
        conn.terminate(ErrorCode.INTERNAL_ERROR, "e" * 20000)
        [goAway] = sent(conn)
        self.assertEqual(goAway[3], b"")
        self.assertEqual(len(conn.goAwayDebugSent), 0x3FFF - 8)

    def test_synAfterOurGoAwayIsRefused(self):
        """Go v1 answers RST RefusedStream (6); a v1 peer reads frames after a GOAWAY fine."""
        conn = MuxadoV1Connection(client=False)
        conn.goAway()
        wire(conn)
        events = conn.receiveData(encodeSyn(3))
        self.assertEqual(kinds(events), ["StreamRefusedLocally"])
        self.assertEqual(events[0].code, ErrorCode.STREAM_REFUSED)
        self.assertEqual(sent(conn), [("rst", 3, WireCode.REFUSED_STREAM)])

    def test_streamsCarryOnAfterOurGoAway(self):
        conn = MuxadoV1Connection(client=False, windowUpdateThreshold=1)
        opened(conn, 3)
        conn.goAway()
        wire(conn)
        self.assertEqual(kinds(conn.receiveData(encodeData(3, b"req", fin=True))),
                         ["DataReceived", "StreamEnded"])
        conn.acknowledgeReceivedData(3, 3)
        conn.sendData(3, b"resp")
        conn.endStream(3)
        self.assertEqual(sent(conn), [("data", 3, 0, b"resp"), ("data", 3, FLAG_FIN, b"")])

    def test_terminateSilencesTheConnection(self):
        conn = MuxadoV1Connection(client=False)
        opened(conn, 3)
        events = conn.receiveData(h("00000005 00000003") + encodeSyn(5))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertIs(conn.terminated, events[0])
        self.assertEqual(sent(conn), [("goaway", 3, WireCode.PROTOCOL_ERROR, b"")])
        self.assertEqual(conn.goAwayDebugSent,
                         b"STREAM_PRI frames are not implemented by muxado v1")
        self.assertEqual(conn.sendData(3, b"x"), 0)
        conn.endStream(3)
        conn.resetStream(3, ErrorCode.STREAM_CANCELLED)
        conn.openStream()
        self.assertEqual(wire(conn), b"")
        self.assertEqual(conn.receiveData(encodeSyn(7)), [])


class BadInputTests(SynchronousTestCase):
    """Decoder errors become one ConnectionTerminated with the GOAWAY queued."""

    def assertTerminated(self, data, code, wireCode):
        conn = MuxadoV1Connection(client=False)
        events = conn.receiveData(data)
        self.assertEqual(kinds(events)[-1:], ["ConnectionTerminated"])
        self.assertEqual(events[-1].code, code)
        self.assertEqual(sent(conn)[-1][:3], ("goaway", conn.lastRemoteId, wireCode))

    def test_priFrame(self):
        self.assertTerminated(h("00040005 00000003 00000001"),
                              ErrorCode.PROTOCOL_ERROR, WireCode.PROTOCOL_ERROR)

    def test_unknownType(self):
        self.assertTerminated(h("00000007 00000003"),
                              ErrorCode.PROTOCOL_ERROR, WireCode.PROTOCOL_ERROR)

    def test_synLengthMismatch(self):
        self.assertTerminated(h("00040001 00000003 00000001"),
                              ErrorCode.FRAME_SIZE_ERROR, WireCode.FRAME_SIZE_ERROR)

    def test_rstWrongLength(self):
        self.assertTerminated(encodeSyn(3) + h("00030002 00000003 000000"),
                              ErrorCode.FRAME_SIZE_ERROR, WireCode.FRAME_SIZE_ERROR)

    def test_wndIncWrongLength(self):
        self.assertTerminated(h("00080004 00000003 0000000100000001"),
                              ErrorCode.FRAME_SIZE_ERROR, WireCode.FRAME_SIZE_ERROR)

    def test_eventsBeforeTheErrorAreKept(self):
        conn = MuxadoV1Connection(client=False)
        events = conn.receiveData(encodeSyn(3) + encodeData(3, b"hi") + h("00000005 00000003"))
        self.assertEqual(kinds(events), ["StreamOpened", "DataReceived", "ConnectionTerminated"])

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=3000), st.lists(st.integers(1, 200), max_size=30))
    def test_randomBytesNeverRaise(self, junk, cuts):
        """Random input: only events come out, and state stays bounded."""
        conn = MuxadoV1Connection(client=False, maxIncomingStreams=8)
        pos = 0
        for size in cuts + [len(junk)]:
            kinds(conn.receiveData(junk[pos:pos + size]))
            pos += size
            self.assertLessEqual(len(conn.streamIds()), 8)
        out = wire(conn)
        # Whatever we answered is itself valid v1 (and any GOAWAY is last).
        for f in FrameDecoder().receiveData(out):
            self.assertIsInstance(f, (Rst, GoAway, Data))


class _Peer:
    """A session plus what it has received and been told, for the random-schedule test."""

    def __init__(self, client, window, threshold):
        self.conn = MuxadoV1Connection(client=client, window=window,
                                       windowUpdateThreshold=threshold)
        self.received = {}
        self.unconsumed = {}   # stream id -> bytes received, not yet taken by the "application"
        self.announced = {}    # stream id -> (type, priority) from StreamOpened

    def consume(self, streamId):
        n = self.unconsumed.pop(streamId, 0)
        if n:
            self.conn.acknowledgeReceivedData(streamId, n)


class RandomScheduleTests(SynchronousTestCase):
    """Two MuxadoV1Connections talk; nothing either does may break the rules."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["open", "send", "send", "send", "end", "close",
                                               "reset", "deliver", "deliver", "consume"]),
                              st.booleans(), st.integers(0, 7), st.integers(0, 200),
                              st.one_of(st.none(), st.integers(1, 0xFFFFFFFF))),
                    max_size=80),
           st.lists(st.integers(1, 50), min_size=1, max_size=10))
    def test_twoCompliantPeersNeverBreakTheRules(self, ops, cuts):
        """
        Whatever two well-behaved sessions do (windows filling up, streams
        closed or reset with data in flight, frames cut anywhere), neither
        ever sees a protocol or flow-control error, every stream's type and
        priority arrive as opened, IDs keep their parity, every byte sent
        arrives in order, and the credit still owed at rest is below the
        batching threshold.
        """
        window, threshold = 96, 16
        peers = [_Peer(True, window, threshold), _Peer(False, window, threshold)]
        pipes = [b"", b""]
        wrote = {}
        types = {}
        for which, peer in enumerate(peers):
            # Every schedule starts with a plain and a heartbeat-like stream each way.
            types[peer.conn.openStream()] = (None, None)
            types[peer.conn.openStream(HEARTBEAT_TYPE, HEARTBEAT_PRIORITY)] = (
                HEARTBEAT_TYPE, HEARTBEAT_PRIORITY)
            pipes[which] += wire(peer.conn)
        counter = 0
        for op, which, pick, size, number in ops:
            me = peers[which]
            ids = sorted(me.conn.streamIds())
            streamId = ids[pick % len(ids)] if ids else None
            if op == "open":
                priority = None if number is None else number & 0x7FFFFFFF
                streamId = me.conn.openStream(number, priority)
                self.assertTrue(me.conn.isLocal(streamId))
                self.assertEqual(streamId & 1, 1 if me.conn.client else 0)
                types[streamId] = (number, priority or None)
            elif streamId is None or op == "deliver":
                pass
            elif op == "send":
                data = bytes((counter + i) & 0xFF for i in range(size))
                counter += size
                before = me.conn.sendWindow(streamId)
                n = me.conn.sendData(streamId, data)
                self.assertEqual(n, min(len(data), before) if me.conn.canSend(streamId) else 0)
                self.assertEqual(me.conn.sendWindow(streamId), before - n)
                wrote.setdefault((which, streamId), bytearray()).extend(data[:n])
            elif op == "end":
                me.conn.endStream(streamId)
            elif op == "close":
                me.conn.closeStream(streamId)
            elif op == "reset":
                me.conn.resetStream(streamId, ErrorCode.STREAM_CANCELLED)
            elif op == "consume":
                me.consume(streamId)
            pipes[which] += wire(me.conn)
            if op == "deliver":
                self._deliver(peers, pipes, which, cuts)
        # At rest: the applications take everything, and everything is delivered.
        for _ in range(4):
            for which, peer in enumerate(peers):
                for streamId in list(peer.unconsumed):
                    peer.consume(streamId)
                pipes[which] += wire(peer.conn)
                self._deliver(peers, pipes, which, cuts)
        self.assertEqual(pipes, [b"", b""])
        for peer in peers:
            self.assertIsNone(peer.conn.terminated)
            for streamId, announced in peer.announced.items():
                self.assertEqual(announced, types[streamId])
        for (which, streamId), data in wrote.items():
            sender, receiver = peers[which], peers[not which]
            got = bytes(receiver.received.get(streamId, b""))
            self.assertTrue(bytes(data).startswith(got))
            if sender.conn.isOpen(streamId) and receiver.conn.isOpen(streamId):
                self.assertEqual(got, bytes(data))
                if sender.conn.canSend(streamId):
                    # (After its FIN a sender is owed nothing: no credit comes back.)
                    self.assertGreater(sender.conn.sendWindow(streamId), window - threshold)

    def _deliver(self, peers, pipes, which, cuts):
        other = peers[not which]
        buf, pipes[which] = pipes[which], b""
        pos = 0
        for cut in cuts + [len(buf)]:
            for e in other.conn.receiveData(buf[pos:pos + cut]):
                self.assertIsInstance(e, V1_EVENTS)
                self.assertNotIsInstance(e, (ev.ConnectionTerminated, ev.StreamRefusedLocally))
                if isinstance(e, ev.StreamReset):
                    # Only resets a peer asked for, or RST StreamClosed for data
                    # that crossed a close; never a flow-control violation.
                    self.assertTrue(e.remote, e)
                    self.assertIn(e.code, (ErrorCode.STREAM_CANCELLED, ErrorCode.STREAM_CLOSED))
                elif isinstance(e, ev.StreamOpened):
                    self.assertFalse(other.conn.isLocal(e.streamId))
                    other.announced[e.streamId] = (e.streamType, e.priority)
                elif isinstance(e, ev.DataReceived):
                    other.received.setdefault(e.streamId, bytearray()).extend(e.data)
                    other.unconsumed[e.streamId] = other.unconsumed.get(e.streamId, 0) + len(e.data)
            pos += cut
        pipes[not which] += wire(other.conn)
