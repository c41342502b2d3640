"""The baseline server of `make bench`: a trivial echo served the way the product serves.

Same server type (grpc.aio), the same server options as `server/transport/server.py`'s
`create_server` (`server.transport.server.server_options`), one process like `ccl serve`, and the
same health service (Envoy's active health check needs it). The RPCs are generic handlers
with bytes in and bytes out, so no generated code is needed:

- `/bench.echo.v1.EchoService/Echo` (unary) returns the request bytes unchanged (a valid
  `EchoMessage`, so Envoy's transcoder can turn it back into JSON);
- `/bench.echo.v1.EchoService/EchoStream` (client streaming) counts the messages and returns
  an `EchoCount`.

Usage: python bench/echo_server.py [--uvloop] [--reuseport] PORT

`--uvloop` serves on uvloop's event loop (the uvloop baseline of `ccl serve` with
CCL_EVENT_LOOP=uvloop); `--reuseport` sets `grpc.so_reuseport` to 1 so several echo processes
can share one port (a bench-only trial: the product keeps 0, so a taken port is an error).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from server.transport.server import server_options

SERVICE = "bench.echo.v1.EchoService"
MAX_BYTES = 4 * 1024 * 1024
SERVER_OPTIONS = server_options(MAX_BYTES)  # the product's own


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
    return request


async def echo_stream(
    requests: AsyncIterator[bytes],
    context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
) -> bytes:
    count = 0
    async for _ in requests:
        count += 1
    return b"\x08" + varint(count) if count else b""


def identity(b: bytes) -> bytes:
    return b


async def serve(port: int, reuseport: bool = False) -> None:
    options = SERVER_OPTIONS
    if reuseport:
        options = [(k, v) for k, v in options if k != "grpc.so_reuseport"]
        options.append(("grpc.so_reuseport", 1))
    server = grpc.aio.server(options=options)
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=identity, response_serializer=identity
        ),
        "EchoStream": grpc.stream_unary_rpc_method_handler(
            echo_stream, request_deserializer=identity, response_serializer=identity
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", SERVICE):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description="the echo baseline server of `make bench`")
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop's event loop")
    parser.add_argument(
        "--reuseport", action="store_true", help="grpc.so_reuseport=1 (processes share the port)"
    )
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.port, args.reuseport))
    else:
        asyncio.run(serve(args.port, args.reuseport))


if __name__ == "__main__":
    main()
