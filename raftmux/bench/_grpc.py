"""
The gRPC rows of ``python -m raftmux.bench h2``: unary calls per second over one HTTP/2 connection with 64
calls in flight, our server (``raftmux.grpc.GRPCServer`` on the
``raftmux.h2`` shell) against grpcio's own server (``grpc.server`` with a
thread pool, the same rpc), each driven by the same client in a separate
process.

- ``grpc-unary``: ``grpc.health.v1.Health/Check`` from grpcio's asyncio
  client (one channel, so one connection; 64 tasks each calling in a loop);
- ``grpc-unary-server-cpu``: the server process's CPU per call in those runs;
- ``grpc-unary-ours-client``: the same with raftmux's ``GRPCClient`` (one
  connection, 64 calls kept in flight).

Each figure is the median of several runs (3, or 1 with ``--quick``).

    python -m raftmux.bench._grpc server ours|grpcio
    python -m raftmux.bench._grpc client grpcio|ours <port> <seconds> <inflight>
"""

import json
import subprocess
import sys
import time

from raftmux.bench._harness import Result, median, serverProcess
from raftmux.testing.procstat import cpuSeconds

MODULE = "raftmux.bench._grpc"
CHECK = "/grpc.health.v1.Health/Check"
IN_FLIGHT = 64
#: sequential calls each client makes before it measures
WARMUP = 200
#: grpcio server threads (grpc.server needs an executor; 10 as in grpcio's examples)
GRPCIO_WORKERS = 10


def measure(client, server, seconds, inFlight=IN_FLIGHT):
    """
    One run: ``client`` against a fresh ``server`` process.  Returns the
    client's figures plus ``serverCPU``, the server process's CPU (all its
    threads) per call in microseconds, read from /proc (None elsewhere).
    """
    with serverProcess(MODULE, "server", server) as (proc, port):
        before = _cpuSeconds(proc.pid)
        out = subprocess.run(
            [sys.executable, "-m", MODULE, "client", client, port, str(seconds), str(inFlight)],
            capture_output=True, text=True, timeout=300)
        after = _cpuSeconds(proc.pid)
        lines = out.stdout.strip().splitlines()
        figures = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
        if "error" in figures:
            raise RuntimeError("%s client against %s server failed: %s"
                               % (client, server, figures["error"]))
        figures["serverCPU"] = None
        if before is not None and after is not None and figures["calls"]:
            figures["serverCPU"] = (after - before) / (figures["calls"] + WARMUP) * 1e6
        return figures


def _cpuSeconds(pid):
    """``cpuSeconds`` of ``pid`` (every thread), or None if unavailable."""
    try:
        return cpuSeconds(pid)
    except (OSError, ValueError, IndexError):
        return None


def run(options):
    repeats = 1 if options.quick else 3
    seconds = 2 if options.quick else 5
    results = []
    for name, client in (("grpc-unary", "grpcio"), ("grpc-unary-ours-client", "ours")):
        runs = {"ours": [], "grpcio": []}
        for _ in range(repeats):
            for server in ("ours", "grpcio"):
                runs[server].append(measure(client, server, seconds))

        def med(server, key, runs=runs):
            values = [r[key] for r in runs[server] if r[key] is not None]
            return median(values) if values else None

        results.append(Result(
            name, "calls/s", med("ours", "perSecond"), med("grpcio", "perSecond"), target=1.0,
            notes="Health/Check, one connection, %d in flight, %s client, %gs per run; baseline "
                  "grpcio %s grpc.server (%d threads); medians of %d (ours %s, grpcio %s)"
                  % (IN_FLIGHT, client, seconds, _grpcioVersion(), GRPCIO_WORKERS, repeats,
                     _fmt(r["perSecond"] for r in runs["ours"]),
                     _fmt(r["perSecond"] for r in runs["grpcio"])),
            extra={"runs": runs}))
        if name == "grpc-unary":
            results.append(Result(
                "grpc-unary-server-cpu", "us/call", med("ours", "serverCPU"),
                med("grpcio", "serverCPU"), higherIsBetter=False,
                notes="server process CPU per call (all threads), same runs: what decides "
                      "the rate when the server's cores are not shared"))
    return results


def _fmt(values):
    return "/".join("%.0f" % (v,) for v in values)


def _grpcioVersion():
    try:
        import grpc
    except ImportError:
        return "(absent)"
    return grpc.__version__


# -- servers -----------------------------------------------------------------------


def serveOurs():
    from twisted.internet import reactor

    from raftmux.grpc import GRPCServer

    server = GRPCServer()
    port = reactor.listenTCP(0, server.serverFactory(), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


def serveGRPCIO():
    from concurrent import futures

    import grpc

    from raftmux.grpcpb import health_pb2

    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def check(request, context):
        return serving

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPCIO_WORKERS))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


# -- clients ------------------------------------------------------------------------


def clientGRPCIO(port, seconds, inFlight):
    import asyncio

    import grpc

    from raftmux.grpcpb import health_pb2

    async def main():
        async with grpc.aio.insecure_channel("127.0.0.1:%d" % (port,)) as channel:
            check = channel.unary_unary(
                CHECK, request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString)
            request = health_pb2.HealthCheckRequest()
            for _ in range(WARMUP):
                await check(request, timeout=10)
            counts = [0] * inFlight
            stop = time.monotonic() + seconds

            async def worker(i):
                while time.monotonic() < stop:
                    await check(request, timeout=10)
                    counts[i] += 1
            started = time.monotonic()
            await asyncio.gather(*(worker(i) for i in range(inFlight)))
            return sum(counts), time.monotonic() - started

    return asyncio.run(main())


def clientOurs(port, seconds, inFlight):
    from twisted.internet import reactor

    from raftmux.grpc import GRPCClient
    from raftmux.grpcpb import HEALTH, health_pb2

    client = GRPCClient(reactor, "http://127.0.0.1:%d" % (port,))
    check = client.stub(HEALTH).Check
    request = health_pb2.HealthCheckRequest()
    state = {"count": 0, "stop": None, "started": None, "running": 0, "error": None,
             "warmup": WARMUP}
    result = {}

    def finished():
        result["calls"] = state["count"]
        result["seconds"] = time.monotonic() - state["started"]
        client.close().addBoth(lambda _: reactor.stop())
        reactor.callLater(5, lambda: reactor.running and reactor.stop())

    def one(_=None):
        if state["stop"] is not None and time.monotonic() >= state["stop"]:
            state["running"] -= 1
            if state["running"] == 0:
                finished()
            return
        d = check(request, timeout=10)
        d.addCallbacks(counted, failed)

    def counted(_):
        if state["stop"] is not None:
            state["count"] += 1
        one()

    def failed(f):
        if state["error"] is None:
            state["error"] = "%s: %s" % (f.type.__name__, f.getErrorMessage())
        state["stop"] = 0
        if state["started"] is None:
            if reactor.running:
                reactor.stop()
            return
        one()

    def warm():
        if state["warmup"] == 0:
            state["started"] = time.monotonic()
            state["stop"] = state["started"] + seconds
            state["running"] = inFlight
            for _ in range(inFlight):
                one()
            return
        state["warmup"] -= 1
        check(request, timeout=10).addCallbacks(lambda _: warm(), failed)

    reactor.callWhenRunning(warm)
    reactor.run()
    if state["error"]:
        raise RuntimeError(state["error"])
    return result["calls"], result["seconds"]


def main(argv):
    role = argv[0]
    if role == "server":
        {"ours": serveOurs, "grpcio": serveGRPCIO}[argv[1]]()
        return 0
    kind, port, seconds, inFlight = argv[1], int(argv[2]), float(argv[3]), int(argv[4])
    try:
        calls, elapsed = {"grpcio": clientGRPCIO, "ours": clientOurs}[kind](
            port, seconds, inFlight)
    except Exception as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    print(json.dumps({"perSecond": calls / elapsed, "calls": calls, "seconds": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
