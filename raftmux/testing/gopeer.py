"""
Build the Go test peers that ship with raftmux (``raftmux/test/go/<name>``),
offline, against the Go libraries Debian installs under /usr/share/gocode.

``buildGoProgram`` copies a program's source into a scratch GOPATH, builds
it with ``GOPATH=<scratch>:/usr/share/gocode GO111MODULE=off go build`` and
keeps the binary in a cache directory keyed by a hash of the source and the
Go version, so a test run builds each program once (and a later run with the
same source not at all).  Whatever cannot be built here -- no ``go``, a
missing Debian source package, source not shipped -- raises
``unittest.SkipTest`` saying which, so interop tests skip instead of failing.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from typing import Any

GOCODE = "/usr/share/gocode"

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_built: dict[Any, Any] = {}
_importBlock = re.compile(r"^import\s*\(\s*(.*?)\)", re.S | re.M)
_importLine = re.compile(r'^import\s+(?:\w+\s+)?"([^"]+)"', re.M)
_quoted = re.compile(r'"([^"]+)"')


def _which(name):
    return shutil.which(name)


def goAvailable():
    """Is a ``go`` toolchain on PATH?"""
    return _which("go") is not None


def cacheDirectory():
    """Where built peers are kept: $RAFTMUX_GOPEER_CACHE, else a per-user temp dir."""
    path = os.environ.get("RAFTMUX_GOPEER_CACHE")
    if not path:
        path = os.path.join(tempfile.gettempdir(), "raftmux-gopeer-%d" % (os.getuid(),))
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def sourceDirectory(packageDir):
    """
    ``packageDir`` as a directory: absolute, or relative to the raftmux
    package (``test/go/muxado1peer``; a leading ``raftmux/`` is accepted).
    """
    if os.path.isabs(packageDir):
        return packageDir
    parts = packageDir.replace("\\", "/").split("/")
    if parts and parts[0] == "raftmux":
        parts = parts[1:]
    return os.path.join(_PACKAGE_ROOT, *parts)


def goSources(source):
    """The program's .go files (tests excluded), sorted."""
    if not os.path.isdir(source):
        return []
    return sorted(name for name in os.listdir(source)
                  if name.endswith(".go") and not name.endswith("_test.go"))


def thirdPartyImports(source, names):
    """Import paths of the program that are not the standard library's."""
    found = set()
    for name in names:
        with open(os.path.join(source, name), encoding="utf-8") as f:
            text = f.read()
        for block in _importBlock.findall(text):
            found.update(_quoted.findall(block))
        found.update(_importLine.findall(text))
    return sorted(path for path in found if "." in path.split("/")[0])


def _goVersion(go):
    return subprocess.run([go, "version"], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def buildGoProgram(name, packageDir):
    """
    Build the Go program in ``packageDir`` (see ``sourceDirectory``) and
    return the path of its binary, named ``name``.  Raises
    ``unittest.SkipTest`` when it cannot be built here, ``RuntimeError``
    when the build itself fails.
    """
    source = sourceDirectory(packageDir)
    names = goSources(source)
    if not names:
        raise unittest.SkipTest(
            "the Go source of %s is not shipped with this raftmux (no .go files in %s)"
            % (name, source))
    go = _which("go")
    if go is None:
        raise unittest.SkipTest("no Go toolchain on PATH (Debian: apt-get install golang-go); "
                                "cannot build the %s test peer" % (name,))
    for path in thirdPartyImports(source, names):
        if not os.path.isdir(os.path.join(GOCODE, "src", path)):
            raise unittest.SkipTest(
                "%s needs the Go package %s, not found under %s/src (Debian ships such "
                "sources as golang-*-dev packages)" % (name, path, GOCODE))
    digest = hashlib.sha256()
    digest.update(name.encode("utf-8") + b"\0")
    for fileName in names:
        with open(os.path.join(source, fileName), "rb") as f:
            digest.update(fileName.encode("utf-8") + b"\0" + f.read() + b"\0")
    key = digest.hexdigest()
    if key in _built and os.path.exists(_built[key]):
        return _built[key]
    digest.update(_goVersion(go).encode("utf-8"))
    cache = cacheDirectory()
    binary = os.path.join(cache, "%s-%s" % (name, digest.hexdigest()[:20]))
    if not os.path.exists(binary):
        _build(go, name, source, names, cache, binary)
    _built[key] = binary
    return binary


def _build(go, name, source, names, cache, binary):
    scratch = tempfile.mkdtemp(prefix="gopath-", dir=cache)
    try:
        program = os.path.join(scratch, "src", name)
        os.makedirs(program)
        for fileName in names:
            shutil.copyfile(os.path.join(source, fileName), os.path.join(program, fileName))
        env = dict(os.environ,
                   GOPATH="%s:%s" % (scratch, GOCODE),
                   GO111MODULE="off",
                   GOFLAGS="",
                   GOPROXY="off",
                   CGO_ENABLED="0",
                   GOCACHE=os.path.join(cache, "go-build"))
        output = os.path.join(scratch, name)
        result = subprocess.run([go, "build", "-o", output, "."], cwd=program, env=env,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError("go build of %s failed:\n%s%s"
                               % (name, result.stdout, result.stderr))
        # Atomic: a parallel test process may be building the same program.
        os.replace(output, binary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def buildMuxado1Peer():
    """The generation-1 muxado peer (``raftmux/test/go/muxado1peer``); see its main.go."""
    return buildGoProgram("muxado1peer", "test/go/muxado1peer")


def buildEtcdClient():
    """etcd's Go client driven by our program (``raftmux/test/go/etcdclient``); see its main.go."""
    return buildGoProgram("etcdclient", "test/go/etcdclient")
