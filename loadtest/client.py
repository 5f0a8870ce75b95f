"""HTTP clients for the benchmark driver: a lean keep-alive HTTP/1.1 client, and httpx.

The load generator shares the machine's cores with the server, so every CPU cycle it
spends is one the server does not get. `RawClient` speaks just enough HTTP/1.1 for
`POST` with a JSON body over one persistent loopback connection per session
(Content-Length and chunked responses); `HttpxClient` is the ordinary library, kept to
cross-check the raw client's figures (`--client httpx`). Neither retries: a failed
request is reported with status 0 and the connection is reopened for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["Client", "HttpxClient", "RawClient", "make_client"]


class Client(Protocol):
    """One session's connection to the feed."""

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawClient:
    """A single persistent HTTP/1.1 connection; one request at a time."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._host_header = f"{self._host}:{self._port}".encode()
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._exchange(path, body), self._timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            await self.close()
            return 0, b""

    async def _exchange(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\nHost: "
            + self._host_header
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            payload = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                payload += await reader.readexactly(size)
                await reader.readexactly(2)
            data = bytes(payload)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            close = True
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxClient:
    """httpx's AsyncClient, one per session (so one keep-alive connection each)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=1)
        )

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            response = await self._client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
        except self._httpx.HTTPError:
            return 0, b""
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()


def make_client(kind: str, base_url: str, timeout: float = 10.0) -> Client:
    """`raw` (default, cheapest) or `httpx`."""
    if kind == "raw":
        return RawClient(base_url, timeout)
    if kind == "httpx":
        return HttpxClient(base_url, timeout)
    raise ValueError(f"unknown client {kind!r}: use raw or httpx")
