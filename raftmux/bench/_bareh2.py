"""
The least an HTTP/2 client on h2 does per GET, for the h2 benchmark's
``get-bare-client-cpu`` row: one h2c connection, one ``H2Connection`` (the
shell's, with its HPACK caches), responses handed to the caller as soon as
their events come, and nothing else.  No pool, no stream transport, no flow
control beyond h2's own crediting, no limits, no validation, no timeouts:
it is a measuring stick for what ``H2Agent``'s machinery costs, not a
client to use.  ``request`` returns a Deferred of an object that
``twisted.web.client.readBody`` reads, so the benchmark's per-request code
is the same for every kind of client.
"""

from h2.events import DataReceived, ResponseReceived, StreamEnded
from twisted.internet import defer, protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from raftmux.h2._hpack import CachingDecoder, CachingEncoder
from raftmux.h2.connection import _Connection, h2Configuration


class _Response:
    """Enough of ``IResponse`` for ``readBody``."""

    phrase = b"OK"
    length = None

    def __init__(self, code):
        self.code = code
        self.protocol = None
        self.early = []

    def deliverBody(self, protocol):
        self.protocol = protocol
        for data in self.early:
            self._deliver(data)

    def _deliver(self, data):
        if data is None:
            self.protocol.connectionLost(Failure(ResponseDone()))
        else:
            self.protocol.dataReceived(data)

    def received(self, data):
        """Body bytes, or None at the end."""
        if self.protocol is None:
            self.early.append(data)
        else:
            self._deliver(data)


class BareH2Client(protocol.Protocol):
    """One h2c connection; ``request(path)`` sends a GET."""

    def __init__(self, authority):
        self.authority = authority
        self.pending = {}

    def connectionMade(self):
        conn = self.conn = _Connection(h2Configuration(True))
        conn.encoder = CachingEncoder()
        conn.decoder = CachingDecoder()
        conn.initiate_connection()
        self.transport.write(conn.data_to_send())

    def request(self, path):
        conn = self.conn
        streamId = conn.get_next_available_stream_id()
        conn.send_headers(streamId, [(b":method", b"GET"), (b":scheme", b"http"),
                                     (b":authority", self.authority), (b":path", path)],
                          end_stream=True)
        self.transport.write(conn.data_to_send())
        d = defer.Deferred()
        self.pending[streamId] = [d, None]
        return d

    def dataReceived(self, data):
        conn = self.conn
        for event in conn.receive_data(data):
            kind = type(event)
            if kind is ResponseReceived:
                entry = self.pending[event.stream_id]
                status = int(dict(event.headers)[b":status"])
                entry[1] = _Response(status)
                entry[0].callback(entry[1])
            elif kind is DataReceived:
                self.pending[event.stream_id][1].received(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is StreamEnded:
                self.pending.pop(event.stream_id)[1].received(None)
        out = conn.data_to_send()
        if out:
            self.transport.write(out)


class BareH2Agent:
    """``request(method, url)`` for the benchmark, over one ``BareH2Client``."""

    def __init__(self, client):
        self.client = client

    @classmethod
    def connect(cls, reactor, port):
        """A Deferred firing with an agent connected to 127.0.0.1:``port``."""
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from raftmux._quiet import QuietFactory
        client = BareH2Client(b"127.0.0.1:%d" % (port,))
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        return endpoint.connect(QuietFactory.forProtocol(lambda: client)).addCallback(
            lambda _: cls(client))

    def request(self, method, url):
        if method != b"GET":
            raise ValueError("the bare client sends GETs only")
        return self.client.request(b"/" + url.split(b"/", 3)[3])

    def close(self):
        self.client.transport.loseConnection()
        return defer.succeed(None)
