"""
Test servers for the HTTP/2 shell and ``H2Agent``: a router with a few
routes (our own server), and helpers to run external servers.
"""

import os
from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from raftmux.h2 import H2Config, H2ServerFactory, HandlerFactory, IH2Router, IH2StreamHandler


@implementer(IH2StreamHandler)
class Handler(Protocol):
    """Base: records the request and its body."""

    def __init__(self, server):
        self.server = server
        self.headers = None
        self.body = b""

    def headersReceived(self, headers):
        self.headers = headers
        self.path = dict(headers).get(b":path", b"")
        self.started()

    def started(self):
        pass

    def trailersReceived(self, headers):
        pass

    def dataReceived(self, data):
        self.body += data

    def readConnectionLost(self):
        self.finished()

    def finished(self):
        pass

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.server.lost.append(reason)


class Hello(Handler):
    def finished(self):
        self.transport.respond(200, [(b"content-type", b"text/plain")], b"hello from raftmux")


class Echo(Handler):
    """Echoes the body as it arrives (full duplex)."""

    def started(self):
        self.transport.sendHeaders([(b":status", b"200")])

    def dataReceived(self, data):
        self.transport.write(data)

    def finished(self):
        self.transport.loseWriteConnection()


class Sink(Handler):
    """Counts the body without keeping it; answers its length."""

    def __init__(self, server):
        Handler.__init__(self, server)
        self.count = 0

    def dataReceived(self, data):
        self.count += len(data)
        self.server.received = self.count

    def finished(self):
        self.transport.respond(200, body=b"%d" % (self.count,))


@implementer(IPushProducer)
class Big(Handler):
    """``/big?n=N``: N bytes through a registered producer; ``server.written`` counts."""

    def started(self):
        query = parse_qs(self.path.partition(b"?")[2].decode())
        self.left = int(query.get("n", ["0"])[0])
        self.paused = False
        self.server.written = 0
        self.server.bigPauses = 0
        self.transport.sendHeaders([(b":status", b"200"),
                                    (b"content-length", b"%d" % (self.left,))])
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self):
        self.paused = True
        self.server.bigPauses += 1

    def resumeProducing(self):
        self.paused = False
        chunk = b"x" * 16384
        while not self.paused and self.left > 0:
            piece = chunk[:self.left]
            self.left -= len(piece)
            self.server.written += len(piece)
            self.transport.write(piece)
        if self.left == 0 and not self.transport.disconnected:
            self.left = -1
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def stopProducing(self):
        self.paused = True


class Hold(Handler):
    """Never answers; the test may, through ``server.held``."""

    def started(self):
        self.server.held.append(self)


class Headers(Handler):
    def finished(self):
        body = b"\n".join(b"%s: %s" % field for field in self.headers)
        self.transport.respond(200, body=body)


class Trailers(Handler):
    def finished(self):
        self.transport.sendHeaders([(b":status", b"200")])
        self.transport.write(b"body before trailers")
        self.transport.sendTrailers([(b"x-trailer", b"yes")])


class GoAwayFirst(Handler):
    """The server's first request gets GOAWAY(last stream 0): never processed."""

    def started(self):
        connection = self.transport.host
        if not self.server.goneAway:
            self.server.goneAway.append(connection)
            connection.conn.close_connection(last_stream_id=0)
            connection.goAwaySent = 0
            connection.flush()

    def finished(self):
        self.transport.respond(200, body=b"processed %d" % (len(self.body),))


class RefuseFirst(Handler):
    """The first request is refused (RST_STREAM REFUSED_STREAM)."""

    def started(self):
        if not self.server.refused:
            self.server.refused.append(self)
            self.transport.reset(0x7)

    def finished(self):
        self.transport.respond(200, body=b"accepted")


ROUTES = {b"/hello": Hello, b"/echo": Echo, b"/sink": Sink, b"/big": Big, b"/hold": Hold,
          b"/headers": Headers, b"/trailers": Trailers, b"/goaway": GoAwayFirst,
          b"/refuse": RefuseFirst}


@implementer(IH2Router)
class TestServer:
    """Our shell serving ``ROUTES`` (by path, query ignored)."""

    def __init__(self, config=None, clock=None):
        self.lost = []
        self.held = []
        self.goneAway = []
        self.refused = []
        self.written = 0
        self.received = 0
        self.bigPauses = 0
        self.requests = 0
        self.factory = H2ServerFactory(self, config or H2Config(), clock=clock)

    def route(self, request):
        self.requests += 1
        path = request.path.partition(b"?")[0]
        if path.startswith(b"/status/"):
            from raftmux.h2 import StatusResponse
            return StatusResponse(int(path[8:]))
        cls = ROUTES.get(path)
        if cls is None:
            return None
        return HandlerFactory(lambda stream: cls(self))


def listeningPort(pid):
    """The TCP port process ``pid`` listens on (from /proc), or None yet."""
    inodes = set()
    fdDir = "/proc/%d/fd" % (pid,)
    try:
        for fd in os.listdir(fdDir):
            try:
                target = os.readlink(os.path.join(fdDir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                return int(parts[1].rsplit(":", 1)[1], 16)
    return None


def waitFor(reactor, check, timeout=10.0, interval=0.02):
    """Poll ``check()`` until it returns something true (bounded); a Deferred."""
    from twisted.internet import task

    @defer.inlineCallbacks
    def loop():
        for _ in range(int(timeout / interval)):
            value = check()
            if value:
                return value
            yield task.deferLater(reactor, interval, lambda: None)
        raise AssertionError("condition not met within %gs" % (timeout,))
    return loop()
