# -*- test-case-name: raftmux.test.test_sniff -*-
"""
Handing a connection to a twisted.web ``Site``'s HTTP/2 code.

Twisted serves HTTP/2 only after TLS ALPN chose ``h2``; it has no
prior-knowledge (h2c) path.  When a sniffer knows a connection is HTTP/2
(by its preface, or by ALPN) and the route's factory is a ``Site``, it
builds ``twisted.web._http2.H2Connection`` itself, exactly as
``_GenericHTTPChannelProtocol`` does after ALPN (same five attributes, same
producer registration).  That is a private Twisted class (pinned by
``twisted>=26.4`` and covered by the curl tests); the public alternative, a
wrapper pretending ALPN said ``h2``, would stay in the data path for the
connection's life, which is what this package promises not to do.
"""

import functools


def isH2Site(factory):
    """Can ``factory`` take an HTTP/2 connection through ``buildH2Connection``?"""
    from twisted.web import http, server

    return isinstance(factory, server.Site) and http.H2_ENABLED


@functools.lru_cache(maxsize=None)
def _windowRespectingH2Connection():
    """
    Twisted's ``H2Connection`` with a stream whose flow-control window is
    used up taken out of the send loop until the peer opens it again.

    Twisted 26.x leaves such a stream in its priority tree: its send loop
    picks it, can send nothing, and reschedules itself with ``callLater(0)``
    for as long as the connection lives (a client that sets
    SETTINGS_INITIAL_WINDOW_SIZE to 0 and never opens it keeps a core busy).
    Here the loop first blocks every stream that has data queued and no
    window (an END_STREAM needs none); Twisted unblocks a stream on its
    WINDOW_UPDATE, and the loop, if it went to sleep because every stream
    was blocked, is woken then.  This reaches into Twisted's own state
    (``_outboundStreamQueues``, ``priority``, ``_sendingDeferred``): pinned to
    the Twisted it was written against, by ``raftmux.test.test_fuzz``.
    """
    from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection

    class WindowRespectingH2Connection(H2Connection):
        def _sendPrioritisedData(self, *args):
            for streamID, queue in self._outboundStreamQueues.items():
                if queue and queue[0] is not _END_STREAM_SENTINEL \
                        and self.remainingOutboundWindow(streamID) <= 0:
                    self.priority.block(streamID)
            return H2Connection._sendPrioritisedData(self, *args)

        def _handleWindowUpdate(self, event):
            H2Connection._handleWindowUpdate(self, event)
            waiting = self._sendingDeferred
            if waiting is not None and any(self._outboundStreamQueues.values()):
                self._sendingDeferred = None
                waiting.callback(None)

    return WindowRespectingH2Connection


def buildH2Connection(site):
    """An unconnected ``H2Connection`` serving ``site``."""
    connection = _windowRespectingH2Connection()(site.reactor)
    connection.requestFactory = site.requestFactory
    connection.site = site
    connection.factory = site
    connection.timeOut = site.timeOut
    connection.callLater = site.reactor.callLater
    return connection
