"""
gossip benchmarks, each beside its baseline from the same run:

- ``message``: packets/s POSTed to ``/message`` over one HTTP/2 connection,
  our client to our server, 16 requests in flight (the transport's default
  ``maxInFlight``); baseline: the same client POSTing the same bodies to a
  twisted.web ``Site`` over h2c (Twisted's own HTTP/2 server).  Target >= 5k/s.
- ``message-seq``: the same with one request in flight (ckit's sender).
- ``stream``: one ``/stream``'s throughput in MB/s (64 KiB writes).

Server and client run in separate processes on loopback:

    python -m raftmux.bench.gossip server gossip|site
    python -m raftmux.bench.gossip client message|stream <port> [args]
"""

import json
import subprocess
import sys
import time

from raftmux.bench._harness import Result, median, serverProcess

MODULE = "raftmux.bench.gossip"


def measure(test, mode, *args):
    with serverProcess(MODULE, "server", mode) as (proc, port):
        out = subprocess.run([sys.executable, "-m", MODULE, "client", test, port]
                             + [str(a) for a in args], capture_output=True, text=True, timeout=600)
        lines = out.stdout.strip().splitlines()
        figures = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
        if "error" in figures:
            raise RuntimeError("%s/%s failed: %s" % (test, mode, figures["error"]))
        return figures


def run(options):
    repeats = 1 if options.quick else 3
    count = 3000 if options.quick else 10000
    mib = 64 if options.quick else 256
    results = []
    for name, inFlight, target in (("message", 16, 5000 / 2200), ("message-seq", 1, None)):
        ours = median([measure("message", "gossip", count, inFlight)["perSecond"]
                       for _ in range(repeats)])
        site = median([measure("message", "site", count, inFlight)["perSecond"]
                       for _ in range(repeats)])
        results.append(Result(name, "packets/s", ours, site, target=target,
                              notes="%d POSTs, %d in flight, one connection; baseline: "
                                    "Twisted Site over h2c; absolute target >= 5,000/s"
                                    % (count, inFlight)))
    stream = median([measure("stream", "gossip", mib)["bytesPerSecond"] for _ in range(repeats)])
    results.append(Result("stream", "MB/s", stream / 1e6, None,
                          notes="one /stream, %d MiB in 64 KiB writes" % (mib,)))
    return results


# -- the two sides ------------------------------------------------------------

def serve(mode):
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Protocol

    if mode == "gossip":
        from raftmux.gossip import GossipTransport

        class Count(Protocol):
            count = 0

            def dataReceived(self, data):
                self.count += len(data)

            def connectionLost(self, reason):
                pass

        class Counter(Count):
            def dataReceived(self, data):
                if data == b"done":
                    self.transport.write(b"%d" % (self.count,))
                else:
                    self.count += len(data)

        gossip = GossipTransport(reactor, "127.0.0.1:0", lambda *a: None,
                                 lambda s: s.attach(Counter()))
        factory = gossip.serverFactory()
    else:
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from raftmux.sniff import SniffingFactory, http2

        class Sink(Resource):
            isLeaf = True

            def render_POST(self, request):
                request.content.read()
                return b""
        factory = SniffingFactory([(http2(), Site(Sink()))])
    d = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    d.addCallback(lambda port: print(port.getHost().port, flush=True))
    reactor.run()


def client(test, port, *args):
    from twisted.internet import defer, reactor
    from twisted.internet.interfaces import IPushProducer
    from twisted.internet.protocol import Protocol
    from zope.interface import implementer

    from raftmux.gossip import MESSAGE_PATH, STREAM_PATH, H2ClientPool, encodeFrame

    address = "127.0.0.1:%s" % (port,)
    pool = H2ClientPool(reactor)
    body = encodeFrame(b"p" * 100)

    @defer.inlineCallbacks
    def message(count, inFlight):
        proto = yield pool.connectionFor(address)
        yield proto.request(MESSAGE_PATH, body)  # warm up
        done = defer.Deferred()
        state = {"sent": 0, "answered": 0, "bad": 0}

        def answered(status):
            state["answered"] += 1
            if status != 200:
                state["bad"] += 1
            if state["answered"] == count:
                done.callback(None)
            elif state["sent"] < count:
                send()

        def send():
            state["sent"] += 1
            proto.request(MESSAGE_PATH, body).addCallbacks(answered, done.errback)
        start = time.perf_counter()
        for _ in range(inFlight):
            send()
        yield done
        elapsed = time.perf_counter() - start
        if state["bad"]:
            raise RuntimeError("%d requests not answered 200" % (state["bad"],))
        return {"perSecond": count / elapsed, "seconds": elapsed}

    @implementer(IPushProducer)
    class Writer(Protocol):
        def __init__(self, total):
            self.total = total
            self.sent = 0
            self.paused = False
            self.reply = defer.Deferred()

        def connectionMade(self):
            self.transport.registerProducer(self, True)
            self.resumeProducing()

        def resumeProducing(self):
            self.paused = False
            chunk = b"x" * 65536
            while not self.paused and self.sent < self.total:
                self.transport.write(chunk)
                self.sent += len(chunk)
            if self.sent >= self.total and self.transport.producer is self:
                self.transport.unregisterProducer()
                self.transport.write(b"done")

        def pauseProducing(self):
            self.paused = True

        def stopProducing(self):
            self.paused = True

        def dataReceived(self, data):
            if not self.reply.called:
                self.reply.callback(int(data))

    @defer.inlineCallbacks
    def stream(mib):
        total = mib * 1024 * 1024
        s = yield pool.openStream(address, STREAM_PATH)
        writer = Writer(total)
        start = time.perf_counter()
        s.attach(writer)
        counted = yield writer.reply
        elapsed = time.perf_counter() - start
        if counted != total:
            raise RuntimeError("server counted %d of %d bytes" % (counted, total))
        return {"bytesPerSecond": total / elapsed, "seconds": elapsed}

    tests = {"message": message, "stream": stream}
    result = {}

    def finish(value):
        result.update(value)
        reactor.stop()

    def failed(f):
        result["error"] = f.getErrorMessage()
        reactor.stop()
    reactor.callWhenRunning(
        lambda: tests[test](*map(int, args)).addCallbacks(finish, failed))
    reactor.run()
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        sys.exit(client(*sys.argv[2:]))
