"""The one table from exceptions to gRPC status codes, and the error detail that goes with it.

Every error the server returns carries a `gradserve.v1.Error` (code, message, kind, op_index,
op, site) serialized in the trailing metadata key `gradserve-error-bin`, so clients can name
the failing op and the user's source line; Pipeline replies carry the same message as a value.
The lookup walks the exception's MRO, so the most specific class listed wins
(InvalidArgumentError is a subclass of AutogradError, and maps to INVALID_ARGUMENT).
"""

from __future__ import annotations

import logging

import grpc
from gradserve.engine import (
    AutogradError,
    DeviceUnavailableError,
    InvalidArgumentError,
    TensorIndexError,
)
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import ERROR_TRAILER

from ._errors import (
    DeadlineExceededError,
    NotFoundError,
    OpFailure,
    PermissionDeniedError,
    ResourceExhaustedError,
    SessionMovedError,
    UnauthenticatedError,
    UnavailableError,
)

STATUS_CODES: dict[type[BaseException], grpc.StatusCode] = {
    TensorIndexError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    AutogradError: grpc.StatusCode.FAILED_PRECONDITION,
    DeviceUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    MemoryError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    SessionMovedError: grpc.StatusCode.UNAVAILABLE,
}

log = logging.getLogger("gradserve.server")


def status_code(exc: BaseException) -> grpc.StatusCode:
    """The status code for `exc` (an OpFailure's is its cause's); INTERNAL when unlisted."""
    cause = exc.cause if isinstance(exc, OpFailure) else exc
    for cls in type(cause).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def error_value(exc: BaseException, instance: str = "") -> pb.Error:
    """`exc` as a gradserve.v1.Error message: the message names what went wrong, the op's
    position, name and site (when an op failed) travel in fields of their own; `instance`
    is the answering server process, and a session that is not here says why (`reason`)."""
    code = status_code(exc)
    cause = exc.cause if isinstance(exc, OpFailure) else exc
    if code is grpc.StatusCode.INTERNAL:
        log.error("internal error", exc_info=exc)
        message = f"internal server error ({type(cause).__name__}); see the server log"
    else:
        message = str(cause)
    err = pb.Error(code=code.value[0], message=message, kind=type(cause).__name__, op_index=-1,
                   instance_id=instance, reason=getattr(cause, "reason", ""))
    if isinstance(exc, OpFailure):
        err.op_index, err.op, err.site = exc.index, exc.op, exc.site
    return err


def abort_parts(exc: BaseException, err: pb.Error) -> tuple[grpc.StatusCode, str, tuple]:
    """(status code, status text, trailing metadata) that end a call with `exc`."""
    details = err.message
    if isinstance(exc, OpFailure):
        details = f"{OpFailure.where(exc.index, exc.op, exc.site)}: {details}"
    return status_code(exc), details, ((ERROR_TRAILER, err.SerializeToString()),)


def end_call(context, exc: BaseException, err: pb.Error) -> None:
    """End a grpc.aio call with `exc`'s status, text and error detail once the handler
    returns (context.abort would raise an AbortError, whose traceback holds the handler's
    frames in a reference cycle). The status text, which grpcurl shows, also says which op
    failed."""
    code, details, trailers = abort_parts(exc, err)
    context.set_trailing_metadata(trailers)
    context.set_code(code)
    context.set_details(details)
