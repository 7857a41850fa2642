# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
The control socket of a running ``python -m raftmux.cluster``: one JSON
request per line, one JSON answer per line, over a Unix socket in the
cluster's directory.

The server side dispatches each request's ``cmd`` to the supervisor's
``command_<cmd>`` method (as conch dispatches ``ssh_<MESSAGE>``), which
returns the answer (a dict, or a Deferred/coroutine of one); an unknown
command or a failure is answered ``{"ok": false, "error": ...}``.  ``ask``
is the client side, for the other terminal.
"""

import hashlib
import json
import os
import socket
import tempfile
from typing import Any

from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver

from raftmux.cluster.members import ClusterError

__all__ = ["ControlProtocol", "ask", "controlFactory", "socketPath"]

#: The longest request line accepted (a request is a few dozen bytes).
MAX_REQUEST = 64 * 1024


def socketPath(directory):
    """DIR/control.sock, or a short path in /tmp when that is too long for AF_UNIX."""
    path = os.path.join(os.path.abspath(directory), "control.sock")
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "raftmux-cluster-%s.sock" % (digest,))


class ControlProtocol(LineOnlyReceiver):
    """One connection to the control socket; ``factory.handler`` runs the commands."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST

    def lineReceived(self, line):
        d = defer.maybeDeferred(self.dispatch, line)
        d.addErrback(lambda f: {"ok": False, "error": f.getErrorMessage()})
        d.addCallback(lambda answer: self.sendLine(json.dumps(answer).encode()))

    def dispatch(self, line):
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ClusterError("a request is a JSON object")
        command = request.get("cmd")
        method = None
        if isinstance(command, str) and command.isidentifier():
            method = getattr(self.factory.handler, "command_" + command, None)
        if method is None:
            return {"ok": False, "error": "unknown command %r" % (command,)}
        return defer.ensureDeferred(_asCoroutine(method(request)))

    def lineLengthExceeded(self, line):
        self.transport.loseConnection()


async def _asCoroutine(result):
    if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
        return await result
    return result


def controlFactory(handler):
    """The server factory: requests go to ``handler.command_<cmd>(request)``."""
    return _ControlFactory(handler)


class _ControlFactory(protocol.Factory):
    protocol = ControlProtocol
    noisy = False

    def __init__(self, handler):
        self.handler = handler


def ask(directory, request, timeout=60.0):
    """Send one request to the supervisor of the cluster in ``directory``; its answer."""
    path = socketPath(directory)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        raise ClusterError("no cluster is running in %s (start one with "
                           "python -m raftmux.cluster --dir %s)" % (directory, directory)) \
            from None
    with s:
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ClusterError("the cluster's supervisor closed the connection")
    answer = json.loads(data)
    if not answer.get("ok"):
        raise ClusterError(answer.get("error", "failed"))
    return answer
