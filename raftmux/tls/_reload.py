# -*- test-case-name: raftmux.test.test_tls_reload -*-
"""
Reloading certificates without a restart, shared by the server context
factory and the client policy: ``reload()`` (SIGHUP) re-reads the files
and swaps in a new ``SSL.Context`` only if everything loads; ``watch()``
polls the files' stat and reloads when they change.  Connections hold
their own context, so existing ones are untouched; new ones use the new.
"""

from typing import Any

from OpenSSL import SSL
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from raftmux.tls.errors import TLSConfigError
from raftmux.tls.material import fileSignature, loadMaterial

DEFAULT_WATCH_INTERVAL = 10.0


class Reloadable:
    """
    Holds the current ``SSL.Context`` built from a ``TLSInfo``.  Subclasses
    provide ``_build(material) -> SSL.Context``, ``log`` and ``side`` (a
    word for log lines).
    """

    side = "TLS"
    log: Logger
    _watcher = None

    def _build(self, material: Any) -> Any:
        raise NotImplementedError()

    def __init__(self, tlsInfo):
        self.tlsInfo = tlsInfo
        self.reloads = 0
        self._signature = fileSignature(tlsInfo)
        self.material = loadMaterial(tlsInfo)
        self._context = self._build(self.material)

    def reload(self):
        """
        Re-read the files now (the node calls this on SIGHUP).  On success
        new connections use the new files and ``True`` is returned; on any
        problem the current context stays, the problem is logged, and
        ``False`` is returned.
        """
        self._signature = fileSignature(self.tlsInfo)
        try:
            material = loadMaterial(self.tlsInfo)
            context = self._build(material)
        except (TLSConfigError, SSL.Error, ValueError) as e:
            self.log.error("{side}: reload failed, keeping the current certificate "
                           "({current}): {why}", side=self.side, why=e,
                           current=self.material.describe())
            return False
        self.material, self._context = material, context
        self.reloads += 1
        self.log.info("{side}: reloaded TLS files: {certificate}, {authorities} trusted CA(s)",
                      side=self.side, certificate=material.describe(),
                      authorities=len(material.authorities))
        return True

    def changed(self):
        """Do the files look different on disk since the last (re)load?"""
        return fileSignature(self.tlsInfo) != self._signature

    def watch(self, clock=None, interval=DEFAULT_WATCH_INTERVAL):
        """
        Poll the files every ``interval`` seconds on ``clock`` (default: the
        reactor) and reload when their size, mtime or inode changed.  A
        failed reload is not retried until the files change again.  Returns
        the running ``LoopingCall``; ``stopWatching()`` ends it.
        """
        self.stopWatching()
        if clock is None:
            from twisted.internet import reactor as clock
        self._watcher = LoopingCall(self._poll)
        self._watcher.clock = clock
        self._watcher.start(interval, now=False)
        return self._watcher

    def stopWatching(self):
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.running:
            watcher.stop()

    def _poll(self):
        try:
            if self.changed():
                self.reload()
        except Exception:
            self.log.failure("{side}: while polling TLS files", side=self.side)
