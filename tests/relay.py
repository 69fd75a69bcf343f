"""A TCP relay on a free loopback port in front of PostgreSQL, for tests that watch or
disturb the wire; a subclass says what each accepted connection does (`_client`)."""

import asyncio
from collections.abc import Coroutine
from typing import Any, Self


class Relay:
    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.add(asyncio.create_task(coro))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
