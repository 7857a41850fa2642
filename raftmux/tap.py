"""twistd raftmux: options and service (placeholder until the node lands)."""

from twisted.application import service, strports
from twisted.python import usage
from twisted.web import resource, server


class Options(usage.Options):
    optParameters = [
        ["listen", None, "tcp:2380:interface=127.0.0.1", "endpoint to listen on"],
    ]


def makeService(options):
    root = resource.Resource()
    top = service.MultiService()
    strports.service(options["listen"], server.Site(root)).setServiceParent(top)
    return top
