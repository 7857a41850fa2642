# -*- test-case-name: raftmux.test.test_etcd_watch -*-
"""
etcd's Watch service: one L{WatchHub} per member fans applied events out
to the watchers of every L{WatchStream} (one stream per Watch rpc).

The rules are etcd 3.4's (``mvcc/watchable_store.go``,
``etcdserver/api/v3rpc/watch.go``):

* A watcher is *synced* when it has seen every revision up to the key
  space's; it then gets each applied revision's events as they are
  applied, one response per revision.  A watcher created with a
  ``start_revision`` at or below the current revision starts *unsynced*.
* An unsynced watcher is caught up from the key space's history
  (``KeySpace.eventsSince``), up to 1000 events a response, each response
  headed with the current revision, until it reaches the current revision
  and becomes synced.  If its next revision has been compacted it gets
  etcd's compaction answer (``compact_revision`` set, ``canceled``, no
  header revision) and stops.
* Nothing waits for a slow client.  A stream's output queue (responses
  held while its transport is paused) is bounded; a synced watcher whose
  response does not fit is moved to unsynced and later caught up from
  history, so the node never blocks and memory stays bounded, and no
  event is lost or repeated: a watcher's ``minRev`` (its next revision)
  only moves forward, and an event below it is never sent again.
* ``watch_id`` 0 asks for an automatic ID (the stream's lowest unused one
  counting up); a used ID is refused.  A refused create is answered
  ``created`` and ``canceled`` with ``watch_id`` -1 and the reason.
* Filters (NOPUT, NODELETE) drop events; a response left empty is not
  sent.  ``prev_kv`` adds the key's previous record (none for a create).
* ``progress_notify``: every ``progressInterval`` (etcd's 10 minutes plus
  up to 10 % jitter) a synced watcher that got no events since the last
  tick gets an empty response with the current revision.  A
  ``progress_request`` is answered at once with ``watch_id`` -1.
* ``fragment``: a response larger than ``maxRequestBytes`` + 512 KiB is
  split into several with ``fragment`` set on all but the last.
"""

import random as _random
from collections import deque

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.etcd.interfaces import IApplyObserver, IStreamHandler
from raftmux.etcd.proposer import DEFAULT_MAX_REQUEST_BYTES
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc import DELETE, PUT
from raftmux.mvcc.errors import ErrCompacted, ErrStopped

__all__ = [
    "WatchHub", "WatchStream", "DEFAULT_PROGRESS_INTERVAL", "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_EVENTS", "GRPC_OVERHEAD_BYTES", "fragments",
]

#: etcd's default progress report interval (seconds).
DEFAULT_PROGRESS_INTERVAL = 600.0
#: etcd's minimum for --experimental-watch-progress-notify-interval.
MIN_PROGRESS_INTERVAL = 0.1
#: Responses a stream holds while its transport is paused (etcd's chanBufLen).
DEFAULT_MAX_PENDING = 128
#: Events per catch-up response (etcd counts 1000 revisions; we count events).
DEFAULT_MAX_EVENTS = 1000
#: Unsynced watchers caught up per round (etcd's maxWatchersPerSync).
MAX_WATCHERS_PER_SYNC = 512
#: etcd adds this to --max-request-bytes for the gRPC message limit.
GRPC_OVERHEAD_BYTES = 512 * 1024

_SYNCED, _UNSYNCED, _COMPACTED, _CANCELED = "synced", "unsynced", "compacted", "canceled"

_NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
_NODELETE = rpc_pb2.WatchCreateRequest.NODELETE

_ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
_ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


class _Watcher:
    """One watcher: its range, options and where it is in the history."""

    __slots__ = ("id", "key", "end", "minRev", "noPut", "noDelete", "prevKv",
                 "fragment", "progressNotify", "progressDue", "stream", "state")

    def __init__(self, id, key, end, create, stream):
        self.id = id
        self.key = key
        # None: the one key; b"": every key from ``key`` on; else [key, end).
        self.end = end
        self.minRev = 0
        filters = set(create.filters)
        self.noPut = _NOPUT in filters
        self.noDelete = _NODELETE in filters
        self.prevKv = create.prev_kv
        self.fragment = create.fragment
        self.progressNotify = create.progress_notify
        self.progressDue = create.progress_notify
        self.stream = stream
        self.state = None

    def contains(self, key):
        end = self.end
        if end is None:
            return key == self.key
        if not end:
            return key >= self.key
        return self.key <= key < end

    @property
    def rawRangeEnd(self):
        """``range_end`` as a request spells it (for ``KeySpace.eventsSince``)."""
        if self.end is None:
            return b""
        return self.end or b"\x00"

    def keep(self, events):
        """The events this watcher's filters let through."""
        if not (self.noPut or self.noDelete):
            return events
        return [e for e in events
                if not ((self.noPut and e.type == PUT) or (self.noDelete and e.type == DELETE))]


def fragments(response, limit):
    """
    etcd's ``sendFragments``: ``response`` whole when it is under ``limit``
    bytes or holds fewer than two events, else parts of it, each under the
    limit unless a single event is larger, ``fragment`` set on all but the
    last.
    """
    events = list(response.events)
    if response.ByteSize() < limit or len(events) < 2:
        return [response]
    base = rpc_pb2.WatchResponse()
    base.CopyFrom(response)
    del base.events[:]
    base.fragment = True
    parts = []
    i = 0
    while True:
        cur = rpc_pb2.WatchResponse()
        cur.CopyFrom(base)
        while i < len(events):
            cur.events.append(events[i])
            if len(cur.events) > 1 and cur.ByteSize() >= limit:
                del cur.events[-1]
                break
            i += 1
        if i == len(events):
            cur.fragment = False
        parts.append(cur)
        if not cur.fragment:
            return parts


@implementer(IApplyObserver)
class WatchHub:
    """
    Every watcher of every stream on one member.  It observes the node
    (L{IApplyObserver}); the API builder adds it as an observer.

    ``clock`` (``IReactorTime``) runs catch-up rounds and progress ticks;
    ``random`` gives the progress jitter (a callable returning [0, 1)).
    """

    log = Logger()

    def __init__(self, node, headers, clock, progressInterval=DEFAULT_PROGRESS_INTERVAL,
                 maxPending=DEFAULT_MAX_PENDING, maxEvents=DEFAULT_MAX_EVENTS,
                 maxRequestBytes=DEFAULT_MAX_REQUEST_BYTES, random=_random.random):
        self._node = node
        self.headers = headers
        self.clock = clock
        self.progressInterval = max(progressInterval, MIN_PROGRESS_INTERVAL)
        self.maxPending = maxPending
        self.maxEvents = maxEvents
        self.fragmentLimit = maxRequestBytes + GRPC_OVERHEAD_BYTES
        self._random = random
        self._single = {}
        self._ranges = set()
        self._unsynced = {}
        self._syncCall = None
        self._seenRev = node.keySpace.revision
        self._streams = set()

    # -- streams --------------------------------------------------------------

    def Watch(self, responder):
        """The Watch rpc: a L{WatchStream} for ``responder`` (an IResponder)."""
        stream = WatchStream(self, responder)
        self._streams.add(stream)
        return stream

    def streamClosed(self, stream):
        self._streams.discard(stream)

    def progressDelay(self):
        """etcd's ``GetProgressReportInterval``: the interval plus up to 10 %."""
        return self.progressInterval * (1 + self._random() / 10)

    @property
    def keySpace(self):
        return self._node.keySpace

    def stop(self):
        """End every stream with ErrStopped (the API is going away)."""
        for stream in list(self._streams):
            stream.close(ErrStopped())
        if self._syncCall is not None and self._syncCall.active():
            self._syncCall.cancel()
        self._syncCall = None

    def counts(self):
        """``(synced, unsynced)`` watcher counts, for metrics and tests."""
        synced = len(self._ranges) + sum(len(s) for s in self._single.values())
        return synced, len(self._unsynced)

    # -- watchers -------------------------------------------------------------

    def add(self, watcher, startRevision):
        """Start ``watcher`` from ``startRevision`` (0: after the current one)."""
        current = self.keySpace.revision
        if startRevision == 0 or startRevision > current:
            watcher.minRev = max(current + 1, startRevision)
            self._addSynced(watcher)
        else:
            watcher.minRev = startRevision
            self._addUnsynced(watcher)

    def remove(self, watcher):
        if watcher.state == _SYNCED:
            self._removeSynced(watcher)
        elif watcher.state == _UNSYNCED:
            del self._unsynced[watcher]
        watcher.state = _CANCELED

    def _addSynced(self, w):
        w.state = _SYNCED
        if w.end is None:
            s = self._single.get(w.key)
            if s is None:
                self._single[w.key] = {w}
            else:
                s.add(w)
        else:
            self._ranges.add(w)

    def _removeSynced(self, w):
        if w.end is None:
            s = self._single[w.key]
            s.discard(w)
            if not s:
                del self._single[w.key]
        else:
            self._ranges.discard(w)

    def _addUnsynced(self, w):
        w.state = _UNSYNCED
        self._unsynced[w] = None
        self.scheduleSync()

    def _unsync(self, w):
        self._removeSynced(w)
        self._addUnsynced(w)

    def isSynced(self, watcher):
        return watcher.state == _SYNCED

    # -- IApplyObserver -------------------------------------------------------

    def applied(self, request, result):
        if result is not None and result.events:
            self._notify(result.events)
        self._seenRev = self.keySpace.revision

    def restored(self):
        """
        Every synced watcher is caught up from the new history, from the
        revision after the last one it was told about (etcd restarts them
        from their own last event's revision, which may be compacted).
        """
        after = self._seenRev + 1
        for w in list(self._ranges) + [w for s in self._single.values() for w in s]:
            w.minRev = max(w.minRev, after)
            self._unsync(w)
        self._seenRev = self.keySpace.revision

    def leadershipChanged(self, isLeader):
        pass

    # -- fan-out --------------------------------------------------------------

    def _notify(self, events):
        rev = events[0].kv.modRevision
        matched = {}
        single, ranges = self._single, self._ranges
        for event in events:
            key = event.kv.key
            ws = single.get(key)
            if ws:
                for w in ws:
                    got = matched.get(w)
                    if got is None:
                        matched[w] = [event]
                    else:
                        got.append(event)
            if ranges:
                for w in ranges:
                    if w.contains(key):
                        got = matched.get(w)
                        if got is None:
                            matched[w] = [event]
                        else:
                            got.append(event)
        for w, evs in matched.items():
            if w.minRev > rev:
                continue
            if w.stream.deliverEvents(w, evs, rev):
                w.minRev = rev + 1
            else:
                w.minRev = rev
                self._unsync(w)

    # -- catch-up -------------------------------------------------------------

    def scheduleSync(self):
        if self._syncCall is None and self._unsynced:
            self._syncCall = self.clock.callLater(0, self._sync)

    def _sync(self):
        self._syncCall = None
        ks = self.keySpace
        current, compactRev = ks.revision, ks.compactRevision
        chosen = []
        again = False
        for w in self._unsynced:
            if w.stream.hasRoom():
                if len(chosen) == MAX_WATCHERS_PER_SYNC:
                    again = True
                    break
                chosen.append(w)
        # As etcd's syncWatchers: the compaction answers of a round first,
        # each only where its stream has room (etcd skips a watcher whose
        # channel is full and retries it next round), so a paused stream
        # holds at most maxPending whatever its watchers' number.
        for w in chosen:
            if w.minRev < compactRev and w.stream.hasRoom():
                self._compacted(w, compactRev)
        for w in chosen:
            if w.state != _UNSYNCED or not w.stream.hasRoom():
                continue
            try:
                events, nextRev = ks.eventsSince(w.key, w.rawRangeEnd, w.minRev, self.maxEvents)
            except ErrCompacted:
                self._compacted(w, ks.compactRevision)
                continue
            if not w.stream.deliverEvents(w, events, current):
                continue
            w.minRev = max(w.minRev, nextRev)
            if w.minRev > current:
                del self._unsynced[w]
                self._addSynced(w)
            elif w.stream.hasRoom():
                again = True
        if again:
            self.scheduleSync()

    def _compacted(self, w, compactRev):
        del self._unsynced[w]
        w.state = _COMPACTED
        w.stream.deliverCompacted(w, compactRev)


@implementer(IStreamHandler, IPushProducer)
class WatchStream:
    """
    One Watch rpc: many watchers, one ordered output.  It is the
    L{IStreamHandler} the transport feeds ``WatchRequest``s to, and the
    push producer registered with the transport's responder.
    """

    log = Logger()

    def __init__(self, hub, responder):
        self._hub = hub
        self._responder = responder
        self._watchers = {}
        self._nextID = 0
        self._queue = deque()
        self._paused = False
        self._inboundPaused = False
        self._closed = False
        self._progressCall = None
        responder.registerProducer(self, True)

    # -- IStreamHandler -------------------------------------------------------

    def receive(self, request):
        if self._closed:
            return
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            self._create(request.create_request)
        elif kind == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            self._emit(rpc_pb2.WatchResponse(header=self._hub.headers.make(), watch_id=-1))

    def requestsDone(self):
        """etcd keeps serving a watch stream after the client half-closes."""

    def cancel(self):
        self.close()

    def close(self, error=None):
        """
        Drop every watcher; send nothing more.  With ``error`` (an
        EtcdError), end the rpc with it too.
        """
        if self._closed:
            return
        self._closed = True
        for w in self._watchers.values():
            self._hub.remove(w)
        self._watchers.clear()
        self._queue.clear()
        if self._progressCall is not None and self._progressCall.active():
            self._progressCall.cancel()
        self._progressCall = None
        self._hub.streamClosed(self)
        self._responder.unregisterProducer()
        if error is not None:
            self._responder.finish(error)

    # -- IPushProducer --------------------------------------------------------

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._flush()
        if not self._paused:
            if self._inboundPaused:
                self._inboundPaused = False
                self._responder.resumeProducing()
            self._hub.scheduleSync()

    def stopProducing(self):
        self.close()

    # -- requests -------------------------------------------------------------

    def _create(self, c):
        hub = self._hub
        current = hub.keySpace.revision
        key = c.key or b"\x00"
        if not c.range_end:
            end = None
        elif c.range_end == b"\x00":
            end = b""
        else:
            end = c.range_end
        error = None
        id = c.watch_id
        if end and key >= end:
            error = _ERR_EMPTY_RANGE
        elif id == 0:
            while self._nextID in self._watchers:
                self._nextID += 1
            id = self._nextID
            self._nextID += 1
        elif id in self._watchers:
            error = _ERR_DUPLICATE_ID
        if error is not None:
            self._emit(rpc_pb2.WatchResponse(
                header=hub.headers.make(current), watch_id=-1, created=True, canceled=True,
                cancel_reason=error))
            return
        w = _Watcher(id, key, end, c, self)
        self._watchers[id] = w
        self._emit(rpc_pb2.WatchResponse(
            header=hub.headers.make(current), watch_id=id, created=True))
        hub.add(w, c.start_revision)
        if w.progressNotify and self._progressCall is None:
            self._progressCall = hub.clock.callLater(hub.progressDelay(), self._progressTick)

    def _cancel(self, id):
        w = self._watchers.pop(id, None)
        if w is None:
            return
        self._hub.remove(w)
        self._emit(rpc_pb2.WatchResponse(
            header=self._hub.headers.make(), watch_id=id, canceled=True))

    def _progressTick(self):
        hub = self._hub
        self._progressCall = hub.clock.callLater(hub.progressDelay(), self._progressTick)
        for w in self._watchers.values():
            if not w.progressNotify:
                continue
            if w.progressDue and hub.isSynced(w) and self.hasRoom():
                self._emit(rpc_pb2.WatchResponse(
                    header=hub.headers.make(), watch_id=w.id))
            w.progressDue = True

    # -- output ---------------------------------------------------------------

    @property
    def queued(self):
        """Responses held while the transport is paused."""
        return len(self._queue)

    def hasRoom(self):
        """True when an event response may be sent or queued now."""
        return not self._closed and (not self._paused or len(self._queue) < self._hub.maxPending)

    def deliverEvents(self, w, events, headerRevision):
        """
        Send ``events`` (L{raftmux.mvcc.Event}s) to watcher ``w`` in one
        response headed ``headerRevision``.  False (nothing sent) when the
        stream has no room; True when sent, or when the filters left
        nothing to send.
        """
        events = w.keep(events)
        if not events:
            return True
        if not self.hasRoom():
            return False
        response = rpc_pb2.WatchResponse(
            header=self._hub.headers.make(headerRevision), watch_id=w.id)
        add = response.events.append
        prevKv = w.prevKv
        for e in events:
            add(e.toProto(prevKv=prevKv))
        if w.fragment:
            for part in fragments(response, self._hub.fragmentLimit):
                self._emit(part)
        else:
            self._emit(response)
        w.progressDue = False
        return True

    def deliverCompacted(self, w, compactRevision):
        """etcd's answer to a watcher whose next revision was compacted away."""
        self._emit(rpc_pb2.WatchResponse(
            header=self._hub.headers.make(0), watch_id=w.id, canceled=True,
            compact_revision=compactRevision))

    def _emit(self, response):
        if self._closed:
            return
        if self._paused or self._queue:
            self._queue.append(response)
            if len(self._queue) > self._hub.maxPending and not self._inboundPaused:
                # Requests keep adding answers while nothing drains them.
                self._inboundPaused = True
                self._responder.pauseProducing()
            return
        self._responder.sendMessage(response)

    def _flush(self):
        queue = self._queue
        while queue and not self._paused and not self._closed:
            self._responder.sendMessage(queue.popleft())
