"""
Attacks on a real node's limits, shared by ``python -m raftmux.bench
limits`` (thousands of connections, figures for docs/security.md) and
``raftmux.test.test_limits`` (hundreds, assertions).

``NodeProcess`` runs one ``twistd -n raftmux`` member on loopback, with
its peer and client URLs on two kernel-chosen ports, and reads its RSS
from ``/proc``.  Each attack is a class built with the node's address and
a size (connections or streams): ``start()`` opens its connections and
sends what makes the node hold them, ``tick()`` (called about every 0.2 s
while the attack lasts) keeps them going (slowloris drips), ``settle()``
waits, within a bound, for what the node is expected to do (close the
connections, reset streams, send GOAWAY), ``outcome()`` says what it did
in a short line, and ``close()`` closes everything.  ``expected()``
returns a problem string when the node did not enforce its limit, else
None.  Sockets are plain blocking/non-blocking sockets: the node is the
only Twisted process involved.
"""

import contextlib
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import deque
from typing import Any

from raftmux.cluster import childEnvironment, twistdCommand
from raftmux.testing.procstat import cpuSeconds, statusKiB


def raiseFileLimit(wanted):
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def freePorts(n):
    """``n`` distinct free ports (see ``raftmux.cluster.freePort``)."""
    from raftmux.cluster import freePort

    return [freePort() for _ in range(n)]


def _dieWithParent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class NodeProcess:
    """
    One ``twistd -n raftmux`` member in a scratch data directory.  Use as a
    context manager: the process is terminated and the directory removed
    at the end, whatever happened.
    """

    def __init__(self, extraFlags=()):
        self.extraFlags = list(extraFlags)
        self.peerPort, self.clientPort = freePorts(2)
        self.directory = None
        self.proc: Any = None
        self.lines: deque[str] = deque(maxlen=200)
        self.lineCount = 0
        self._newLine = threading.Condition()
        self._reader = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=60):
        self.directory = tempfile.mkdtemp(prefix="raftmux-limits-")
        peer = "http://127.0.0.1:%d" % (self.peerPort,)
        client = "http://127.0.0.1:%d" % (self.clientPort,)
        args = twistdCommand() + [
            "-n", "--pidfile=", "raftmux",
            "--name", "n1", "--data-dir", os.path.join(self.directory, "n1.etcd"),
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--initial-cluster", "n1=" + peer, "--initial-cluster-token", "limits",
            "--heartbeat-interval", "50", "--election-timeout", "500"] + self.extraFlags
        # The node runs the raftmux this process imported (a worktree's, not
        # an installed one), whatever the current directory.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_dieWithParent, env=childEnvironment())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            status = put("127.0.0.1", self.clientPort, b"/kv/ready", b"1", timeout=2)[0]
            if status == 200:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the node did not start (status %r); its last lines:\n%s"
                                   % (status, "\n".join(self.lines)))
            # Wait for the node to say something (an election, the listening
            # line) rather than for a fixed time.
            with self._newLine:
                self._newLine.wait(0.2)

    def _read(self):
        for raw in self.proc.stdout:
            with self._newLine:
                self.lines.append(raw.decode("utf-8", "replace").rstrip())
                self.lineCount += 1
                self._newLine.notify_all()

    def rss(self):
        """The node's resident set, in bytes (Linux ``/proc``)."""
        kib = statusKiB(self.proc.pid, "VmRSS")
        if kib is None:
            raise RuntimeError("no VmRSS for pid %d" % (self.proc.pid,))
        return kib * 1024

    def cpuSeconds(self):
        """User + system CPU time the node has used (Linux ``/proc``)."""
        return cpuSeconds(self.proc.pid)

    def clusterID(self):
        """The cluster ID (hex bytes), as a peer learns it from ``/members``."""
        with socket.create_connection(("127.0.0.1", self.peerPort), timeout=5) as s:
            s.sendall(b"GET /members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        for line in data.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"x-etcd-cluster-id":
                return value.strip()
        raise RuntimeError("no X-Etcd-Cluster-ID in %r" % (data[:200],))

    def spooledBytes(self):
        """
        Bytes in files the node holds open but has deleted: twisted.web's
        request bodies spooled to temporary files.
        """
        total = 0
        directory = "/proc/%d/fd" % (self.proc.pid,)
        for fd in os.listdir(directory):
            path = os.path.join(directory, fd)
            with contextlib.suppress(OSError):
                if os.readlink(path).endswith(" (deleted)"):
                    total += os.stat(path).st_size
        return total

    def openFiles(self):
        return len(os.listdir("/proc/%d/fd" % (self.proc.pid,)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self._reader is not None:
                self._reader.join(5)
            self.proc.stdout.close()
            self.proc = None
        if self.directory is not None:
            import shutil
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class RSSSampler:
    """Samples a node's RSS every ``interval`` seconds in a thread; ``peak`` is the largest."""

    def __init__(self, node, interval=0.05):
        self.node = node
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.peak = self.node.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, self.node.rss())


# -- HTTP/1.1 helpers ------------------------------------------------------------------

def put(host, port, path, body, timeout=5.0):
    """One ``PUT`` on a new connection: ``(status, body)``, or ``(None, error)``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % (path, host.encode(), len(body)) + body)
            return _readResponse(s)
    except OSError as e:
        return None, str(e)


def _readResponse(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, "closed before a response"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length]


class Writer:
    """
    A client that keeps writing to the node (``PUT /kv/limits-<n>``) on
    ``connections`` keep-alive connections from threads, counting the
    writes answered 200 and the failures, until ``stop()``.
    """

    def __init__(self, host, port, connections=2, valueSize=100):
        self.host = host
        self.port = port
        self.value = b"v" * valueSize
        self.ok = 0
        self.failed = 0
        self.lastError = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(connections)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, i):
        n = 0
        s = None
        while not self._stop.is_set():
            try:
                if s is None:
                    s = socket.create_connection((self.host, self.port), timeout=10)
                s.sendall(b"PUT /kv/limits-%d-%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                          b"\r\n\r\n" % (i, n % 100, len(self.value)) + self.value)
                status, _ = _readResponse(s)
                n += 1
                with self._lock:
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failed += 1
                        self.lastError = "status %r" % (status,)
                if status is None:
                    s.close()
                    s = None
            except OSError as e:
                with self._lock:
                    self.failed += 1
                    self.lastError = str(e)
                if s is not None:
                    s.close()
                s = None
        if s is not None:
            s.close()


# -- attacks -----------------------------------------------------------------------------

class Attack:
    """Base class: a set of sockets to the node, opened by ``start``."""

    name = "attack"
    what = ""            # the limit exercised, for the table
    unit = "connections"
    limited = True       # False: no limit applies; the attack only measures the cost

    def __init__(self, host, port, size):
        self.host = host
        self.port = port
        self.size = size
        self.socks = []
        self.refused = 0

    def connect(self, blocking=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        try:
            s.connect((self.host, self.port))
        except OSError:
            s.close()
            self.refused += 1
            return None
        s.setblocking(blocking)
        self.socks.append(s)
        return s

    def start(self):
        raise NotImplementedError()

    def tick(self):
        pass

    def settle(self, timeout):
        pass

    def outcome(self):
        return ""

    def expected(self):
        return None

    def close(self):
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()
        self.socks = []

    def closedByNode(self, timeout, action=None, every=1.0):
        """
        How many of the sockets the node has closed, waiting up to
        ``timeout`` for all of them; ``action()`` is called every ``every``
        seconds meanwhile (a slowloris keeps dripping while it waits).
        """
        deadline = time.monotonic() + timeout
        nextAction = time.monotonic() + every
        open_ = set(self.socks)
        closed = 0
        while open_ and time.monotonic() < deadline:
            if action is not None and time.monotonic() >= nextAction:
                action()
                nextAction += every
            ready = _poll(open_, min(0.5, max(0.0, deadline - time.monotonic())))
            for s in ready:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    open_.discard(s)
                    closed += 1
        return closed


def _poll(socks, timeout):
    """The sockets of ``socks`` with something to read (or closed), via epoll."""
    ep = select.epoll()
    try:
        byFd = {}
        for s in socks:
            try:
                fd = s.fileno()
            except OSError:
                continue
            if fd < 0:
                continue
            byFd[fd] = s
            ep.register(fd, select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP)
        return [byFd[fd] for fd, _ in ep.poll(timeout)]
    finally:
        ep.close()


class IdleFlood(Attack):
    """Connections that send nothing: the sniffer's deadline closes them."""

    name = "idle connections"
    what = "sniff timeout (10 s from accept)"

    def start(self):
        for _ in range(self.size):
            self.connect()

    def settle(self, timeout):
        self.closed = self.closedByNode(timeout)

    def outcome(self):
        return "%d of %d closed by the node within the sniff timeout" % (
            self.closed, len(self.socks))

    def expected(self):
        if self.closed < len(self.socks):
            return "%d idle connections were still open" % (len(self.socks) - self.closed,)
        return None


class SniffSlowloris(Attack):
    """One byte of a request line every tick: the sniff deadline is for the whole sniff."""

    name = "slowloris while sniffed"
    what = "one sniff deadline, not per read"
    LINE = b"PUT /kv/slow HTTP/1.1\r\n"

    def start(self):
        self.sent = 0
        for _ in range(self.size):
            s = self.connect(blocking=False)
            if s is not None:
                s.send(self.LINE[:1])
        self.sent = 1

    def tick(self):
        # One more byte of the request line, never its end (then the path grows).
        byte = self.LINE[self.sent:self.sent + 1] if self.sent < len(self.LINE) - 12 else b"x"
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.send(byte)
        self.sent += 1

    def settle(self, timeout):
        # Keep dripping while waiting: only a deadline for the whole sniff ends it.
        self.closed = self.closedByNode(timeout, action=self.tick)

    def outcome(self):
        return "%d of %d closed by the sniff deadline" % (self.closed, len(self.socks))

    def expected(self):
        if self.closed < len(self.socks):
            return "%d dripping connections outlived the sniff deadline" % (
                len(self.socks) - self.closed,)
        return None


class HTTPSlowloris(Attack):
    """
    A request head sent a header line at a time, one line per tick per
    connection, never finished.  Twisted's HTTP/1.1 channel has an idle
    timeout (60 s, reset by every byte) and a 16 KiB head limit, but no
    deadline for the whole head: this measures what each such connection
    costs the node and checks the head limit closes a head that grows.
    """

    name = "slowloris in HTTP/1.1 headers"
    what = "head size 16 KiB (Twisted); idle timeout 60 s"
    HEAD = b"PUT /kv/slow HTTP/1.1\r\nHost: x\r\n"
    lines = 0

    def start(self):
        for _ in range(self.size):
            s = self.connect(blocking=False)
            if s is not None:
                s.send(self.HEAD)

    def tick(self):
        self.lines += 1
        line = b"X-Drip-%d: %s\r\n" % (self.lines, b"d" * 200)
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.send(line)

    def settle(self, timeout):
        # Grow every head past 16 KiB: the node must answer 400 and close.
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.send(b"X-Big: " + b"b" * 17000 + b"\r\n")
        self.closed = self.closedByNode(timeout)

    def outcome(self):
        return ("held open while dripping (%d header lines each); %d of %d closed once "
                "their head passed 16 KiB" % (self.lines, self.closed, len(self.socks)))

    def expected(self):
        if self.closed < len(self.socks):
            return "%d heads over 16 KiB were not refused" % (len(self.socks) - self.closed,)
        return None


# -- muxado ------------------------------------------------------------------------------

def _v2Syn(streamId, payload):
    return struct.pack(">II", (len(payload) << 8) | 0x12, streamId) + payload


def _v2Data(streamId, payload, declared=None):
    length = len(payload) if declared is None else declared
    return struct.pack(">II", (length << 8) | 0x10, streamId) + payload


def _v1Syn(streamId):
    return struct.pack(">HBBI", 0, 0, 1, streamId)


def _v1Data(streamId, payload):
    return struct.pack(">HBBI", len(payload), 0, 3, streamId) + payload


class _FrameCounter:
    """Counts RST and GOAWAY frames (and their codes) in the bytes a node sends back."""

    def __init__(self, version):
        self.version = version
        self.buf = b""
        self.rsts = {}
        self.goAway = None
        self.bytes = 0

    def feed(self, data):
        self.bytes += len(data)
        self.buf += data
        while len(self.buf) >= 8:
            if self.version == 2:
                word, streamId = struct.unpack(">II", self.buf[:8])
                length, frameType = word >> 8, (word >> 4) & 0xF
                rst, goAway = 0, 3
            else:
                length, _, frameType, streamId = struct.unpack(">HBBI", self.buf[:8])
                length &= 0x3FFF
                frameType &= 0x1F
                rst, goAway = 2, 6
            if frameType == goAway:
                need = 8 + 8 if self.version == 1 else 8 + length
            else:
                need = 8 + length
            if len(self.buf) < need:
                return
            body = self.buf[8:need]
            if frameType == rst:
                code = struct.unpack(">I", body[:4])[0]
                self.rsts[code] = self.rsts.get(code, 0) + 1
            elif frameType == goAway:
                self.goAway = struct.unpack(">II", body[:8])
            self.buf = self.buf[need:]


class MuxadoStreamFlood(Attack):
    """
    One muxado session opening ``size`` streams, each holding an unfinished
    HTTP/1.1 request head: past ``maxIncomingStreams`` (1,024) the node must
    refuse streams with RST, whatever the peer does.
    """

    unit = "streams"
    what = "maxIncomingStreams 1,024 per session"

    def __init__(self, host, port, size, version):
        Attack.__init__(self, host, port, size)
        self.version = version
        self.name = "stream flood, muxado v%d" % (version,)
        self.counter = _FrameCounter(version)

    def start(self):
        s = self.connect()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n"
        out = []
        for i in range(self.size):
            streamId = 2 * i + 3
            if self.version == 2:
                out.append(_v2Syn(streamId, head))
            else:
                out.append(_v1Syn(streamId) + _v1Data(streamId, head))
        s.settimeout(30)
        s.sendall(b"".join(out))
        s.setblocking(False)

    def settle(self, timeout):
        s = self.socks[0]
        refusedWanted = max(0, self.size - 1024)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(self.counter.rsts.values()) >= refusedWanted and refusedWanted:
                break
            if not _poll([s], 0.2):
                if not refusedWanted:
                    break
                continue
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                break
            if not data:
                break
            self.counter.feed(data)

    def outcome(self):
        rsts = sum(self.counter.rsts.values())
        return "%d streams refused with RST %s" % (
            rsts, ",".join("%d" % c for c in sorted(self.counter.rsts)) or "-")

    def expected(self):
        wanted = max(0, self.size - 1024)
        if sum(self.counter.rsts.values()) < wanted:
            return "only %d of the %d streams over the limit were refused" % (
                sum(self.counter.rsts.values()), wanted)
        return None


class MuxadoWindowOverrun(Attack):
    """
    On each connection, one stream whose DATA passes its receive window
    (v2: one frame declaring 16 MiB; v1: frames adding up to 1 MiB): the
    node must reset the stream (FLOW_CONTROL_ERROR), never buffer it.
    """

    what = "stream receive window (v2 256 KiB, v1 64 KiB)"

    def __init__(self, host, port, size, version, payload=1 << 20):
        Attack.__init__(self, host, port, size)
        self.version = version
        self.payload = payload
        self.name = "window overrun, muxado v%d" % (version,)
        self.counters = {}

    def start(self):
        chunk = b"x" * 16383
        for _ in range(self.size):
            s = self.connect()
            if s is None:
                continue
            s.settimeout(30)
            self.counters[s] = counter = _FrameCounter(self.version)
            if self.version == 2:
                s.sendall(_v2Syn(3, b"POST /kv/x HTTP/1.1\r\nHost: x\r\n"))
                s.sendall(_v2Data(3, b"", declared=0xFFFFFF))
            else:
                s.sendall(_v1Syn(3) + _v1Data(3, b"POST /kv/x HTTP/1.1\r\nHost: x\r\n"))
            sent = 0
            while sent < self.payload:
                body = chunk if self.version == 2 else _v1Data(3, chunk)
                try:
                    s.sendall(body)
                except OSError:
                    break
                sent += len(chunk)
                while _poll([s], 0):
                    data = s.recv(65536)
                    if not data:
                        break
                    counter.feed(data)
            s.setblocking(False)

    def settle(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(c.rsts for c in self.counters.values()):
            for s in _poll(list(self.counters), 0.2):
                with contextlib.suppress(BlockingIOError, OSError):
                    data = s.recv(1 << 20)
                    if data:
                        self.counters[s].feed(data)

    def outcome(self):
        reset = sum(1 for c in self.counters.values() if c.rsts)
        codes = sorted({code for c in self.counters.values() for code in c.rsts})
        return "%d of %d overrun streams reset (RST %s)" % (
            reset, len(self.counters), ",".join(map(str, codes)) or "-")

    def expected(self):
        missing = sum(1 for c in self.counters.values() if not c.rsts)
        if missing:
            return "%d overrun streams were not reset" % (missing,)
        return None


# -- HTTP/2 -------------------------------------------------------------------------------

def h2Frame(frameType, flags, streamId, payload):
    """One HTTP/2 frame."""
    return (struct.pack(">I", len(payload))[1:] + bytes([frameType, flags])
            + struct.pack(">I", streamId) + payload)


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2Headers(path, contentType=None, method="GET"):
    """An HPACK header block for a request (fresh encoder: no dynamic table)."""
    from hpack import Encoder

    fields = [(":method", method), (":path", path), (":scheme", "http"),
              (":authority", "127.0.0.1")]
    if contentType:
        fields.append(("content-type", contentType))
    return Encoder().encode(fields)


class H2Reader:
    """
    Reads a server's frames: ``goAway`` (last stream, code) once one came,
    ``statuses`` the ``:status`` of each stream's response, ``resets`` the
    RST_STREAM codes, ``closed`` once the connection ended.
    """

    def __init__(self):
        from hpack import Decoder

        self.buf = b""
        self.goAway = None
        self.statuses = {}
        self.resets = {}
        self.closed = False
        self.bytes = 0
        self._decoder = Decoder()

    def feed(self, data):
        if not data:
            self.closed = True
            return
        self.bytes += len(data)
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            frameType, flags = self.buf[3], self.buf[4]
            streamId = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if frameType == 0x7 and self.goAway is None:
                self.goAway = struct.unpack(">II", payload[:8])
            elif frameType == 0x3:
                self.resets[streamId] = struct.unpack(">I", payload[:4])[0]
            elif frameType == 0x1:
                if flags & 0x8:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & 0x20:
                    payload = payload[5:]
                try:
                    for name, value in self._decoder.decode(payload, raw=True):
                        if name == b":status":
                            self.statuses[streamId] = int(value)
                except Exception:
                    pass

    @property
    def ended(self):
        return self.goAway is not None or self.closed


class _H2Attack(Attack):
    """Connections speaking h2c that read what the server answers."""

    def __init__(self, host, port, size):
        Attack.__init__(self, host, port, size)
        self.readers = {}

    def open(self, data):
        s = self.connect()
        if s is None:
            return None
        s.settimeout(30)
        self.readers[s] = reader = H2Reader()
        try:
            for pos in range(0, len(data), 65536):
                s.sendall(data[pos:pos + 65536])
                self.drain(s)
                if reader.ended:
                    break
        except OSError:
            reader.closed = True
        s.setblocking(False)
        return s

    def drain(self, s):
        while _poll([s], 0):
            try:
                data = s.recv(1 << 20)
            except (BlockingIOError, OSError):
                return
            self.readers[s].feed(data)
            if not data:
                return

    def settle(self, timeout):
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline and not all(self.done(r) for r in self.readers.values()):
            for s in _poll([s for s, r in self.readers.items() if not r.closed], 0.2):
                try:
                    data = s.recv(1 << 20)
                except (BlockingIOError, OSError):
                    continue
                self.readers[s].feed(data)
        self.settledIn = time.monotonic() - began

    def done(self, reader):
        return reader.ended

    def endedCount(self):
        return sum(1 for r in self.readers.values() if r.ended)

    def expected(self):
        missing = len(self.readers) - self.endedCount()
        if missing:
            return "%d of %d connections were not ended by the server" % (
                missing, len(self.readers))
        return None


class H2RapidReset(_H2Attack):
    """
    HEADERS then RST_STREAM, again and again, on each connection
    (CVE-2023-44487): the server must end the connection (GOAWAY) once the
    peer's resets pass its budget (Twisted's Site: 1,000, then 33/s;
    gossip's server: 200, then 100/s).
    """

    def __init__(self, host, port, size, gossip, resetsPerConnection=3000):
        _H2Attack.__init__(self, host, port, size)
        self.gossip = gossip
        self.resets = resetsPerConnection
        self.name = "HTTP/2 rapid reset (%s)" % ("gossip" if gossip else "h2c, the Site",)
        self.what = ("RST_STREAM budget 200, then 100/s (gossip)" if gossip
                     else "RST_STREAM budget 1,000, then 33/s (Twisted)")

    def start(self):
        if self.gossip:
            block = h2Headers("/api/v1/ckit/transport/message", "application/x.ckit", "POST")
        else:
            block = h2Headers("/health")
        out = [H2_PREFACE, h2Frame(0x4, 0, 0, b"")]
        for i in range(self.resets):
            streamId = 2 * i + 1
            out.append(h2Frame(0x1, 0x4, streamId, block))                  # HEADERS
            out.append(h2Frame(0x3, 0, streamId, struct.pack(">I", 8)))     # RST_STREAM CANCEL
        data = b"".join(out)
        for _ in range(self.size):
            self.open(data)

    def outcome(self):
        codes = sorted({r.goAway[1] for r in self.readers.values() if r.goAway})
        return "%d of %d connections ended, GOAWAY code %s (the last %.0f s after sending)" % (
            self.endedCount(), len(self.readers), ",".join(map(str, codes)) or "-",
            self.settledIn)


class H2HeaderFlood(_H2Attack):
    """
    A HEADERS frame without END_HEADERS, then 16 KiB CONTINUATION frames
    (CVE-2024-27316's shape): the server must refuse the block (h2 takes 64
    CONTINUATIONs; HPACK's list limit is 64 KiB), not buffer it.
    """

    name = "HTTP/2 header list (CONTINUATION flood)"
    what = "64 CONTINUATION frames (h2), header list 64 KiB (hpack)"

    def start(self):
        filler = b"\x00" * 16384
        out = [H2_PREFACE, h2Frame(0x4, 0, 0, b""), h2Frame(0x1, 0, 1, h2Headers("/health"))]
        out += [h2Frame(0x9, 0, 1, filler)] * 200
        data = b"".join(out)
        for _ in range(self.size):
            self.open(data)

    def outcome(self):
        return "%d of %d connections ended (GOAWAY or close)" % (
            self.endedCount(), len(self.readers))


class H2ZeroWindow(_H2Attack):
    """
    Each connection sets SETTINGS_INITIAL_WINDOW_SIZE 0 and asks for
    ``/health``: no response body can be sent.  Twisted's HTTP/2 server
    (26.x) alone reschedules its sender with ``callLater(0)`` for ever; the
    sniffer's ``H2Connection`` blocks such a stream (see docs/security.md):
    this measures what the held connections cost the node.
    """

    name = "HTTP/2 zero window (h2c, the Site)"
    what = "a stream with no window waits for it (no busy loop); the Site's idle timeout"
    limited = False

    def start(self):
        data = (H2_PREFACE + h2Frame(0x4, 0, 0, struct.pack(">HI", 4, 0))
                + h2Frame(0x1, 0x5, 1, h2Headers("/health")))
        for _ in range(self.size):
            self.open(data)

    def done(self, reader):
        return 1 in reader.statuses or reader.ended

    def settle(self, timeout):
        _H2Attack.settle(self, min(timeout, 2))

    def outcome(self):
        return "%d of %d held open by the server (headers sent, body stuck)" % (
            len(self.readers) - self.endedCount(), len(self.readers))

    def expected(self):
        return None


class GossipFrameLength(_H2Attack):
    """
    A gossip ``/message`` whose first frame declares a length over the
    20 MiB maximum: the server must answer 400 from the header, before any
    payload.
    """

    name = "gossip frame length 4 GiB"
    what = "20 MiB per frame (memberlist's push/pull cap), before the payload"

    def start(self):
        data = (H2_PREFACE + h2Frame(0x4, 0, 0, b"")
                + h2Frame(0x1, 0x4, 1, h2Headers("/api/v1/ckit/transport/message",
                                                  "application/x.ckit", "POST"))
                + h2Frame(0x0, 0, 1, b"\xcd\xff\xff\xff\xff"))
        for _ in range(self.size):
            self.open(data)

    def done(self, reader):
        return 1 in reader.statuses or reader.ended

    def outcome(self):
        statuses = sorted({r.statuses.get(1) for r in self.readers.values()} - {None})
        return "%d of %d answered %s" % (
            sum(1 for r in self.readers.values() if 1 in r.statuses), len(self.readers),
            ",".join(map(str, statuses)) or "-")

    def expected(self):
        bad = sum(1 for r in self.readers.values() if r.statuses.get(1) != 400)
        if bad:
            return "%d of %d were not answered 400" % (bad, len(self.readers))
        return None


# -- declared lengths in HTTP/1.1 and muxado -------------------------------------------

class DeclaredLength(Attack):
    """
    Requests declaring a huge length, then ``send`` bytes of it on each
    connection, written round robin so the bodies are in flight together;
    ``refused(answer)`` says whether an answer is the refusal expected (None:
    nothing is expected, only measured).
    """

    def __init__(self, host, port, size, name, what, request, send, refused=None,
                 limited=None):
        Attack.__init__(self, host, port, size)
        self.name = name
        self.what = what
        self.request = request
        self.send = send
        self.refused: Any = refused
        self.limited = refused is not None if limited is None else limited
        self.answers = {}

    def start(self):
        chunk = b"z" * 65536
        for _ in range(self.size):
            s = self.connect()
            if s is not None:
                s.settimeout(30)
                with contextlib.suppress(OSError):
                    s.sendall(self.request)
        sent = 0
        while sent < self.send:
            piece = chunk[:min(len(chunk), self.send - sent)]
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.sendall(piece)
            sent += len(piece)
        for s in self.socks:
            s.setblocking(False)

    def settle(self, timeout):
        if self.refused is None:
            timeout = min(timeout, 5.0)  # nothing to wait for: only see what comes
        deadline = time.monotonic() + timeout
        pending = {s: b"" for s in self.socks}
        while pending and time.monotonic() < deadline:
            for s in _poll(list(pending), 0.2):
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    pending[s] += data
                    if self.refused is None or self.refused(pending[s]):
                        self.answers[s] = pending.pop(s)
                else:
                    self.answers[s] = pending.pop(s) + b"<closed>"
        self.unanswered = len(pending)

    def outcome(self):
        if not self.answers:
            return "no answer from %d (the node waits for the body)" % (self.unanswered,)
        first = next(iter(self.answers.values()))
        if first.startswith(b"HTTP/1."):
            what = first.split(b"\r\n", 1)[0].decode("latin-1")
        elif first.endswith(b"<closed>") and len(first) == 8:
            what = "closed"
        else:
            what = "%d bytes" % (len(first),)
        return "%d answered (e.g. %s), %d waiting" % (len(self.answers), what, self.unanswered)

    def expected(self):
        if self.refused is None or not self.limited:
            return None
        refused = sum(1 for a in self.answers.values() if self.refused(a))
        if refused < len(self.socks):
            return "%d of %d were not refused" % (len(self.socks) - refused, len(self.socks))
        return None


def _status(*wanted):
    def refused(answer):
        return answer.startswith(b"HTTP/1.1 ") and answer[9:12] in wanted
    return refused


def _statusOrClosed(*wanted):
    def refused(answer):
        return (answer.startswith(b"HTTP/1.1 ") and answer[9:12] in wanted) or \
            answer.endswith(b"<closed>")
    return refused


def _muxadoReset(answer):
    counter = _FrameCounter(2)
    counter.feed(answer.replace(b"<closed>", b""))
    return bool(counter.rsts) or answer.endswith(b"<closed>")


def declaredLengthAttacks(node, size, send):
    """
    The huge-declared-length attacks on every protocol but gossip (see
    ``GossipFrameLength``), ``send`` bytes of body each where a body goes.
    """
    peer, client = node.peerPort, node.clientPort
    host = "127.0.0.1"
    cid = node.clusterID()
    rafthttpHeaders = (b"Host: x\r\nX-Server-Version: 3.4.23\r\nX-Min-Cluster-Version: 3.0.0\r\n"
                       b"X-Etcd-Cluster-ID: %s\r\nX-Server-From: 1234\r\n" % (cid,))
    return [
        DeclaredLength(host, client, size, "HTTP/1.1 Content-Length 1 TiB (PUT /kv)",
                       "413 from the declared length (the client routes' body limit)",
                       b"PUT /kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % (1 << 40,), send, _status(b"413")),
        DeclaredLength(host, client, size, "HTTP/1.1 request head 64 KiB",
                       "head size 16 KiB (Twisted)",
                       b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 65536 + b"\r\n\r\n",
                       0, _statusOrClosed(b"400", b"431")),
        DeclaredLength(host, peer, size, "rafthttp pipeline body (POST /raft)",
                       "413 from the declared length (raft's message size + one request)",
                       b"POST /raft HTTP/1.1\r\n" + rafthttpHeaders
                       + b"Content-Length: %d\r\n\r\n" % (send,), send, _status(b"413")),
        DeclaredLength(host, peer, size, "rafthttp snapshot message length 2^63",
                       "512 MiB message (etcd's stream limit), before the message",
                       b"POST /raft/snapshot HTTP/1.1\r\n" + rafthttpHeaders
                       + b"Content-Length: 16\r\n\r\n" + struct.pack(">Q", 1 << 63) + b"12345678",
                       0, _status(b"400")),
        DeclaredLength(host, peer, size, "muxado v2 DATA length 16 MiB",
                       "stream window 256 KiB, before the payload",
                       _v2Syn(3, b"") + _v2Data(3, b"", declared=0xFFFFFF), send, _muxadoReset),
    ]


def allAttacks(node, scale=1.0, bodyBytes=32 << 20):
    """Every attack, sized for the bench (``scale`` 1) or smaller."""
    def n(count):
        return max(1, int(count * scale))
    host = "127.0.0.1"
    peer, client = node.peerPort, node.clientPort
    return [
        IdleFlood(host, peer, n(5000)),
        SniffSlowloris(host, peer, n(2000)),
        HTTPSlowloris(host, client, n(2000)),
        MuxadoStreamFlood(host, peer, max(1100, n(5000)), 2),
        MuxadoStreamFlood(host, peer, max(1100, n(5000)), 1),
        MuxadoWindowOverrun(host, peer, n(100), 2),
        MuxadoWindowOverrun(host, peer, n(100), 1),
        H2RapidReset(host, peer, n(50), gossip=False),
        H2RapidReset(host, peer, n(50), gossip=True),
        H2HeaderFlood(host, peer, n(100)),
        H2ZeroWindow(host, client, n(100)),
        GossipFrameLength(host, peer, n(100)),
        MuxadoBufferedStreams(host, peer, n(1000), sessions=1),
        MuxadoBufferedStreams(host, peer, n(1000), sessions=4),
    ] + declaredLengthAttacks(node, n(20), bodyBytes)


class MuxadoBufferedStreams(Attack):
    """
    ``sessions`` muxado sessions, each opening ``size`` streams that pipeline
    GET requests up to the stream's window and never read the answers nor
    credit our window: the HTTP channel behind each stream stops reading, so
    the node holds what the window let in, per stream, per session.
    """

    unit = "streams"
    what = "maxBufferedBytes per session (the node's 8 MiB), maxSessions"
    limited = True

    def __init__(self, host, port, size, sessions=1, window=0x40000):
        Attack.__init__(self, host, port, size)
        self.sessions = sessions
        self.window = window
        self.name = "buffered streams, muxado v2 (%d session%s)" % (
            sessions, "s" if sessions > 1 else "")
        self.streamsSent = []

    def start(self):
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        payload = request * (self.window // len(request))
        for _ in range(self.sessions):
            s = self.connect()
            if s is None:
                continue
            s.settimeout(5)
            sent = 0
            for i in range(self.size):
                streamId = 2 * i + 3
                frames = [_v2Syn(streamId, payload[:16384])]
                for pos in range(16384, len(payload), 16384):
                    frames.append(_v2Data(streamId, payload[pos:pos + 16384]))
                try:
                    s.sendall(b"".join(frames))
                except OSError:
                    # The node stopped reading this session (its buffered
                    # limit): TCP holds the rest back.
                    break
                sent += 1
            self.streamsSent.append(sent)
            s.setblocking(False)

    def outcome(self):
        return ("%d sessions x %d streams x %d KiB tried, answers never read; streams sent "
                "before the node stopped reading: %s" % (
                    self.sessions, self.size, self.window // 1024,
                    ", ".join(str(n) for n in self.streamsSent)))

    def expected(self):
        if self.streamsSent and all(n == self.size for n in self.streamsSent):
            return "the node read every stream of every session (no buffered limit)"
        return None
