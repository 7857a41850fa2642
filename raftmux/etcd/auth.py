# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
etcd's Auth service, answered as etcd 3.4 answers with authentication
disabled and an empty auth store (``auth/store.go``): nothing to list,
every user and role unknown, Authenticate refused with "authentication
is not enabled", AuthEnable refused for want of a root user, AuthDisable
accepted.

What differs: etcd lets you add users and roles while auth is disabled
(to prepare enabling it); raftmux has no auth store, so UserAdd and
RoleAdd are refused with UNIMPLEMENTED (after etcd's own empty-name
checks).
"""

from raftmux.etcd.deferred import deferredMethod
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import (
    Code,
    ErrAuthNotEnabled,
    ErrRoleEmpty,
    ErrRoleNotFound,
    ErrRootUserNotExist,
    ErrUserEmpty,
    ErrUserNotFound,
    EtcdError,
)

__all__ = ["AuthService", "ErrAuthNotSupported"]


class ErrAuthNotSupported(EtcdError):
    """UNIMPLEMENTED: raftmux keeps no users or roles."""

    code = Code.UNIMPLEMENTED
    message = "raftmux: the auth store is not supported (no users or roles can be added)"


class AuthService:
    """``etcdserverpb.Auth`` with authentication disabled."""

    def __init__(self, node, headers, guard):
        self._node = node
        self._headers = headers
        self._guard = guard

    def _ok(self, response):
        response.header.CopyFrom(self._headers.make())
        return response

    @deferredMethod
    def AuthEnable(self, request):
        self._guard.check(request)
        raise ErrRootUserNotExist()

    @deferredMethod
    def AuthDisable(self, request):
        self._guard.check(request)
        return self._ok(rpc_pb2.AuthDisableResponse())

    @deferredMethod
    async def Authenticate(self, request):
        self._guard.check(request)
        await self._node.readIndex()
        raise ErrAuthNotEnabled()

    @deferredMethod
    def UserAdd(self, request):
        self._guard.check(request)
        if not request.name:
            raise ErrUserEmpty()
        raise ErrAuthNotSupported()

    @deferredMethod
    def UserGet(self, request):
        self._guard.check(request)
        raise ErrUserNotFound()

    @deferredMethod
    def UserList(self, request):
        self._guard.check(request)
        return self._ok(rpc_pb2.AuthUserListResponse())

    @deferredMethod
    def UserDelete(self, request):
        self._guard.check(request)
        raise ErrUserNotFound()

    @deferredMethod
    def UserChangePassword(self, request):
        self._guard.check(request)
        raise ErrUserNotFound()

    @deferredMethod
    def UserGrantRole(self, request):
        self._guard.check(request)
        raise ErrUserNotFound()

    @deferredMethod
    def UserRevokeRole(self, request):
        self._guard.check(request)
        raise ErrUserNotFound()

    @deferredMethod
    def RoleAdd(self, request):
        self._guard.check(request)
        if not request.name:
            raise ErrRoleEmpty()
        raise ErrAuthNotSupported()

    @deferredMethod
    def RoleGet(self, request):
        self._guard.check(request)
        raise ErrRoleNotFound()

    @deferredMethod
    def RoleList(self, request):
        self._guard.check(request)
        return self._ok(rpc_pb2.AuthRoleListResponse())

    @deferredMethod
    def RoleDelete(self, request):
        self._guard.check(request)
        raise ErrRoleNotFound()

    @deferredMethod
    def RoleGrantPermission(self, request):
        self._guard.check(request)
        raise ErrRoleNotFound()

    @deferredMethod
    def RoleRevokePermission(self, request):
        self._guard.check(request)
        raise ErrRoleNotFound()
