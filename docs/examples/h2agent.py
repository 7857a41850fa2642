"""
HTTP/2 from Twisted with treq, unchanged: ``H2Agent`` is an ``IAgent``.

    python docs/examples/h2agent.py https://example.com/ http://127.0.0.1:8080/
    python docs/examples/h2agent.py        # serves itself over h2c and asks

With URLs: fetches them all at once (one pooled HTTP/2 connection per
origin; ``https`` negotiates h2 by ALPN and falls back to HTTP/1.1) and
prints each status, protocol and body size.  Without: starts a small
HTTP/2 server (raftmux's shell) on a free loopback port and asks it ten
things over one connection.
"""

import sys

from treq.client import HTTPClient
from twisted.internet import defer, task
from zope.interface import implementer

from raftmux.h2 import H2Agent, H2ServerFactory, HandlerFactory, IH2Router


@implementer(IH2Router)
class Greeter:
    """The self-serve mode's router: every path gets a greeting."""

    def route(self, request):
        return HandlerFactory(self.answer)

    def answer(self, stream):
        stream.respond(200, [(b"content-type", b"text/plain")],
                       b"hello over HTTP/2 at " + stream.request.path)
        return None


async def fetch(client, url):
    response = await client.get(url)
    body = await response.content()
    protocol = "HTTP/%d.%d" % response.version[1:]
    print("%d %s %6d bytes %s" % (response.code, protocol, len(body), url))
    return body


async def main(reactor, *urls):
    agent = H2Agent(reactor, connectTimeout=10, responseTimeout=30)
    client = HTTPClient(agent)
    port = None
    if not urls:
        from twisted.internet.endpoints import TCP4ServerEndpoint
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            H2ServerFactory(Greeter()))
        base = "http://127.0.0.1:%d" % (port.getHost().port,)
        urls = [base + "/item/%d" % (i,) for i in range(10)]
    try:
        await defer.gatherResults([defer.ensureDeferred(fetch(client, url)) for url in urls])
    finally:
        await agent.closeCachedConnections()
        if port is not None:
            await port.stopListening()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
