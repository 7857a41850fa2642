"""Errors the gossip client and streams report."""


class StreamReset(Exception):
    """The peer (or we, on a timeout or limit) reset an HTTP/2 stream."""

    def __init__(self, code):
        Exception.__init__(self, "HTTP/2 stream reset (error code %s)" % (code,))
        self.code = code


class StreamRejected(Exception):
    """A ``/stream`` or request was answered with a status other than 200."""

    def __init__(self, status):
        Exception.__init__(self, "peer answered HTTP status %s" % (status,))
        self.status = status


class ConnectionGoneAway(Exception):
    """
    The connection closed or sent GOAWAY before this request completed.
    ``retryable`` is true when the peer never processed the request.
    """

    def __init__(self, message, retryable=False):
        Exception.__init__(self, message)
        self.retryable = retryable


class NotHTTP2(Exception):
    """TLS negotiated something other than ``h2`` through ALPN."""
