"""Helpers to read rich gRPC errors (ErrorInfo, BadRequest) in assertions."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class RichError:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    violations: dict[str, str]


def rich_error(e: grpc.RpcError) -> RichError:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    reason, domain, metadata, violations = "", "", {}, {}
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = {v.field: v.description for v in bad.field_violations}
    return RichError(e.code(), e.details() or "", reason, domain, metadata, violations)


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]
