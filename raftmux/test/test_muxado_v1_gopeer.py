# -*- test-case-name: raftmux.test.test_muxado_v1_gopeer -*-
"""
The generation-1 Go test peer (raftmux/test/go/muxado1peer, on Debian's Go
muxado v1) checked against itself, and the sans-IO ``MuxadoV1Connection``
checked against it over a plain loopback socket: real Go v1 bytes, no
Twisted session shell.  Everything skips when Go or the Debian library is
missing.
"""

import json
import os
import selectors
import socket
import struct
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import connection as ev
from raftmux.muxado.errors import ErrorCode
from raftmux.muxado.v1connection import MuxadoV1Connection
from raftmux.muxado.v1frames import HEARTBEAT_PRIORITY, HEARTBEAT_TYPE
from raftmux.testing.gopeer import buildMuxado1Peer

TIMEOUT = 20


class _Process:
    """A running peer; its stdout read a JSON line at a time, with a deadline."""

    def __init__(self, testCase, args):
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        testCase.addCleanup(self.stop)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""

    def line(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise AssertionError("no output from %r in %ss" % (self.proc.args, timeout))
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError("%r exited: %r" % (self.proc.args, self.proc.stderr.read()))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def lineWith(self, key, value, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.1, deadline - time.monotonic()))
            if line.get(key) == value:
                return line

    def stop(self):
        self._selector.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            pipe.close()


def startServer(testCase, *flags):
    server = _Process(testCase, [buildMuxado1Peer(), "-serve", "-exit-on-stdin-eof"] + list(flags))
    return server, server.line()["listening"]


class GoPeerSelfTests(SynchronousTestCase):
    """The Go peer agrees with itself, so interop failures later are ours."""

    def scenario(self, port, name, *flags):
        result = subprocess.run(
            [buildMuxado1Peer(), "-dial", "127.0.0.1:%d" % (port,), "-scenario", name,
             "-timeout", "%ds" % (TIMEOUT,)] + list(flags),
            capture_output=True, timeout=TIMEOUT + 10)
        line = json.loads(result.stdout.decode().splitlines()[-1])
        self.assertEqual((line["scenario"], line["ok"], line["errors"]), (name, True, []), line)
        self.assertEqual(result.returncode, 0)
        return line

    def test_scenarios(self):
        server, port = startServer(self, "-heartbeat-interval", "50ms")
        self.assertEqual(self.scenario(port, "echo", "-n", "20")["echoed"], 20)
        self.assertEqual(self.scenario(port, "bulk", "-size", "300000")["received"], 300000)
        self.assertEqual(self.scenario(port, "concurrent", "-n", "8")["echoed"], 8)
        self.assertEqual(self.scenario(port, "halfclose")["echoed"], "half-close test")
        line = self.scenario(port, "rst")
        self.assertEqual((line["extensionRst"], line["closedStreamRst"]), (4, 4))
        self.assertEqual(len(self.scenario(port, "typed")["cases"]), 5)
        self.assertEqual(self.scenario(port, "accept", "-n", "2")["accepted"], 2)
        line = self.scenario(port, "idle", "-seconds", "0.5", "-heartbeat-interval", "50ms")
        self.assertGreaterEqual(line["heartbeatEchoesReceived"], 2)
        self.assertGreaterEqual(line["heartbeatPingsReceived"], 2)

    def test_unknownScenario(self):
        result = subprocess.run([buildMuxado1Peer(), "-dial", "127.0.0.1:1", "-scenario", "nope"],
                                capture_output=True, timeout=TIMEOUT)
        self.assertEqual(result.returncode, 2)
        self.assertFalse(json.loads(result.stdout)["ok"])


class _Driver:
    """
    A MuxadoV1Connection on a blocking socket, driven by hand: what a session
    shell will do, minus Twisted.  Echoes the peer's heartbeat pings and gives
    credit back for everything received.
    """

    def __init__(self, testCase, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        testCase.addCleanup(self.sock.close)
        self.conn = MuxadoV1Connection(client=True)
        self.received = {}
        self.events = []
        self.heartbeats = set()
        self.eof = False
        self.bytesIn = 0

    def flush(self):
        data = b"".join(self.conn.dataToSend())
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout=TIMEOUT, step=None):
        """Read and answer until ``until()``; it is asked again at least every ``step`` s."""
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            if until():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.eof:
                raise AssertionError("condition not met; events: %r" % (
                    [e.__class__.__name__ for e in self.events][-20:],))
            self.sock.settimeout(remaining if step is None else min(remaining, step))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.eof = True
                continue
            self.bytesIn += len(data)
            for event in self.conn.receiveData(data):
                self.events.append(event)
                if isinstance(event, ev.StreamOpened) and event.streamType == HEARTBEAT_TYPE:
                    self.heartbeats.add(event.streamId)
                elif isinstance(event, ev.DataReceived):
                    self.received[event.streamId] = self.received.get(event.streamId, b"") + event.data
                    self.conn.acknowledgeReceivedData(event.streamId, len(event.data))
                    if event.streamId in self.heartbeats:
                        self.conn.sendData(event.streamId, event.data)

    def ended(self, streamId):
        return any(isinstance(e, ev.StreamEnded) and e.streamId == streamId for e in self.events)

    def eventsOf(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


class ConnectionAgainstGoTests(SynchronousTestCase):
    """MuxadoV1Connection's bytes against a running Go v1 session."""

    def connect(self, *flags):
        self.server, port = startServer(self, *flags)
        return _Driver(self, port)

    def test_echoHeartbeatAndOurGoAway(self):
        """
        Go's server opens its heartbeat stream as spec 15.2 says (type
        0xFFFFFEFF, priority 0x7FFFFFFF); we echo its pings; a stream echoes;
        and Go reads our GOAWAY's debug text exactly.
        """
        driver = self.connect("-heartbeat-interval", "20ms")
        streamId = driver.conn.openStream()
        driver.conn.sendData(streamId, b"hello")
        driver.conn.endStream(streamId)
        driver.pump(lambda: driver.ended(streamId))
        self.assertEqual(driver.received[streamId], b"hello")
        self.assertFalse(driver.conn.isOpen(streamId))
        [heartbeat] = [e for e in driver.eventsOf(ev.StreamOpened)
                       if e.streamType == HEARTBEAT_TYPE]
        self.assertEqual((heartbeat.streamId, heartbeat.priority), (2, HEARTBEAT_PRIORITY))
        driver.pump(lambda: len(driver.received.get(2, b"")) >= 8)
        self.assertEqual(driver.received[2][:8], bytes(8))   # Go's counter is always 0
        driver.conn.goAway(ErrorCode.NO_ERROR, b"python says bye")
        driver.flush()
        driver.sock.close()
        end = self.server.lineWith("event", "session-end")
        self.assertEqual(end["remoteDebug"], "")   # ours declares none (see v1frames)
        self.assertGreaterEqual(end["heartbeatEchoesReceived"], 2)
        self.assertTrue(end["goAwayReceived"])

    def test_typedStream(self):
        driver = self.connect()
        streamId = driver.conn.openStream(streamType=0x1234, priority=7)
        driver.pump(lambda: len(driver.received.get(streamId, b"")) >= 8)
        self.assertEqual(struct.unpack(">II", driver.received[streamId][:8]), (0x1234, 7))

    def test_bulkAcrossManyWindows(self):
        """1 MiB each way: our 16,383-byte frames and batched credit suit Go's 64 KiB ring."""
        driver = self.connect()
        streamId = driver.conn.openStream()
        payload = bytes(range(256)) * 4096
        sent = 0

        def progress():
            nonlocal sent
            if sent < len(payload):
                sent += driver.conn.sendData(streamId, payload[sent:sent + 65536])
                if sent == len(payload):
                    driver.conn.endStream(streamId)
            return driver.ended(streamId)
        driver.pump(progress)
        self.assertEqual(driver.received[streamId], payload)
        self.assertEqual(driver.eventsOf(ev.StreamReset), [])

    def test_goBrokenGoAwayOnClose(self):
        """Go's Close(): its short GOAWAY is acted on at once, then the transport ends."""
        driver = self.connect()
        first = driver.conn.openStream()
        streamId = driver.conn.openStream()
        driver.conn.sendData(streamId, b"CLOSE\n")
        driver.pump(lambda: driver.eventsOf(ev.GoAwayReceived))
        [goAway] = driver.eventsOf(ev.GoAwayReceived)
        self.assertEqual((goAway.lastStreamId, goAway.code, goAway.refused),
                         (streamId, ErrorCode.NO_ERROR, []))
        self.assertEqual(driver.conn.goAwayReceived.code, ErrorCode.NO_ERROR)
        self.assertIsNone(driver.conn.terminated)
        self.assertTrue(driver.conn.isOpen(first))

    def test_goAwayCommandLeavesTheSessionOpen(self):
        """Go's public GoAway(): acted on at once; what Go sends after it is read on."""
        driver = self.connect("-heartbeat-interval", "20ms")
        streamId = driver.conn.openStream()
        driver.conn.sendData(streamId, b"GOAWAY 3 bye\n")
        later = driver.conn.openStream()
        driver.pump(lambda: driver.eventsOf(ev.GoAwayReceived))
        [goAway] = driver.eventsOf(ev.GoAwayReceived)
        self.assertEqual(goAway.code, ErrorCode.FLOW_CONTROL_ERROR)
        # Go's GoAway() may run before or after its reader sees our second SYN.
        self.assertIn(goAway.lastStreamId, (streamId, later))
        self.assertEqual(goAway.refused, [later] if goAway.lastStreamId == streamId else [])
        # Go's echo of more data (DATA + WNDINC) arrives and is read as frames.
        count = len(driver.received.get(streamId, b""))
        driver.conn.sendData(streamId, b"more")
        driver.pump(lambda: driver.received.get(streamId, b"")[count:] == b"more")
        self.assertIsNone(driver.conn.terminated)

    def test_rstFromGo(self):
        """The two RSTs Go v1 sends by itself, as StreamReset(STREAM_CLOSED) events."""
        driver = self.connect()
        extension = driver.conn.openStream(streamType=0xFFFFFF00)
        closed = driver.conn.openStream()
        driver.conn.sendData(closed, b"RST\n")
        driver.pump(lambda: driver.ended(closed))
        self.assertEqual(driver.received[closed], b"OK\n")
        # Go's Close() sends FIN and only then forgets the stream: DATA that
        # lands in between is buffered without a word.  So send again (every
        # 50 ms, as Go's own scenario does) until the RST comes.
        nextSend = 0.0

        def resetTwice():
            nonlocal nextSend
            if len(driver.eventsOf(ev.StreamReset)) >= 2:
                return True
            if time.monotonic() >= nextSend:
                driver.conn.sendData(closed, b"more")
                nextSend = time.monotonic() + 0.05
            return False
        driver.pump(resetTwice, step=0.05)
        self.assertEqual(sorted((e.streamId, e.code, e.remote)
                                for e in driver.eventsOf(ev.StreamReset)),
                         [(extension, ErrorCode.STREAM_CLOSED, True),
                          (closed, ErrorCode.STREAM_CLOSED, True)])

    def test_goOpensStreamsToUs(self):
        driver = self.connect()
        control = driver.conn.openStream()
        driver.conn.sendData(control, b"OPEN 2 7 9\n")
        driver.pump(lambda: sum(1 for e in driver.eventsOf(ev.StreamOpened)
                                if e.streamType == 7) == 2)
        ids = [e.streamId for e in driver.eventsOf(ev.StreamOpened) if e.streamType == 7]
        self.assertEqual([e.priority for e in driver.eventsOf(ev.StreamOpened)
                          if e.streamType == 7], [9, 9])
        self.assertTrue(all(streamId % 2 == 0 for streamId in ids))
        for streamId in ids:
            driver.conn.sendData(streamId, b"probe")
        expected = b"hello from go\nprobe"
        driver.pump(lambda: all(driver.received.get(i, b"") == expected for i in ids))
