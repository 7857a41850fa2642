"""
rafthttp benchmarks, sender and receiver in separate processes on loopback:

- ``msgapp``: MsgApp with one 128-byte entry over the msgappv2 stream
  (target >= 100k messages/s), beside the same records over a raw Twisted
  TCP connection with the same codec (the baseline);
- ``message``: the same MsgApps over the message stream;
- ``pipeline``: one MsgApp per POST /raft, 4 in flight.
"""

import json
import subprocess
import sys

from raftmux.bench._harness import Result, median, serverProcess

PEER = "raftmux.bench._rafthttppeer"


def measure(mode, count):
    with serverProcess(PEER, "sender", mode, count) as (sender, senderPort):
        receiver = subprocess.Popen(
            [sys.executable, "-m", PEER, "receiver", mode, str(count), senderPort],
            stdout=subprocess.PIPE, text=True)
        try:
            receiverPort = receiver.stdout.readline().strip()
            sender.stdin.write(receiverPort + "\n")
            sender.stdin.flush()
            out, _ = receiver.communicate(timeout=180)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
    figures = json.loads(out.strip().splitlines()[-1])
    if "error" in figures:
        raise RuntimeError("rafthttp %s: %s" % (mode, figures["error"]))
    return figures["perSecond"]


def run(options):
    repeats = 1 if options.quick else 3
    count = 100000 if options.quick else 200000
    raw = median([measure("raw", count) for _ in range(repeats)])
    msgapp = median([measure("msgapp", count) for _ in range(repeats)])
    results = [Result("msgapp", "messages/s", msgapp, raw, target=None,
                      notes="MsgApp 1x128 B entry, msgappv2 stream vs raw TCP same codec; "
                            "target >= 100k/s; %d msgs, median of %d" % (count, repeats))]
    message = median([measure("message", count) for _ in range(repeats)])
    results.append(Result("message", "messages/s", message, msgapp,
                          notes="same MsgApps on the message stream (baseline: msgappv2)"))
    posts = 3000 if options.quick else 10000
    pipeline = median([measure("pipeline", posts) for _ in range(repeats)])
    results.append(Result("pipeline", "POSTs/s", pipeline, None,
                          notes="one MsgApp per POST /raft, 4 in flight, %d posts" % (posts,)))
    return results
