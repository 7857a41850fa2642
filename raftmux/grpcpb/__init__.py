# -*- test-case-name: raftmux.test.test_etcdpb -*-
"""
gRPC's own protos (``grpc.health.v1``) and the one way raftmux reads a
gRPC service out of compiled protobuf descriptors.

A gRPC server of ours is driven by descriptors, not by generated stubs:
``methods(serviceDescriptor)`` gives, for each rpc, its request path
(``/package.Service/Method``), the request and response message classes
and whether each side streams.  The streaming flags are read from the
descriptor's own proto form because protobuf 4.21's upb descriptors do
not carry them as attributes.
"""

from collections import namedtuple

from google.protobuf.descriptor_pb2 import ServiceDescriptorProto

from raftmux.grpcpb import health_pb2

__all__ = ["Method", "methods", "messageClass", "health_pb2", "HEALTH"]


class Method(namedtuple("Method", [
        "path", "service", "name", "requestClass", "responseClass",
        "clientStreaming", "serverStreaming"])):
    """
    One rpc: ``path`` is what gRPC puts in ``:path``; ``service`` is the
    service's full name (``etcdserverpb.KV``); ``name`` the rpc's
    (``Range``).
    """


_MODULES = {}


def _register(module):
    _MODULES[module.DESCRIPTOR.name] = module


_register(health_pb2)


def messageClass(descriptor):
    """
    The generated class of a top-level message ``descriptor`` from one of
    raftmux's compiled modules.
    """
    module = _MODULES[descriptor.file.name]
    return getattr(module, descriptor.name)


def methods(service, modules=()):
    """
    The L{Method}s of ``service`` (a ``ServiceDescriptor``) in declaration
    order.  ``modules`` are the generated modules whose messages it uses,
    when they are not raftmux's own already known here.
    """
    for module in modules:
        _register(module)
    proto = ServiceDescriptorProto()
    service.CopyToProto(proto)
    streaming = {m.name: (m.client_streaming, m.server_streaming) for m in proto.method}
    out = []
    for method in service.methods:
        client, server = streaming[method.name]
        out.append(Method(
            "/%s/%s" % (service.full_name, method.name), service.full_name,
            method.name, messageClass(method.input_type),
            messageClass(method.output_type), client, server))
    return out


#: grpc.health.v1.Health
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
