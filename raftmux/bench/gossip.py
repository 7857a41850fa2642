"""
gossip benchmarks, each beside its baseline from the same run:

- ``message``: packets/s end to end through the public API: the client's
  ``GossipTransport.writeTo`` to the server's ``onPacket`` (packets counted
  where they arrive), over one HTTP/2 connection, with the transport's
  defaults (16 POSTs in flight, batching).  Baseline: the same with
  ``maxBatchPackets=1`` (one frame per POST, as ckit sends).  Absolute
  target >= 5,000 packets/s (``Result.target`` is a ratio, so it is in the
  notes).  The writer keeps the send queue topped up to half its size, so
  nothing is dropped; the run fails if a packet is lost or a POST fails.
- ``message-post``: raw POSTs to ``/message``, one frame each, 16 in flight
  (``GossipClient.request``, on the HTTP/2 shell); baseline: the same client POSTing the same
  bodies to a twisted.web ``Site`` over h2c (Twisted's own HTTP/2 server).
- ``message-seq``: the same with one request in flight (ckit's sender).
- ``stream``: one ``/stream``'s throughput in MB/s (64 KiB writes).
- the ``membership`` part's rows: memberlist's SWIM on this transport (and
  in memory), converge and detect times beside what memberlist's LAN
  defaults promise on paper, and CPU per member per second.

Server and client run in separate processes on loopback:

    python -m raftmux.bench.gossip server gossip|site
    python -m raftmux.bench.gossip client message|writeto|stream <port> [args]
"""

import json
import subprocess
import sys
import time

from raftmux.bench._harness import Result, median, runAndReport, serverProcess

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
    packets = 50000 if options.quick else 200000
    mib = 64 if options.quick else 256
    results = []
    ours = median([measure("writeto", "gossip", packets, 0)["perSecond"]
                   for _ in range(repeats)])
    unbatched = median([measure("writeto", "gossip", count, 1)["perSecond"]
                        for _ in range(repeats)])
    results.append(Result("message", "packets/s", ours, unbatched,
                          notes="absolute target >= 5,000 packets/s; %d packets of 100 bytes, "
                                "writeTo -> onPacket, one connection, 16 POSTs in flight, "
                                "batched; baseline: same, one packet per POST (%d packets)"
                                % (packets, count)))
    for name, inFlight in (("message-post", 16), ("message-seq", 1)):
        ours = median([measure("message", "gossip", count, inFlight)["perSecond"]
                       for _ in range(repeats)])
        site = median([measure("message", "site", count, inFlight)["perSecond"]
                       for _ in range(repeats)])
        results.append(Result(name, "POSTs/s", ours, site,
                              notes="%d POSTs of one frame, %d in flight, one connection; "
                                    "baseline: Twisted Site over h2c" % (count, inFlight)))
    stream = median([measure("stream", "gossip", mib)["bytesPerSecond"] for _ in range(repeats)])
    results.append(Result("stream", "MB/s", stream / 1e6, None,
                          notes="one /stream, %d MiB in 64 KiB writes" % (mib,)))
    # What the transport is for: memberlist's SWIM over it (converge,
    # detect, CPU), beside what memberlist's LAN defaults promise on paper.
    from raftmux.bench import membership

    results.extend(membership.results(options))
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
                elif data.startswith(b"expect "):
                    # the writeto test: answer once that many packets arrived
                    packets["count"] = 0
                    packets["expect"] = int(data.split()[1])
                    packets["stream"] = self.transport
                    self.transport.write(b"ready")
                else:
                    self.count += len(data)

        packets = {"count": 0, "expect": None, "stream": None}

        def onPacket(data, fromAddress, timestamp):
            packets["count"] += 1
            if packets["count"] == packets["expect"]:
                packets["stream"].write(b"%d" % (packets["count"],))

        gossip = GossipTransport(reactor, "127.0.0.1:0", onPacket,
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

    from raftmux.gossip import MESSAGE_PATH, STREAM_PATH, GossipClient, encodeFrame

    address = "127.0.0.1:%s" % (port,)
    pool = GossipClient(reactor)
    body = encodeFrame(b"p" * 100)

    @defer.inlineCallbacks
    def message(count, inFlight):
        yield pool.request(address, MESSAGE_PATH, body)  # warm up
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
            pool.request(address, MESSAGE_PATH, body).addCallbacks(answered, done.errback)
        start = time.perf_counter()
        for _ in range(inFlight):
            send()
        yield done
        elapsed = time.perf_counter() - start
        if state["bad"]:
            raise RuntimeError("%d requests not answered 200" % (state["bad"],))
        return {"perSecond": count / elapsed, "seconds": elapsed}

    class Replies(Protocol):
        def __init__(self):
            self.replies = []

        def dataReceived(self, data):
            self.replies.pop(0).callback(data)

        def ask(self, data):
            d = defer.Deferred()
            self.replies.append(d)
            self.transport.write(data)
            return d

    @defer.inlineCallbacks
    def writeto(count, batchPackets):
        """``count`` packets through writeTo; done when the server's onPacket saw them all."""
        from prometheus_client import CollectorRegistry

        from raftmux.gossip import MAX_BATCH_PACKETS, GossipTransport
        registry = CollectorRegistry()
        gossip = GossipTransport(reactor, "127.0.0.1:0", None, None, registry=registry,
                                 maxBatchPackets=batchPackets or MAX_BATCH_PACKETS)
        control = yield gossip.dialTimeout(address, 10)
        talk = Replies()
        control.attach(talk)
        ready = yield talk.ask(b"expect %d" % (count,))
        assert ready == b"ready", ready
        arrived = defer.Deferred()
        talk.replies.append(arrived)
        payload = b"p" * 100
        topUp = gossip.queueSize // 2
        sent = [0]

        def feed():
            n = min(count - sent[0], topUp - gossip.queuedPackets)
            for _ in range(n):
                gossip.writeTo(payload, address)
            sent[0] += n
            if sent[0] < count:
                reactor.callLater(0.001, feed)
        start = time.perf_counter()
        feed()
        timeout = reactor.callLater(120, lambda: arrived.called or arrived.errback(
            RuntimeError("server saw fewer than %d packets in 120 s" % (count,))))
        got = int((yield arrived))
        elapsed = time.perf_counter() - start
        timeout.cancel()
        def sample(name):
            return registry.get_sample_value("cluster_transport_" + name) or 0.0
        failed = sample("tx_packets_failed_total")
        if got != count or failed:
            raise RuntimeError("server counted %d of %d packets, %d failed" % (got, count, failed))
        posts = sample("tx_requests_total")
        return {"perSecond": count / elapsed, "seconds": elapsed, "posts": posts,
                "packetsPerPost": sample("tx_packets_total") / posts}

    @implementer(IPushProducer)
    class Writer(Protocol):
        def __init__(self, total):
            self.total = total
            self.sent = 0
            self.paused = False
            self.reply = defer.Deferred()
            self.registered = False

        def connectionMade(self):
            self.transport.registerProducer(self, True)
            self.registered = True
            self.resumeProducing()

        def resumeProducing(self):
            self.paused = False
            chunk = b"x" * 65536
            while not self.paused and self.sent < self.total:
                self.transport.write(chunk)
                self.sent += len(chunk)
            if self.sent >= self.total and self.registered:
                self.registered = False
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

    tests = {"message": message, "writeto": writeto, "stream": stream}
    return runAndReport(lambda: tests[test](*map(int, args)))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        sys.exit(client(*sys.argv[2:]))
