"""
``twistd raftmux``: options and the service tree.

Until the replicated node lands (issue 7) this runs a demo node: one port
that answers HTTP/1.1, h2c and muxado sessions (each stream carrying
HTTP/1.1), all served by one twisted.web Site with ``/health``,
``/metrics`` and ``/version``.
"""

import json
from urllib.parse import urlsplit

from twisted.application import service, strports
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import Resource
from twisted.web.server import Site

import raftmux
from raftmux._log import LEVELS, setLogLevel
from raftmux.metrics import REGISTRY, MetricsResource
from raftmux.muxado import MuxadoServerFactory
from raftmux.sniff import SniffingFactory, http1, http2, muxado

log = Logger()


def endpointForURL(url):
    """``http://127.0.0.1:2380`` -> ``tcp:2380:interface=127.0.0.1`` (etcd's URL flags)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http",):
        raise usage.UsageError("unsupported URL scheme in %r (TLS arrives with issue 8)" % (url,))
    if not parts.hostname or parts.port is None:
        raise usage.UsageError("URL %r needs a host and a port" % (url,))
    host = parts.hostname.replace(":", "\\:")
    return "tcp:%d:interface=%s" % (parts.port, host)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run a raftmux node. With no flags it listens on http://127.0.0.1:2380 "
                "for HTTP/1.1, h2c and muxado on one port.")
    optParameters = [
        ["listen-peer-urls", None, "http://127.0.0.1:2380",
         "comma-separated URLs to listen on (etcd's --listen-peer-urls)"],
        ["log-level", None, "info", "hot-path log level: " + ", ".join(LEVELS)],
    ]

    def postOptions(self):
        urls = [u.strip() for u in self["listen-peer-urls"].split(",") if u.strip()]
        if not urls:
            raise usage.UsageError("--listen-peer-urls needs at least one URL")
        self["endpoints"] = [endpointForURL(u) for u in urls]
        self["urls"] = urls
        if self["log-level"] not in LEVELS:
            raise usage.UsageError("--log-level must be one of " + ", ".join(LEVELS))


class _Text(Resource):
    isLeaf = True

    def __init__(self, body, contentType=b"text/plain"):
        super().__init__()
        self.body = body
        self.contentType = contentType

    def render_GET(self, request):
        request.setHeader(b"content-type", self.contentType)
        return self.body


def demoSite():
    """The Site every protocol of the demo node ends up in."""
    root = Resource()
    root.putChild(b"", _Text(b"raftmux %s: HTTP/1.1, h2c and muxado on one port\n"
                             % (raftmux.__version__.encode(),)))
    root.putChild(b"health", _Text(b'{"health":"true"}', b"application/json"))
    root.putChild(b"version", _Text(json.dumps({"raftmux": raftmux.__version__}).encode(),
                                    b"application/json"))
    root.putChild(b"metrics", MetricsResource(REGISTRY))
    return Site(root)


def portFactory(site):
    """One port: h2c to the Site's HTTP/2, HTTP/1.1 to the Site, muxado streams to the Site."""
    return SniffingFactory([
        (http2(), site),
        (http1(), site),
        (muxado(), MuxadoServerFactory(site, registry=REGISTRY)),
    ], registry=REGISTRY)


class _Announce(service.Service):
    def __init__(self, urls):
        self.urls = urls

    def startService(self):
        super().startService()
        for url in self.urls:
            log.info("raftmux: listening on {url} (HTTP/1.1, h2c, muxado)", url=url)


def makeService(options):
    setLogLevel(options["log-level"])
    top = service.MultiService()
    factory = portFactory(demoSite())
    for endpoint in options["endpoints"]:
        strports.service(endpoint, factory).setServiceParent(top)
    _Announce(options["urls"]).setServiceParent(top)
    return top
