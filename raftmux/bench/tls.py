"""
``python -m raftmux.bench tls``: what raftmux's TLS layer costs.

- ``handshake``: new connections per second, each a mutual-TLS handshake
  (EC P-256 certificates, TLS 1.3, ALPN http/1.1) and a one-byte echo
  (under TLS 1.3 only an answer proves the server accepted the client
  certificate), through a node-shaped port (TLS-only sniffer, TLS, sniffer
  inside with ALPN routes) vs ``TLSMemoryBIOFactory`` with the same
  context factory and no sniffers.  The load comes from threads with
  blocking ``ssl`` sockets in this process.
- ``bulk``: one muxado stream over TLS (negotiated by ALPN
  ``raftmux-muxado/1`` through the same node-shaped port) vs plain TLS
  over TCP, one connection, a length-prefixed bulk write answered when
  the last byte arrives.  Twisted clients, in their own process.

Servers run in a child process (``python -m raftmux.bench.tls server MODE DIR``).
"""

import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

from raftmux.bench._harness import Result, median, runAndReport, serverProcess, threadedRate

HOST = "127.0.0.1"
WORKERS = 8
MODULE = "raftmux.bench.tls"
CHUNK = b"x" * 65536


# -- shared protocols --------------------------------------------------------------


def _protocols():
    from twisted.internet import protocol
    from twisted.internet.interfaces import IPushProducer
    from zope.interface import implementer

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    class Sink(protocol.Protocol):
        """Reads an 8-byte length, counts that many bytes, answers the count."""

        def connectionMade(self):
            self.header = b""
            self.expected = None
            self.count = 0

        def dataReceived(self, data):
            if self.expected is None:
                self.header += data
                if len(self.header) < 8:
                    return
                (self.expected,), data = struct.unpack(">Q", self.header[:8]), self.header[8:]
            self.count += len(data)
            if self.count >= self.expected:
                self.transport.write(b"%d\n" % (self.count,))

    @implementer(IPushProducer)
    class Source(protocol.Protocol):
        """Writes a length and that many bytes as fast as the transport takes them."""

        def __init__(self, total, done):
            self.total = total
            self.done = done
            self.paused = False
            self.sent = 0
            self.reply = b""

        def connectionMade(self):
            self.transport.registerProducer(self, True)
            self.transport.write(struct.pack(">Q", self.total))
            if not self.paused:
                self.resumeProducing()

        def resumeProducing(self):
            self.paused = False
            while not self.paused and self.sent < self.total:
                self.transport.write(CHUNK)
                self.sent += len(CHUNK)
            if self.sent >= self.total and self.transport is not None:
                self.transport.unregisterProducer()

        def pauseProducing(self):
            self.paused = True

        def stopProducing(self):
            self.paused = True

        def dataReceived(self, data):
            self.reply += data
            if self.reply.endswith(b"\n") and not self.done.called:
                self.done.callback(self.reply)

    return Echo, Sink, Source


def _files(directory):
    from raftmux.tls import PEER, TLSInfo

    def info(name, **kwargs):
        return TLSInfo(certFile=os.path.join(directory, name + ".crt"),
                       keyFile=os.path.join(directory, name + ".key"),
                       trustedCAFile=os.path.join(directory, name + "-ca.crt"),
                       role=PEER, **kwargs)

    return info("server", clientCertAuth=True), info("client")


def _writeFiles(directory):
    from raftmux.testing.tlsca import CertificateAuthority

    ca = CertificateAuthority()
    ca.tlsInfo(directory, "server", ca.issue("node1", ipAddresses=[HOST], usage="both"))
    ca.tlsInfo(directory, "client", ca.issue("node2", ipAddresses=[HOST], usage="both"))


# -- the child: servers ------------------------------------------------------------


def _serve(mode, directory):
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from raftmux._quiet import QuietFactory
    from raftmux.muxado import MuxadoServerFactory
    from raftmux.sniff import SniffingFactory, http1, muxado
    from raftmux.tls import (
        HTTP11,
        MUXADO_ALPN,
        ServerContextFactory,
        tlsOnlyFactory,
        tlsServerFactory,
    )

    Echo, Sink, _ = _protocols()
    serverInfo, _ = _files(directory)
    contextFactory = ServerContextFactory(serverInfo)
    app = QuietFactory.forProtocol(Echo if mode == "handshake" else Sink)
    routed = app if mode == "handshake" else MuxadoServerFactory(app)
    inner = SniffingFactory([(http1(), routed), (muxado(), routed)],
                            alpn={HTTP11: routed, MUXADO_ALPN: routed}, name="tls")
    nodeShaped = tlsOnlyFactory(tlsServerFactory(contextFactory, inner))
    direct = TLSMemoryBIOFactory(contextFactory, False, app)
    ports = []
    for factory in [nodeShaped, direct]:
        TCP4ServerEndpoint(reactor, 0, interface=HOST, backlog=1024).listen(factory).addCallback(
            lambda port: ports.append(port.getHost().port))
    reactor.callWhenRunning(lambda: print(" ".join(str(p) for p in ports), flush=True))
    reactor.run()


# -- the parent: handshakes from threads ------------------------------------------------


def _clientContext(directory):
    _, clientInfo = _files(directory)
    context = ssl.create_default_context(cafile=clientInfo.trustedCAFile)
    context.load_cert_chain(clientInfo.certFile, clientInfo.keyFile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _handshake(port, context):
    sock = socket.create_connection((HOST, port))
    try:
        tlsSock = context.wrap_socket(sock, server_hostname=HOST)
        tlsSock.sendall(b"x")
        if tlsSock.recv(1) != b"x":
            raise RuntimeError("no echo: the server refused the handshake")
        tlsSock.close()
    finally:
        sock.close()


def _handshakes(directory, seconds, rounds):
    context = _clientContext(directory)
    figures = {"sniffed": [], "direct": []}
    with serverProcess(MODULE, "server", "handshake", directory) as (proc, line):
        sniffedPort, directPort = (int(p) for p in line.split())
        threadedRate(lambda: _handshake(directPort, context), 0.3, WORKERS)  # warm up
        for _ in range(rounds):
            for mode, port in [("direct", directPort), ("sniffed", sniffedPort)]:
                figures[mode].append(threadedRate(
                    lambda port=port: _handshake(port, context), seconds, WORKERS))
    return median(figures["sniffed"]), median(figures["direct"])


# -- bulk: a Twisted client in its own process ----------------------------------------


def _bulkClient(mode, port, directory, total):
    from twisted.internet import defer, reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS

    from raftmux._quiet import QuietFactory
    from raftmux.muxado import connectSession
    from raftmux.tls import HTTP11, MUXADO_ALPN, ClientPolicy

    _, _, Source = _protocols()
    _, clientInfo = _files(directory)
    policy = ClientPolicy(clientInfo)

    @defer.inlineCallbacks
    def bulk():
        alpn = [MUXADO_ALPN] if mode == "muxado" else [HTTP11]
        endpoint = wrapClientTLS(policy.creatorFor(HOST, alpn),
                                 TCP4ClientEndpoint(reactor, HOST, port))
        done = defer.Deferred()
        source = Source(total, done)
        if mode == "muxado":
            session = yield connectSession(endpoint)
            start = time.perf_counter()
            yield session.openStream(source)
        else:
            start = time.perf_counter()
            yield endpoint.connect(QuietFactory.forProtocol(lambda: source))
        reply = yield done
        elapsed = time.perf_counter() - start
        if int(reply.strip()) != total:
            raise RuntimeError("server counted %r of %d bytes" % (reply, total))
        return {"bytesPerSecond": total / elapsed, "seconds": elapsed}

    return runAndReport(bulk)


def _bulk(directory, total, repeats):
    figures = {"muxado": [], "tls": []}
    for _ in range(repeats):
        for mode in ["tls", "muxado"]:
            with serverProcess(MODULE, "server", "bulk", directory) as (proc, line):
                nodeShaped, direct = (int(p) for p in line.split())
                port = nodeShaped if mode == "muxado" else direct
                out = subprocess.run(
                    [sys.executable, "-m", MODULE, "client", "bulk", mode, str(port), directory,
                     str(total)], capture_output=True, text=True, timeout=300)
                lines = out.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
                if "error" in result:
                    raise RuntimeError("bulk/%s failed: %s" % (mode, result["error"]))
                figures[mode].append(result["bytesPerSecond"])
    return median(figures["muxado"]), median(figures["tls"])


def run(options):
    seconds = 1.0 if options.quick else 3.0
    rounds = 1 if options.quick else 3
    total = (64 if options.quick else 256) * 1024 * 1024
    repeats = 1 if options.quick else 3
    directory = tempfile.mkdtemp(prefix="raftmux-bench-tls-")
    _writeFiles(directory)
    sniffed, direct = _handshakes(directory, seconds, rounds)
    muxadoRate, tlsRate = _bulk(directory, total, repeats)
    return [
        Result("handshake", "handshakes/s", sniffed, direct,
               notes="mTLS (P-256, TLS 1.3) + 1-byte echo per new connection, %d threads: "
                     "TLS-only sniffer -> TLS -> sniffer (ALPN) vs TLSMemoryBIOFactory alone"
                     % (WORKERS,)),
        Result("bulk", "MB/s", muxadoRate / 1e6, tlsRate / 1e6,
               notes="one muxado stream over TLS (ALPN %s, via both sniffers), %d MiB, "
                     "vs plain TLS over TCP; median of %d"
                     % ("raftmux-muxado/1", total >> 20, repeats)),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "server":
        _serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 7 and sys.argv[1] == "client":
        sys.exit(_bulkClient(sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])))
    else:
        sys.exit("usage: python -m raftmux.bench.tls server handshake|bulk DIR\n"
                 "       python -m raftmux.bench.tls client bulk muxado|tls PORT DIR BYTES")
