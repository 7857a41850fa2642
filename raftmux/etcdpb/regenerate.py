"""
Redo ``raftmux/etcdpb/``: strip etcd 3.4's protos and compile them.

Run from the repository root::

    python raftmux/etcdpb/regenerate.py [--etcd DIR] [--protoc-python PYTHON]

1. Strip (only when the etcd source tree is there, by default Debian's
   ``golang-etcd-server-dev`` at /usr/share/gocode/src/go.etcd.io/etcd):
   each source proto loses its gogoproto import and options (file options
   and ``[(gogoproto....)]`` field options) and its ``google.api.http``
   annotations; imports are rewritten to ``raftmux/etcdpb/...`` so that
   the generated modules import each other as ``raftmux.etcdpb.*_pb2``.
   Names, numbers and types are untouched.  The HTTP routes the
   annotations declared are written to ``gateway.py`` instead, since the
   JSON gateway needs them.
2. Compile ``raftmux/etcdpb/*.proto`` and ``raftmux/grpcpb/health.proto``
   with ``grpc_tools.protoc`` (message classes only: ``--python_out``).

``grpc_tools`` must be grpcio-tools 1.51.x (protoc 3.21): its output loads
on protobuf 4.21 to 7.x, where newer protoc releases stamp a runtime check
that refuses older runtimes.  grpcio-tools 1.51 pins protobuf < 5, so keep
it out of the project's virtualenv: make a throwaway one
(``python -m venv /tmp/protoc && /tmp/protoc/bin/pip install
grpcio-tools==1.51.3``) and pass its interpreter as ``--protoc-python``.
It is a build-time tool, never a dependency of raftmux.
"""

import argparse
import os
import re
import subprocess
import sys

ETCD = "/usr/share/gocode/src/go.etcd.io/etcd"
ETCD_VERSION = "v3.4.23"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# (source path in etcd's tree, file name here)
SOURCES = [
    ("mvcc/mvccpb/kv.proto", "kv.proto"),
    ("auth/authpb/auth.proto", "auth.proto"),
    ("etcdserver/etcdserverpb/rpc.proto", "rpc.proto"),
    ("etcdserver/etcdserverpb/etcdserver.proto", "etcdserver.proto"),
    ("etcdserver/etcdserverpb/raft_internal.proto", "raft_internal.proto"),
]

IMPORTS = {
    "etcd/mvcc/mvccpb/kv.proto": "raftmux/etcdpb/kv.proto",
    "etcd/auth/authpb/auth.proto": "raftmux/etcdpb/auth.proto",
    "etcdserver.proto": "raftmux/etcdpb/etcdserver.proto",
    "rpc.proto": "raftmux/etcdpb/rpc.proto",
}
DROPPED_IMPORTS = {"gogoproto/gogo.proto", "google/api/annotations.proto"}


def _matchingBrace(text, start):
    """The index just past the ``}`` that closes the ``{`` at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced braces from offset %d" % (start,))


_HTTP_OPTION = re.compile(r"\n[ \t]*option\s*\(google\.api\.http\)\s*=\s*\{")
_SERVICE = re.compile(r"^service\s+(\w+)", re.M)
_RPC = re.compile(r"\brpc\s+(\w+)\s*\(")
_ROUTE = re.compile(r"\b(get|put|post|delete|patch)\s*:\s*\"([^\"]*)\"")


def strip(text, package):
    """
    ``(stripped proto text, routes)``; routes are ``(method, path,
    service full name, rpc name)`` in the order the file declares them.
    """
    routes = []
    out = []
    pos = 0
    for m in _HTTP_OPTION.finditer(text):
        if m.start() < pos:
            continue
        end = _matchingBrace(text, m.end() - 1)
        if text[end:end + 1] == ";":
            end += 1
        before = text[:m.start()]
        service = _SERVICE.findall(before)[-1]
        rpc = _RPC.findall(before)[-1]
        for verb, path in _ROUTE.findall(text[m.start():end]):
            routes.append((verb.upper(), path, "%s.%s" % (package, service), rpc))
        out.append(text[pos:m.start()])
        pos = end
    out.append(text[pos:])
    text = "".join(out)

    lines = []
    for line in text.split("\n"):
        imp = re.match(r'\s*import\s+"([^"]+)"\s*;', line)
        if imp:
            name = imp.group(1)
            if name in DROPPED_IMPORTS:
                continue
            line = 'import "%s";' % (IMPORTS[name],)
        elif re.match(r"\s*option\s*\(gogoproto\.", line):
            continue
        elif line.strip() == "// for grpc-gateway":
            continue
        line = re.sub(r"\s*\[\s*\(gogoproto\.[^\]]*\]", "", line)
        if "gogoproto" in line or "google.api" in line:
            raise ValueError("annotation left in: %r" % (line,))
        lines.append(line)
    text = "\n".join(lines)
    # An rpc whose only content was the annotation keeps an empty body.
    text = re.sub(r"\{\s*\n\s*\}", "{}", text)
    return text, routes


def header(source):
    return (
        "// etcd %s's %s, stripped for Python by raftmux/etcdpb/regenerate.py.\n"
        "//\n"
        "// Removed: the gogoproto import and every gogoproto option (file options\n"
        "// and [(gogoproto....)] field options), the google/api/annotations.proto\n"
        "// import and every `option (google.api.http)` block (the routes are in\n"
        "// gateway.py).  Imports are rewritten to raftmux/etcdpb/.  Everything\n"
        "// else (names, numbers, types, comments) is etcd's.  DO NOT EDIT: rerun\n"
        "// the script.\n\n" % (ETCD_VERSION, source))


def writeGateway(routes):
    lines = [
        '"""',
        "etcd %s's JSON gateway routes, from the ``google.api.http`` annotations"
        % (ETCD_VERSION,),
        "of rpc.proto (generated by regenerate.py; DO NOT EDIT).",
        "",
        "``ROUTES`` lists ``(HTTP method, path, service full name, rpc name)`` in",
        "declaration order.  etcd 3.4 declares ``/v3/maintenance/hash`` for both",
        "``Hash`` and ``HashKV``; its gateway registers them in this order and",
        "the grpc-gateway Debian builds it with dispatches to the first match,",
        "so ``POST /v3/maintenance/hash`` is ``Hash`` there.",
        '"""',
        "",
        "ROUTES = (",
    ]
    for route in routes:
        lines.append("    %r," % (route,))
    lines.append(")")
    with open(os.path.join(HERE, "gateway.py"), "w") as f:
        f.write("\n".join(lines) + "\n")


def stripAll(etcd):
    allRoutes = []
    for source, name in SOURCES:
        with open(os.path.join(etcd, source)) as f:
            text = f.read()
        package = re.search(r"^package\s+(\w+)\s*;", text, re.M).group(1)
        stripped, routes = strip(text, package)
        allRoutes.extend(routes)
        with open(os.path.join(HERE, name), "w") as f:
            f.write(header(source) + stripped)
    writeGateway(allRoutes)


def compileAll(python):
    protos = ["raftmux/etcdpb/%s" % (name,) for _, name in SOURCES]
    protos.append("raftmux/grpcpb/health.proto")
    subprocess.check_call(
        [python, "-m", "grpc_tools.protoc", "-I.", "--python_out=."] + protos,
        cwd=ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--etcd", default=ETCD,
                        help="etcd 3.4 source tree (skip stripping if absent)")
    parser.add_argument("--protoc-python", default=sys.executable,
                        help="a Python with grpcio-tools 1.51.x installed")
    args = parser.parse_args(argv)
    if os.path.isdir(args.etcd):
        stripAll(args.etcd)
    else:
        print("no etcd tree at %s: compiling the stripped protos as they are"
              % (args.etcd,))
    compileAll(args.protoc_python)


if __name__ == "__main__":
    main()
