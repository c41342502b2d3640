"""Server interceptors: request logging, error mapping, API-key auth and request reading.

Each interceptor wraps the RPC's behaviour, whatever its streaming kind, in
an async context manager (`around`). They are installed outermost first:
logging (sees the final status), errors (turns every exception into a clean
status), auth (raises domain errors that the error interceptor maps), request
(reads and parses the request messages, so after authentication).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server import errors
from server.services.auth import ApiKeyService
from server.transport import policy
from server.transport.context import Context, call_metadata, principal_var, request_id_var
from server.transport.text import reject_nul

log = logging.getLogger("ccl.rpc")

ERROR_DOMAIN = "ccl"


@dataclass
class RequestNotReceivedError(errors.CclError):
    """A unary call's request message (and the end of its request stream) did not arrive in
    time. A transport error, so it lives here rather than among the domain errors."""

    reason: str = "REQUEST_NOT_RECEIVED"


@dataclass
class RequestCardinalityError(errors.CclError):
    """A unary call sent no request message or more than one (gRPC's cardinality violation)."""

    reason: str = "REQUEST_CARDINALITY_VIOLATION"


_STATUS: dict[type[errors.CclError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UpstreamError: grpc.StatusCode.UNAVAILABLE,
    errors.UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
    RequestNotReceivedError: grpc.StatusCode.DEADLINE_EXCEEDED,
    # UNIMPLEMENTED is what gRPC's status code table prescribes for a cardinality violation.
    RequestCardinalityError: grpc.StatusCode.UNIMPLEMENTED,
}

Around = Callable[[str, Context], AbstractAsyncContextManager[None]]


async def _unchanged(request: Any) -> Any:
    return request


def _decoder(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """Parses request bytes; a failure is a domain error (gRPC would answer UNKNOWN with the
    parser's message), and so is a NUL character in any text field."""
    if deserialize is None:
        return lambda data: data

    def decode(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception as e:  # DecodeError and whatever a parser may raise
            raise errors.InvalidArgumentError(
                "the request is not a valid message of this method",
                reason="MALFORMED_REQUEST",
            ) from e
        reject_nul(message)
        return message

    return decode


async def _decode_each(
    requests: AsyncIterator[bytes], decode: Callable[[bytes], Any]
) -> AsyncIterator[Any]:
    """The messages of a request stream, parsed as the servicer reads them. (Not an
    `async for` expression, which would open grpc.aio's reader at once: a reader that the
    servicer then never uses warns "never awaited" when collected.)"""
    async for data in requests:
        yield decode(data)


async def _single_message(requests: AsyncIterator[bytes]) -> bytes:
    """The one request message of a unary-request call, read from its request stream up to
    the stream's end: exactly one message, as a unary call has."""
    message = await anext(requests, None)
    if message is None or await anext(requests, None) is not None:
        raise RequestCardinalityError("a unary call takes exactly one request message")
    return message


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    around: Around,
    *,
    request_timeout: float | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """Returns `handler` with its behaviour run inside `around(method, context)`.

    With `request_timeout`, the request messages are read and parsed inside `around` rather
    than by gRPC, so that what goes wrong with them raises a domain error that `around` maps
    like any other: a corrupt message (see `_decoder`), and for a unary-request method a
    message that never comes. Such a method is served as a stream-request one (the wire
    format is the same), which grpc.aio starts at the call's headers, and its one message is
    awaited for at most `request_timeout` seconds: grpc.aio itself would hold the call open,
    unanswered, for as long as the client keeps it."""
    h: Any = handler
    unary_input: Callable[[Any], Awaitable[Any]] = _unchanged
    stream_input: Callable[[Any], Awaitable[Any]] = _unchanged
    deserializer = h.request_deserializer
    if request_timeout is not None:
        timeout = request_timeout
        decode = _decoder(deserializer)
        deserializer = None  # gRPC hands over the raw bytes

        async def read_single(requests: AsyncIterator[bytes]) -> Any:
            try:
                async with asyncio.timeout(timeout):
                    data = await _single_message(requests)
            except TimeoutError:
                raise RequestNotReceivedError(
                    f"the request message did not arrive within {timeout:g} s",
                    metadata={"timeout_seconds": f"{timeout:g}"},
                ) from None
            return decode(data)

        async def decode_stream(requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
            return _decode_each(requests, decode)

        unary_input, stream_input = read_single, decode_stream

    def unary_response(
        behavior: Callable[[Any, Context], Awaitable[Any]],
        convert: Callable[[Any], Awaitable[Any]],
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def wrapper(request: Any, context: Context) -> Any:
            async with around(method, context):
                return await behavior(await convert(request), context)

        return wrapper

    def stream_response(
        behavior: Callable[[Any, Context], Any], convert: Callable[[Any], Awaitable[Any]]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
            async with around(method, context):
                responses = behavior(await convert(request), context)
                if inspect.isawaitable(responses):
                    # A servicer that writes with context.write() (grpcio's health Watch)
                    # is a coroutine, not a generator.
                    await responses
                    return
                async for response in responses:
                    yield response

        return wrapper

    serializer = h.response_serializer
    streamed = request_timeout is not None  # unary-request methods read as request streams
    if h.unary_unary:
        unary_unary = (
            grpc.stream_unary_rpc_method_handler
            if streamed
            else grpc.unary_unary_rpc_method_handler
        )
        return unary_unary(unary_response(h.unary_unary, unary_input), deserializer, serializer)
    if h.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            unary_response(h.stream_unary, stream_input), deserializer, serializer
        )
    if h.unary_stream:
        unary_stream = (
            grpc.stream_stream_rpc_method_handler
            if streamed
            else grpc.unary_stream_rpc_method_handler
        )
        return unary_stream(stream_response(h.unary_stream, unary_input), deserializer, serializer)
    return grpc.stream_stream_rpc_method_handler(
        stream_response(h.stream_stream, stream_input), deserializer, serializer
    )


class _AroundInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    request_timeout: float | None = None  # set on the one that reads the requests (`_wrap`)

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    def around(self, method: str, context: Context) -> Any:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        # The wrapped handler of a method is built once, not per call (issue 9: four
        # interceptors rebuilt theirs on every RPC). The cache holds the handler it wrapped,
        # so a different handler for the same method is wrapped anew.
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = (
                handler,
                _wrap(handler, method, self.around, request_timeout=self.request_timeout),
            )
            self._wrapped[method] = cached
        return cached[1]


class LoggingInterceptor(_AroundInterceptor):
    """One structured line per RPC: request id, method, code, duration. Never request data."""

    @asynccontextmanager
    async def around(self, method: str, context: Context) -> AsyncIterator[None]:
        request_id = call_metadata(context).get("x-request-id", "")[:128] or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            yield
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            principal = principal_var.get()
            code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            log.info(
                "rpc",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "code": code_name,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "role": principal.role.value if principal else "",
                    "key_id": principal.key_id if principal else "",
                },
            )
            request_id_var.reset(token)


def status_for(error: errors.CclError) -> grpc.Status:
    """The gRPC status of a domain error: code, message, ErrorInfo and, for bad input,
    a BadRequest with one field violation per bad field."""
    code = next(
        (mapped for cls, mapped in _STATUS.items() if isinstance(error, cls)),
        grpc.StatusCode.UNKNOWN,
    )
    metadata = dict(error.metadata)
    if request_id_var.get():
        metadata.setdefault("request_id", request_id_var.get())
    details = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
    ]
    if isinstance(error, errors.InvalidArgumentError) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    return _status(code, error.message, details)


def _status(code: grpc.StatusCode, message: str, details: list[Any]) -> grpc.Status:
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    return rpc_status.to_status(status)


class ErrorInterceptor(_AroundInterceptor):
    """Maps domain errors to statuses; anything unexpected becomes a generic INTERNAL with an
    incident id that is logged with the stack (but not the exception text, which may hold
    personal data)."""

    @asynccontextmanager
    async def around(self, method: str, context: Context) -> AsyncIterator[None]:
        try:
            yield
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except errors.CclError as e:
            s = status_for(e)
            await context.abort(s.code, s.details, s.trailing_metadata)
        except Exception as e:
            incident = uuid.uuid4().hex[:16]
            log.error(
                "unhandled exception",
                extra={
                    "incident_id": incident,
                    "request_id": request_id_var.get(),
                    "method": method,
                    "exception_type": type(e).__qualname__,
                    # Frames only: no exception text or source lines, which may hold data.
                    "stack": [
                        f"{f.filename}:{f.lineno} in {f.name}"
                        for f in traceback.extract_tb(e.__traceback__)
                    ],
                },
            )
            s = _status(
                grpc.StatusCode.INTERNAL,
                f"internal error (incident {incident})",
                [
                    error_details_pb2.ErrorInfo(
                        reason="INTERNAL",
                        domain=ERROR_DOMAIN,
                        metadata={"incident_id": incident, "request_id": request_id_var.get()},
                    )
                ],
            )
            await context.abort(s.code, s.details, s.trailing_metadata)


def api_key_from(metadata: dict[str, str]) -> str:
    auth = metadata.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return metadata.get("x-api-key", "").strip()


class AuthInterceptor(_AroundInterceptor):
    """Authenticates the API key and checks the caller's role against the method's policy."""

    def __init__(self, api_keys: ApiKeyService) -> None:
        super().__init__()
        self._api_keys = api_keys

    @asynccontextmanager
    async def around(self, method: str, context: Context) -> AsyncIterator[None]:
        if policy.is_open(method):
            yield
            return
        principal = await self._api_keys.authenticate(api_key_from(call_metadata(context)))
        # Not reset afterwards: grpc.aio runs each RPC in its own task (so its own context),
        # and the logging interceptor outside this one reads the caller when the RPC ends.
        principal_var.set(principal)
        if principal.role not in policy.ROLES.get(method, frozenset()):
            raise errors.PermissionDeniedError(
                f"role '{principal.role.value}' may not call this method",
                reason="ROLE_NOT_ALLOWED",
            )
        yield


class RequestInterceptor(_AroundInterceptor):
    """Reads and parses the request messages (see `_wrap`), innermost: after authentication,
    so a caller without a key learns only that it has none, and inside the error interceptor.
    A corrupt message is INVALID_ARGUMENT (MALFORMED_REQUEST) rather than gRPC's own UNKNOWN.
    A unary call must send its one message (and end its request stream) within
    `request_timeout` seconds, else DEADLINE_EXCEEDED (REQUEST_NOT_RECEIVED), and no other
    message: UNIMPLEMENTED (REQUEST_CARDINALITY_VIOLATION). Streaming requests may idle."""

    def __init__(self, request_timeout: float) -> None:
        super().__init__()
        self.request_timeout = request_timeout

    def around(self, method: str, context: Context) -> AbstractAsyncContextManager[None]:
        return nullcontext()
