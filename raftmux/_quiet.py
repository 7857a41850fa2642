# -*- test-case-name: raftmux.test.test_conventions -*-
"""
Factories that stay out of the log.  Twisted's ``Factory`` logs "Starting
factory" and "Stopping factory" each time a port or a connection starts
and stops it (``noisy = True``); a node opens a factory per muxado
stream, per dial and per listener, so every raftmux factory is quiet.
Use ``QuietFactory.forProtocol(P)`` in place of Twisted's own
``forProtocol``.
"""

from twisted.internet.protocol import ClientFactory, Factory

__all__ = ["QuietFactory", "QuietClientFactory"]


class QuietFactory(Factory):
    """``Factory`` with ``noisy = False``."""

    noisy = False


class QuietClientFactory(ClientFactory):
    """``ClientFactory`` with ``noisy = False``."""

    noisy = False
