"""
``python -m raftmux.bench sniff``: what the sniffer costs.

Short HTTP/1.1 requests, each on a new connection, against one twisted.web
Site listening directly and through a ``SniffingFactory`` (routes http2,
tls, http1, muxado: the HTTP/1.1 request passes two refusing matchers
first, as on a real node).  Also h2c (one request per new connection)
through the sniffer against a factory that builds Twisted's H2Connection
without sniffing, and TLS + HTTP/1.1 through the sniffer (TLS terminated,
sniffed again inside) against ``TLSMemoryBIOFactory(site)`` directly.

The servers run in a child process (``python -m raftmux.bench.sniff server
MODE``); the load comes from threads with blocking sockets in this process.
"""

import socket
import ssl
import sys

from raftmux.bench._harness import interleavedResult, serverProcess, threadedRate

HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
WORKERS = 8


# -- the child: servers ----------------------------------------------------------


def _serve(mode):
    from twisted.internet import protocol, reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.web._http2 import H2Connection
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from raftmux._quiet import QuietFactory
    from raftmux.sniff import SniffingFactory, http1, http2, muxado, tls
    from raftmux.testing.tlsca import CertificateAuthority

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"hello"

    site = Site(Hello())
    site.log = lambda request: None
    ca = CertificateAuthority()
    with open(sys.argv[3] if len(sys.argv) > 3 else "/dev/null", "wb") as f:
        f.write(ca.pem)
    options = ca.serverOptions()

    class H2(H2Connection):
        def connectionMade(self):
            H2Connection.connectionMade(self)
            self.transport.registerProducer(self, True)

    class H2Only(protocol.Factory):
        """h2c without sniffing: the baseline for h2c through the sniffer."""

        noisy = False

        def buildProtocol(self, addr):
            conn = H2(site.reactor)
            conn.requestFactory, conn.site, conn.factory = site.requestFactory, site, site
            conn.timeOut, conn.callLater = site.timeOut, site.reactor.callLater
            return conn

    if mode == "direct":
        factories = [site, H2Only(), TLSMemoryBIOFactory(options, False, site)]
    else:
        inner = SniffingFactory([(http2(), site), (http1(), site)],
                                alpn={b"h2": site, b"http/1.1": site}, name="tls")
        sniffer = SniffingFactory([(http2(), site),
                                   (tls(), TLSMemoryBIOFactory(options, False, inner)),
                                   (http1(), site),
                                   (muxado(), QuietFactory.forProtocol(protocol.Protocol))])
        factories = [sniffer, sniffer, sniffer]
    ports = []
    for factory in factories:
        TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(factory).addCallback(
            lambda port: ports.append(port.getHost().port))

    def ready():
        print(" ".join(str(p) for p in ports), flush=True)

    reactor.callWhenRunning(ready)
    reactor.run()


# -- the parent: load ------------------------------------------------------------


def _http1(port, context=None):
    sock = socket.create_connection((HOST, port))
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=HOST)
        sock.sendall(REQUEST)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    if not data.endswith(b"hello"):
        raise RuntimeError("bad response %r" % (data[:80],))


def _h2c(port):
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                          (":authority", "bench")], end_stream=True)
    sock = socket.create_connection((HOST, port))
    try:
        sock.sendall(conn.data_to_send())
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("h2c connection closed early")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    done = True
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()


def _measure(figures, mode, http1Port, h2Port, tlsPort, context, seconds):
    threadedRate(lambda: _http1(http1Port), 0.3, WORKERS)  # warm up
    for kind, call in [("http1", lambda: _http1(http1Port)),
                       ("h2c", lambda: _h2c(h2Port)),
                       ("tls", lambda: _http1(tlsPort, context))]:
        figures.setdefault((mode, kind), []).append(threadedRate(call, seconds, WORKERS))


def run(options):
    seconds = 1.0 if options.quick else 3.0
    rounds = 1 if options.quick else 5
    import tempfile

    caFile = tempfile.NamedTemporaryFile(suffix=".pem", delete=False).name
    figures = {}
    for mode in ["direct", "sniffed"] * rounds:
        with serverProcess("raftmux.bench.sniff", "server", mode, caFile) as (proc, line):
            http1Port, h2Port, tlsPort = (int(p) for p in line.split())
            context = ssl.create_default_context(cafile=caFile)
            context.set_alpn_protocols(["http/1.1"])
            _measure(figures, mode, http1Port, h2Port, tlsPort, context, seconds)

    def result(name, kind, notes):
        # Rounds alternate direct and sniffed servers.
        return interleavedResult(name, "req/s", figures[("sniffed", kind)],
                                 figures[("direct", kind)], notes, target=0.9)

    return [
        result("http1-newconn", "http1",
               "HTTP/1.1, new connection per request: sniffer vs the Site directly"),
        result("h2c-newconn", "h2c",
               "h2c, new connection per request: sniffer vs H2Connection without sniffing"),
        result("tls-http1-newconn", "tls",
               "TLS + HTTP/1.1, new connection: sniffer (TLS, sniffed again) vs TLS(Site)"),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        _serve(sys.argv[2])
    else:
        sys.exit("usage: python -m raftmux.bench.sniff server direct|sniffed [cafile]")
