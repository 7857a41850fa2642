"""
raftmux: one Twisted port for raft (etcd rafthttp), gossip (ckit over HTTP/2),
muxado streams and HTTP.

The layout is flat (``raftmux/`` and ``twisted/plugins/`` at the top).  Mapping
the root explicitly (``package_dir={"": "."}``) makes setuptools' editable
install use a plain ``.pth`` entry instead of its import-hook finder, which is
what lets Twisted's plugin scanner see ``twisted/plugins/`` in editable mode.
"""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(*path):
    with open(os.path.join(HERE, *path), encoding="utf-8") as f:
        return f.read()


# One source of truth for the version: raftmux/__init__.py (read, not
# imported: importing the package needs its dependencies).
VERSION = re.search(r'^__version__ = "([^"]+)"', read("raftmux", "__init__.py"), re.M).group(1)

setup(
    name="raftmux",
    version=VERSION,
    description="Twisted protocol suite for the peer side of clustered services",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir={"": "."},
    packages=find_packages(include=["raftmux", "raftmux.*"]) + ["twisted.plugins"],
    include_package_data=False,
    # py.typed: the package ships its type hints (PEP 561); the .proto
    # sources of the compiled protobuf modules.  The Go test peers' source,
    # built on demand by raftmux.testing.gopeer.
    package_data={"raftmux": ["py.typed"], "raftmux.raftpb": ["*.proto"],
                  "raftmux.etcdpb": ["*.proto"], "raftmux.grpcpb": ["*.proto"],
                  "raftmux.test": ["go/*/*.go"],
                  # Seed inputs and kept crash inputs of the fuzz targets.
                  "raftmux.fuzz": ["corpus/*/*", "regressions/*/*"]},
    install_requires=[
        "msgpack>=1.0",
        "xxhash>=3.0",
        "twisted[tls,http2]>=26.4",
        "txaio>=23.1",
        "pyopenssl>=25.3.0",
        # imported directly (raftmux.tls, raftmux.node.listeners), not only through pyOpenSSL
        "cryptography>=45",
        "service-identity>=24.1",
        "protobuf>=4.21",
        "prometheus_client>=0.17",
        "sortedcontainers>=2.4",
    ],
    extras_require={
        # grpcio: a real gRPC client (C core) in the gRPC interop tests and
        # the gRPC benchmark's baseline server; never imported by raftmux itself
        "test": ["hypothesis>=6.100", "treq>=24.9", "etcd3gw>=2.4", "grpcio>=1.50"],
        "lint": ["ruff", "mypy", "mypy-zope"],
        # python -m raftmux.fuzz (coverage-guided fuzzing); not needed to run or test.
        "fuzz": ["atheris>=2.3"],
        "docs": ["pdoc>=14"],
        # The node benchmark's baseline (raftmux.bench.node); optional.
        "bench": ["pysyncobj>=0.3.17", "grpcio>=1.50"],
        # python -m raftmux.chaos draws its latency and throughput plots with it
        "chaos": ["matplotlib>=3.5"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)
