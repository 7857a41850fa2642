"""
One PySyncObj member for the ``node`` benchmark (the baseline), run as
``python -m raftmux.bench._pysyncobjnode``::

    SELF PARTNERS DATADIR [--fsync] [--batch] [--append-period S]

``SELF`` is this member's ``127.0.0.1:port``, ``PARTNERS`` the others,
comma-separated.  The replicated state is a ``pysyncobj.batteries.ReplDict``
with a journal file and a full dump file in ``DATADIR``.

The member serves a small HTTP/1.1 front end with Twisted's Site (the same
HTTP server code the raftmux node uses), so the same load generator drives
both systems:

- ``PUT /kv/<key>``: ``ReplDict.set(key, value, callback=...)``; answered
  200 ``{"ok":1}`` once PySyncObj calls back (committed and applied here),
  500 with PySyncObj's error code otherwise.  Send writes to the leader (a
  follower would forward them, as PySyncObj does).
- ``GET /kv/<key>``: the local dict (PySyncObj has no linearizable read; this
  is the equivalent of raftmux's ``?serializable=true``).
- ``GET /status``: ``{"self", "leader", "isLeader", "ready", "syncs"}``.
- ``POST /inprocess?concurrency=C&warmup=W&duration=D&size=S&keyspace=K``:
  a closed-loop load run inside this process (no HTTP per write): C calls
  outstanding, each callback (on PySyncObj's tick thread) records the
  latency and makes the next call.  Answers the same figures as
  ``_nodeclient``.

Durability.  PySyncObj's ``FileJournal`` writes records into an mmap of the
journal file and never fsyncs or msyncs it while running (``flush()`` is
called only when the journal is destroyed); the term/vote meta file is
written with ``f.flush()`` and a rename, no fsync.  Its records reach the
disk when the kernel writes the dirty pages back: they survive a killed
process, not a power loss or kernel crash.  ``--fsync`` adds what raftmux
does: before this member sends any message (an AppendEntries from the
leader, an acknowledgement from a follower) while the journal has unsynced
records, ``mmap.flush()`` (msync(MS_SYNC), on Linux an fdatasync of the
mapped range) makes them durable, so a write is acknowledged only once a
majority has it on disk, one sync per batch, as raftmux fsyncs once per
Ready.  The meta file is fsynced too.  Without ``--fsync`` it is stock
PySyncObj.
"""

import argparse
import json
import os
import sys
import threading
import time

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj import journal as _journal
from pysyncobj import syncobj as _syncobj
from pysyncobj.batteries import ReplDict
from pysyncobj.transport import TCPTransport
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

# The journals this process made (one per member process): what the
# transport syncs before sending and what /status reports, without reaching
# into SyncObj's private log attribute.
JOURNALS = []


class SyncedJournal(_journal.FileJournal):
    """A FileJournal that knows when it has records not yet synced."""

    def __init__(self, journalFile):
        _journal.FileJournal.__init__(self, journalFile)
        self.dirty = False
        self.syncs = 0
        self.syncSeconds = 0.0
        JOURNALS.append(self)

    def add(self, command, idx, term):
        _journal.FileJournal.add(self, command, idx, term)
        self.dirty = True

    def clear(self):
        _journal.FileJournal.clear(self)
        self.dirty = True

    def deleteEntriesFrom(self, entryFrom):
        _journal.FileJournal.deleteEntriesFrom(self, entryFrom)
        self.dirty = True

    def sync(self):
        if self.dirty:
            began = time.perf_counter()
            self.flush()  # mmap.flush(): msync(MS_SYNC)
            self.syncSeconds += time.perf_counter() - began
            self.syncs += 1
            self.dirty = False


class SyncingTransport(TCPTransport):
    """TCPTransport that syncs the journal before anything leaves."""

    def send(self, node, message):
        for journal in JOURNALS:
            if journal.dirty:
                journal.sync()
        return TCPTransport.send(self, node, message)


def _storeMetaSynced(self, meta):
    path = self.getPath()
    with open(path + ".tmp", "wb") as f:
        f.write(_journal.dumps(meta))
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def enableFsync():
    _syncobj.createJournal = (
        lambda journalFile=None: SyncedJournal(journalFile) if journalFile
        else _journal.MemoryJournal())
    _journal.MetaStorer.storeMeta = _storeMetaSynced


class _Front(Resource):
    isLeaf = True

    def __init__(self, member):
        Resource.__init__(self)
        self.member = member

    def render_PUT(self, request):
        path = request.postpath
        if not path or path[0] != b"kv" or len(path) < 2:
            return _answer(request, 404, {"error": "not found"})
        key = b"/".join(path[1:])
        request.content.seek(0)
        value = request.content.read()
        began = time.perf_counter()
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def done(result, error):
            reactor.callFromThread(self._written, request, error, began, gone)
        self.member.data.set(key, value, callback=done)
        return NOT_DONE_YET

    def _written(self, request, error, began, gone):
        if gone or request.finished:
            return
        if error == FAIL_REASON.SUCCESS:
            _finish(request, 200, {"ok": 1})
        else:
            _finish(request, 500, {"error": "pysyncobj error %s" % (error,)})

    def render_GET(self, request):
        path = request.postpath
        if path == [b"status"]:
            return _answer(request, 200, self.member.status())
        if not path or path[0] != b"kv" or len(path) < 2:
            return _answer(request, 404, {"error": "not found"})
        value = self.member.data.get(b"/".join(path[1:]))
        if value is None:
            return _answer(request, 404, {"error": "key not found"})
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", b"%d" % (len(value),))
        return value

    def render_POST(self, request):
        if request.postpath != [b"inprocess"]:
            return _answer(request, 404, {"error": "not found"})
        args = {k.decode(): float(v[0]) for k, v in request.args.items()}
        d = self.member.inProcessLoad(
            int(args.get("concurrency", 64)), args.get("warmup", 1.0),
            args.get("duration", 5.0), int(args.get("size", 100)),
            int(args.get("keyspace", 1000)))
        d.addCallback(lambda figures: _finish(request, 200, figures))
        return NOT_DONE_YET


def _answer(request, code, value):
    body = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    return body


def _finish(request, code, value):
    request.write(_answer(request, code, value))
    request.finish()


class _QuietSite(Site):
    noisy = False

    def log(self, request):
        pass


class Member:
    def __init__(self, selfAddress, partners, dataDir, fsync, batch, appendPeriod):
        if fsync:
            enableFsync()
        self.selfAddress = selfAddress
        self.data = ReplDict()
        conf = SyncObjConf(
            journalFile=os.path.join(dataDir, "journal.bin"),
            fullDumpFile=os.path.join(dataDir, "dump.bin"),
            appendEntriesUseBatch=batch,
            appendEntriesPeriod=appendPeriod,
            # No compaction during a run: raftmux snapshots every 10,000
            # entries (its default), PySyncObj's default is >= 5,000 entries
            # *and* 300 s, which a benchmark never reaches.
            logCompactionMinTime=300,
        )
        self.obj = SyncObj(selfAddress, partners, conf=conf, consumers=[self.data],
                           transportClass=SyncingTransport if fsync else TCPTransport)

    def status(self):
        status = self.obj.getStatus()
        leader, me = status["leader"], status["self"]
        journal = JOURNALS[-1] if JOURNALS else None
        return {
            "self": self.selfAddress,
            "leader": None if leader is None else str(leader.id),
            "isLeader": leader is not None and str(leader.id) == str(me.id),
            "ready": bool(self.obj.isReady()),
            "syncs": journal.syncs if journal is not None else None,
            "syncSeconds": journal.syncSeconds if journal is not None else None,
            "commitIndex": status["commit_idx"],
        }

    def inProcessLoad(self, concurrency, warmup, duration, size, keyspace):
        """Closed-loop load from PySyncObj's own callbacks; fires with figures."""
        from twisted.internet.defer import Deferred
        result = Deferred()
        value = b"v" * size
        keys = [b"bench-%d" % (i,) for i in range(keyspace)]
        lock = threading.Lock()
        state = {"next": 0, "outstanding": 0, "done": False, "count": 0, "errors": 0}
        latencies = []
        start = time.perf_counter()
        warmEnd = start + warmup
        end = warmEnd + duration
        setter = self.data.set

        def issue():
            with lock:
                k = keys[state["next"] % keyspace]
                state["next"] += 1
                state["outstanding"] += 1
            began = time.perf_counter()
            setter(k, value, callback=lambda res, err: completed(began, err))

        def completed(began, err):
            now = time.perf_counter()
            with lock:
                state["outstanding"] -= 1
                if warmEnd <= began and now < end:
                    if err == FAIL_REASON.SUCCESS:
                        state["count"] += 1
                        latencies.append(now - began)
                    else:
                        state["errors"] += 1
                finished = now >= end
                if finished and state["outstanding"] == 0 and not state["done"]:
                    state["done"] = True
                    reactor.callFromThread(report)
            if not finished:
                issue()

        def report():
            latencies.sort()
            n = len(latencies)
            result.callback({
                "count": state["count"], "errors": state["errors"],
                "perSecond": state["count"] / duration,
                "p50": latencies[n // 2] * 1e3 if n else None,
                "p99": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
                "concurrency": concurrency, "duration": duration,
            })

        for _ in range(concurrency):
            issue()
        return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m raftmux.bench._pysyncobjnode")
    parser.add_argument("self")
    parser.add_argument("partners")
    parser.add_argument("dataDir")
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--batch", action="store_true",
                        help="appendEntriesUseBatch=True (PySyncObj's default)")
    parser.add_argument("--append-period", type=float, default=0.1)
    options = parser.parse_args(argv)
    os.makedirs(options.dataDir, exist_ok=True)
    member = Member(options.self, options.partners.split(","), options.dataDir,
                    options.fsync, options.batch, options.append_period)
    port = reactor.listenTCP(0, _QuietSite(_Front(member)), interface="127.0.0.1")
    print(port.getHost().port, flush=True)

    def parentGone():
        # The parent holds our stdin; when it closes, we go.
        sys.stdin.read()
        reactor.callFromThread(reactor.stop)
    threading.Thread(target=parentGone, daemon=True).start()
    reactor.run()
    member.obj.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
