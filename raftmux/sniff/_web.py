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


def isH2Site(factory):
    """Can ``factory`` take an HTTP/2 connection through ``buildH2Connection``?"""
    from twisted.web import http, server

    return isinstance(factory, server.Site) and http.H2_ENABLED


def buildH2Connection(site):
    """An unconnected ``H2Connection`` serving ``site``."""
    from twisted.web._http2 import H2Connection

    connection = H2Connection(site.reactor)
    connection.requestFactory = site.requestFactory  # type: ignore[attr-defined]
    connection.site = site
    connection.factory = site
    connection.timeOut = site.timeOut
    connection.callLater = site.reactor.callLater  # type: ignore[method-assign]
    return connection
