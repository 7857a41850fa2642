"""
The load generator of the ``node`` benchmark, the same for raftmux and for
PySyncObj's HTTP front end::

    python -m raftmux.bench._nodeclient MODE HOST PORT CONCURRENCY WARMUP DURATION \
        [SIZE] [KEYSPACE]

MODE is ``put`` (``PUT /kv/bench-<i>`` with a SIZE-byte body), ``get``
(``GET /kv/bench-<i>``) or ``getser`` (``GET /kv/bench-<i>?serializable=true``).
CONCURRENCY persistent HTTP/1.1 connections, one request outstanding on each
(no pipelining), keys taken round-robin from KEYSPACE.  Requests that start
after WARMUP seconds and complete within the next DURATION seconds are
counted; the last line printed is JSON: ``{"count", "errors", "perSecond",
"p50", "p99" (ms), ...}``.

Plain non-blocking sockets and ``select.epoll``, so that the client costs
little of the CPU the servers share with it.
"""

import json
import select
import socket
import sys
import time


class _Conn:
    __slots__ = ("sock", "buf", "began", "inflight")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.began = 0.0
        self.inflight = False


def _requests(mode, host, size, keyspace):
    value = b"v" * size
    hostHeader = b"Host: " + host.encode() + b"\r\n"
    out = []
    for i in range(keyspace):
        path = b"/kv/bench-%d" % (i,)
        if mode == "put":
            out.append(b"PUT " + path + b" HTTP/1.1\r\n" + hostHeader +
                       b"Content-Length: %d\r\n\r\n" % (len(value),) + value)
        elif mode == "get":
            out.append(b"GET " + path + b" HTTP/1.1\r\n" + hostHeader + b"\r\n")
        elif mode == "getser":
            out.append(b"GET " + path + b"?serializable=true HTTP/1.1\r\n" + hostHeader +
                       b"\r\n")
        else:
            raise ValueError("mode must be put, get or getser")
    return out


def _response(buf):
    """(status, total length) of the first complete response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    i = head.find(b"\r\ncontent-length:")
    length = 0
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17:j if j >= 0 else len(head)])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, total


def run(mode, host, port, concurrency, warmup, duration, size=100, keyspace=1000,
        drain=10.0):
    requests = _requests(mode, host, size, keyspace)
    ep = select.epoll()
    conns = {}
    for _ in range(concurrency):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conns[s.fileno()] = _Conn(s)
        ep.register(s.fileno(), select.EPOLLIN)
    nextKey = 0
    count = errors = 0
    errorSample = None
    latencies = []
    start = time.perf_counter()
    warmEnd = start + warmup
    end = warmEnd + duration
    outstanding = 0

    def send(c):
        nonlocal nextKey, outstanding
        c.began = time.perf_counter()
        c.inflight = True
        outstanding += 1
        c.sock.sendall(requests[nextKey % keyspace])  # ~200 B into an empty buffer
        nextKey += 1

    for c in conns.values():
        send(c)
    perf = time.perf_counter
    stopping = False
    while outstanding:
        now = perf()
        if now >= end:
            stopping = True
            if now >= end + drain:
                break
        for fd, _ in ep.poll(0.5):
            c = conns[fd]
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise RuntimeError("server closed a connection")
            c.buf += data
            parsed = _response(c.buf)
            if parsed is None:
                continue
            status, total = parsed
            done = perf()
            if c.began >= warmEnd and done < end:
                if 200 <= status < 300:
                    count += 1
                    latencies.append(done - c.began)
                else:
                    errors += 1
                    if errorSample is None:
                        errorSample = "%d %s" % (status, bytes(c.buf[:total])[-200:])
            del c.buf[:total]
            c.inflight = False
            outstanding -= 1
            if not stopping:
                send(c)
    for c in conns.values():
        c.sock.close()
    ep.close()
    latencies.sort()
    n = len(latencies)
    return {
        "count": count, "errors": errors, "errorSample": errorSample,
        "perSecond": count / duration,
        "p50": latencies[n // 2] * 1e3 if n else None,
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "concurrency": concurrency, "duration": duration, "unanswered": outstanding,
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    mode, host, port, concurrency, warmup, duration = argv[:6]
    size = int(argv[6]) if len(argv) > 6 else 100
    keyspace = int(argv[7]) if len(argv) > 7 else 1000
    figures = run(mode, host, int(port), int(concurrency), float(warmup), float(duration),
                  size, keyspace)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
