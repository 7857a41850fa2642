# -*- test-case-name: raftmux.test.test_grpc_wire -*-
"""
gRPC status: the codes, the error that carries one, and the mappings a
client needs when the peer answered with HTTP or HTTP/2 instead of a gRPC
status.  Sans-IO.

The codes are ``raftmux.mvcc.errors.Code`` (etcd's errors already carry
them); this module re-exports it so that gRPC code need not know etcd.
"""

from raftmux.mvcc.errors import Code

__all__ = ["Code", "GRPCError", "codeForHTTPStatus", "codeForReset"]


class GRPCError(Exception):
    """
    An RPC's non-OK outcome: ``code`` (a L{Code}), ``message`` (text, sent
    percent-encoded as ``grpc-message``), ``details`` (bytes sent as
    ``grpc-status-details-bin``, usually a serialized ``google.rpc.Status``;
    passed through untouched) and ``metadata`` (trailing metadata,
    ``(key, value)`` pairs).

    A server handler raises it (or fails its Deferred with it) to answer
    with that status; a client's call fails with it.
    """

    def __init__(self, code, message="", details=None, metadata=()):
        code = Code(code) if 0 <= code <= 16 else code
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message
        self.details = details
        self.metadata = list(metadata)

    def __str__(self):
        name = getattr(self.code, "name", str(self.code))
        if self.message:
            return "%s: %s" % (name, self.message)
        return name

    def __repr__(self):
        return "GRPCError(%s, %r)" % (getattr(self.code, "name", self.code), self.message)


_HTTP = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}


def codeForHTTPStatus(status):
    """The code a client reports for a non-200 HTTP status (gRPC's table)."""
    return _HTTP.get(status, Code.UNKNOWN)


# HTTP/2 error codes (RFC 9113 7) -> gRPC codes, as grpc-go maps a reset.
_RESET = {
    0x7: Code.UNAVAILABLE,         # REFUSED_STREAM: never processed
    0x8: Code.CANCELLED,           # CANCEL
    0xB: Code.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    0xC: Code.PERMISSION_DENIED,   # INADEQUATE_SECURITY
}


def codeForReset(errorCode):
    """The code a client reports when the server reset the stream."""
    return _RESET.get(int(errorCode), Code.INTERNAL)
