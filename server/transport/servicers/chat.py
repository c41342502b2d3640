"""ChatService servicer: the RealtimeChat agent is not built yet, so both RPCs answer
UNIMPLEMENTED (reason NOT_IMPLEMENTED)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

from ccl.chat.v1 import chat_service_pb2 as pb
from ccl.chat.v1 import chat_service_pb2_grpc
from server.errors import UnimplementedError

_MESSAGE = "customer chat (RealtimeChat) is not built yet"


class ChatServicer(chat_service_pb2_grpc.ChatServiceServicer):
    async def Converse(
        self, request_iterator: AsyncIterator[pb.ConverseRequest], context: Any
    ) -> AsyncIterator[pb.ConverseResponse]:
        raise UnimplementedError(_MESSAGE)
        yield  # an async generator, as a bidi handler must be

    async def GetTranscript(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)
