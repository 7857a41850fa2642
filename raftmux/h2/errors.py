"""The failures the HTTP/2 shell reports to streams, handlers and callers."""

from twisted.internet.error import ConnectionLost


class StreamReset(Exception):
    """
    The stream was reset (RST_STREAM): by the peer (``remote``) or by us (a
    limit, a timeout, a cancellation).  ``code`` is the HTTP/2 error code.
    """

    def __init__(self, code, remote=True):
        Exception.__init__(self, "HTTP/2 stream reset (error code %s)" % (code,))
        self.code = code
        self.remote = remote


class ConnectionGoneAway(ConnectionLost):
    """
    The connection closed or sent GOAWAY before this request or stream
    completed.  ``retryable`` is true when the peer never processed it (its
    stream ID was above the GOAWAY's last stream ID, it was refused with
    REFUSED_STREAM, or it never left our queue).
    """

    def __init__(self, message, retryable=False):
        ConnectionLost.__init__(self, message)
        self.message = message
        self.retryable = retryable

    def __str__(self):
        return self.message


class NotHTTP2(Exception):
    """TLS negotiated something other than ``h2`` through ALPN (``negotiated``)."""

    def __init__(self, negotiated):
        Exception.__init__(self, "ALPN chose %r, not h2" % (negotiated,))
        self.negotiated = negotiated


class BodyTooLarge(Exception):
    """A body passed the stream's ``maxBodySize``; the stream was reset."""

    def __init__(self, limit):
        Exception.__init__(self, "body larger than %d bytes" % (limit,))
        self.limit = limit


class NotReplayable(ConnectionGoneAway):
    """
    The server did not process the request (GOAWAY or REFUSED_STREAM), but
    its body cannot be sent again (it was larger than what the client keeps
    for a replay).  Retrying is safe; the caller has to supply the body again.
    """

    def __init__(self, message):
        ConnectionGoneAway.__init__(self, message, retryable=True)
