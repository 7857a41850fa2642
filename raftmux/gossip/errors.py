"""Errors the gossip client and streams report (the HTTP/2 ones are the shell's)."""

from raftmux.h2.errors import ConnectionGoneAway, NotHTTP2, StreamReset

__all__ = ["ConnectionGoneAway", "NotHTTP2", "StreamRejected", "StreamReset"]


class StreamRejected(Exception):
    """A ``/stream`` or request was answered with a status other than 200."""

    def __init__(self, status):
        Exception.__init__(self, "peer answered HTTP status %s" % (status,))
        self.status = status
