# -*- test-case-name: raftmux.test.test_tls_config -*-
"""The two ways TLS goes wrong for a caller: bad configuration, and a peer that fails checks."""

__all__ = ["TLSConfigError", "TLSVerificationError"]


class TLSConfigError(ValueError):
    """
    TLS flags or files that cannot work; the message names the flag and the
    file, so it can go to the operator as it is.
    """


class TLSVerificationError(Exception):
    """
    The peer's certificate failed our checks (chain, validity, usage or
    name).  ``host`` is the name we expected, ``reason`` says what failed.
    """

    def __init__(self, host, reason):
        Exception.__init__(self, host, reason)
        self.host = host
        self.reason = reason

    def __str__(self):
        return "certificate of %s refused: %s" % (self.host, self.reason)
