# -*- test-case-name: raftmux.test.test_mvcc_keyspace -*-
"""
etcd v3.4's server errors, as its clients see them
(``etcdserver/api/v3rpc/rpctypes/error.go``): each one a class carrying the
gRPC status code and the exact message etcdctl prints, named as rpctypes
names its client-side error (``ErrCompacted`` for ``ErrGRPCCompacted``).

The gRPC server answers ``grpc-status: e.code`` and ``grpc-message:
e.message``; the JSON gateway puts both in its error body.  Raising the
class or an instance are both fine: ``except EtcdError as e`` reads
``e.code`` and ``e.message`` either way.
"""

import enum
from typing import Any

__all__ = ["Code", "EtcdError", "ERRORS"]


class Code(enum.IntEnum):
    """gRPC status codes (grpc/codes)."""
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class EtcdError(Exception):
    """
    An error etcd's server answers with.  Subclasses fix ``code`` and
    ``message``; ``str(e)`` is the message.
    """

    code = Code.UNKNOWN
    message = ""

    def __init__(self, message=None):
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __str__(self):
        return self.message


#: message -> class, for a client reading a grpc-message back.
ERRORS: dict[Any, Any] = {}


def _error(name, code, message):
    cls = type(name, (EtcdError,), {
        "code": code, "message": message, "__module__": __name__,
        "__doc__": "%s: %s" % (code.name, message)})
    ERRORS[message] = cls
    __all__.append(name)
    return cls


_E = _error
_C = Code

ErrEmptyKey = _E("ErrEmptyKey", _C.INVALID_ARGUMENT, "etcdserver: key is not provided")
ErrKeyNotFound = _E("ErrKeyNotFound", _C.INVALID_ARGUMENT, "etcdserver: key not found")
ErrValueProvided = _E("ErrValueProvided", _C.INVALID_ARGUMENT, "etcdserver: value is provided")
ErrLeaseProvided = _E("ErrLeaseProvided", _C.INVALID_ARGUMENT, "etcdserver: lease is provided")
ErrTooManyOps = _E("ErrTooManyOps", _C.INVALID_ARGUMENT,
                   "etcdserver: too many operations in txn request")
ErrDuplicateKey = _E("ErrDuplicateKey", _C.INVALID_ARGUMENT,
                     "etcdserver: duplicate key given in txn request")
ErrCompacted = _E("ErrCompacted", _C.OUT_OF_RANGE,
                  "etcdserver: mvcc: required revision has been compacted")
ErrFutureRev = _E("ErrFutureRev", _C.OUT_OF_RANGE,
                  "etcdserver: mvcc: required revision is a future revision")
ErrNoSpace = _E("ErrNoSpace", _C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")

ErrLeaseNotFound = _E("ErrLeaseNotFound", _C.NOT_FOUND, "etcdserver: requested lease not found")
ErrLeaseExist = _E("ErrLeaseExist", _C.FAILED_PRECONDITION, "etcdserver: lease already exists")
ErrLeaseTTLTooLarge = _E("ErrLeaseTTLTooLarge", _C.OUT_OF_RANGE, "etcdserver: too large lease TTL")

ErrWatchCanceled = _E("ErrWatchCanceled", _C.CANCELLED, "etcdserver: watch canceled")

ErrMemberExist = _E("ErrMemberExist", _C.FAILED_PRECONDITION, "etcdserver: member ID already exist")
ErrPeerURLExist = _E("ErrPeerURLExist", _C.FAILED_PRECONDITION,
                     "etcdserver: Peer URLs already exists")
ErrMemberNotEnoughStarted = _E(
    "ErrMemberNotEnoughStarted", _C.FAILED_PRECONDITION,
    "etcdserver: re-configuration failed due to not enough started members")
ErrMemberBadURLs = _E("ErrMemberBadURLs", _C.INVALID_ARGUMENT,
                      "etcdserver: given member URLs are invalid")
ErrMemberNotFound = _E("ErrMemberNotFound", _C.NOT_FOUND, "etcdserver: member not found")
ErrMemberNotLearner = _E("ErrMemberNotLearner", _C.FAILED_PRECONDITION,
                         "etcdserver: can only promote a learner member")
ErrMemberLearnerNotReady = _E(
    "ErrMemberLearnerNotReady", _C.FAILED_PRECONDITION,
    "etcdserver: can only promote a learner member which is in sync with leader")
ErrTooManyLearners = _E("ErrTooManyLearners", _C.FAILED_PRECONDITION,
                        "etcdserver: too many learner members in cluster")

ErrRequestTooLarge = _E("ErrRequestTooLarge", _C.INVALID_ARGUMENT,
                        "etcdserver: request is too large")
ErrTooManyRequests = _E("ErrTooManyRequests", _C.RESOURCE_EXHAUSTED,
                        "etcdserver: too many requests")

ErrRootUserNotExist = _E("ErrRootUserNotExist", _C.FAILED_PRECONDITION,
                         "etcdserver: root user does not exist")
ErrRootRoleNotExist = _E("ErrRootRoleNotExist", _C.FAILED_PRECONDITION,
                         "etcdserver: root user does not have root role")
ErrUserAlreadyExist = _E("ErrUserAlreadyExist", _C.FAILED_PRECONDITION,
                         "etcdserver: user name already exists")
ErrUserEmpty = _E("ErrUserEmpty", _C.INVALID_ARGUMENT, "etcdserver: user name is empty")
ErrUserNotFound = _E("ErrUserNotFound", _C.FAILED_PRECONDITION, "etcdserver: user name not found")
ErrRoleAlreadyExist = _E("ErrRoleAlreadyExist", _C.FAILED_PRECONDITION,
                         "etcdserver: role name already exists")
ErrRoleNotFound = _E("ErrRoleNotFound", _C.FAILED_PRECONDITION, "etcdserver: role name not found")
ErrRoleEmpty = _E("ErrRoleEmpty", _C.INVALID_ARGUMENT, "etcdserver: role name is empty")
ErrAuthFailed = _E("ErrAuthFailed", _C.INVALID_ARGUMENT,
                   "etcdserver: authentication failed, invalid user ID or password")
ErrPermissionDenied = _E("ErrPermissionDenied", _C.PERMISSION_DENIED,
                         "etcdserver: permission denied")
ErrRoleNotGranted = _E("ErrRoleNotGranted", _C.FAILED_PRECONDITION,
                       "etcdserver: role is not granted to the user")
ErrPermissionNotGranted = _E("ErrPermissionNotGranted", _C.FAILED_PRECONDITION,
                             "etcdserver: permission is not granted to the role")
ErrAuthNotEnabled = _E("ErrAuthNotEnabled", _C.FAILED_PRECONDITION,
                       "etcdserver: authentication is not enabled")
ErrInvalidAuthToken = _E("ErrInvalidAuthToken", _C.UNAUTHENTICATED,
                         "etcdserver: invalid auth token")
ErrInvalidAuthMgmt = _E("ErrInvalidAuthMgmt", _C.INVALID_ARGUMENT,
                        "etcdserver: invalid auth management")
ErrAuthOldRevision = _E("ErrAuthOldRevision", _C.INVALID_ARGUMENT,
                        "etcdserver: revision of auth store is old")

ErrNoLeader = _E("ErrNoLeader", _C.UNAVAILABLE, "etcdserver: no leader")
ErrNotLeader = _E("ErrNotLeader", _C.FAILED_PRECONDITION, "etcdserver: not leader")
ErrLeaderChanged = _E("ErrLeaderChanged", _C.UNAVAILABLE, "etcdserver: leader changed")
ErrNotCapable = _E("ErrNotCapable", _C.UNAVAILABLE, "etcdserver: not capable")
ErrStopped = _E("ErrStopped", _C.UNAVAILABLE, "etcdserver: server stopped")
ErrTimeout = _E("ErrTimeout", _C.UNAVAILABLE, "etcdserver: request timed out")
ErrTimeoutDueToLeaderFail = _E(
    "ErrTimeoutDueToLeaderFail", _C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to previous leader failure")
ErrTimeoutDueToConnectionLost = _E(
    "ErrTimeoutDueToConnectionLost", _C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to connection lost")
ErrTimeoutWaitAppliedIndex = _E(
    "ErrTimeoutWaitAppliedIndex", _C.UNAVAILABLE,
    "etcdserver: request timed out, waiting for the applied index took too long")
ErrUnhealthy = _E("ErrUnhealthy", _C.UNAVAILABLE, "etcdserver: unhealthy cluster")
ErrCorrupt = _E("ErrCorrupt", _C.DATA_LOSS, "etcdserver: corrupt cluster")
ErrNotSupportedForLearner = _E("ErrNotSupportedForLearner", _C.UNAVAILABLE,
                               "etcdserver: rpc not supported for learner")
ErrBadLeaderTransferee = _E("ErrBadLeaderTransferee", _C.FAILED_PRECONDITION,
                            "etcdserver: bad leader transferee")

del _E, _C
