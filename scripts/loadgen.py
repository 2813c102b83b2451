"""A small keep-alive HTTP/1.1 load generator that sends a *different* request each time.

Why: ``hey`` repeats one body, which suits a stateless server but not upsproxy,
whose codes are single use: under hey every request after the first is a
"code reused" 400. To time the path that mints tokens (200 answers), each
request must carry its own fresh code. This loader takes a list of ready-made
request bodies and hands each out exactly once, over ``concurrency`` keep-alive
connections, either straight to a plain-HTTP listener or through a proxy
(CONNECT, then TLS to the UPS host name, certificates not verified, like hey).

Bounded: it stops when the bodies run out or ``duration`` seconds have passed,
whichever comes first. Loopback only, as every load here.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    size: int
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    exhausted: bool = False
    """True when the bodies ran out before ``duration``: the cell was shorter."""


def _request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """(status, body length) of one Content-Length-framed response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status, length


async def _open(host: str, port: int, tunnel_to: str | None,
                context: ssl.SSLContext | None) -> tuple[asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    if tunnel_to is None:
        return reader, writer
    writer.write(f"CONNECT {tunnel_to}:443 HTTP/1.1\r\nHost: {tunnel_to}:443\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    if b" 200" not in answer.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"CONNECT refused: {answer[:60]!r}")
    await writer.start_tls(context, server_hostname=tunnel_to)  # type: ignore[arg-type]
    return reader, writer


async def _load(host: str, port: int, path: str, bodies: Sequence[bytes],
                headers: dict[str, str], *, concurrency: int, duration: float,
                tunnel_to: str | None) -> LoadResult:
    context = None
    if tunnel_to is not None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    requests = iter([_request(tunnel_to or host, path, b, headers) for b in bodies])
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    size = 0
    exhausted = False
    start = time.perf_counter()
    deadline = start + duration

    async def worker() -> None:
        nonlocal size, exhausted
        try:
            reader, writer = await _open(host, port, tunnel_to, context)
        except (OSError, ConnectionError, ssl.SSLError) as exc:
            errors[f"connect: {type(exc).__name__}: {exc}"[:160]] += 1
            return
        try:
            while time.perf_counter() < deadline:
                raw = next(requests, None)
                if raw is None:
                    exhausted = True
                    return
                sent = time.perf_counter()
                writer.write(raw)
                try:
                    status, size = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors[f"{type(exc).__name__}"] += 1
                    return
                latencies.append(time.perf_counter() - sent)
                statuses[str(status)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    done = len(latencies)
    ordered = sorted(latencies)
    return LoadResult(
        rps=done / elapsed if elapsed > 0 else float("nan"),
        p50_ms=statistics.median(ordered) * 1000 if ordered else float("nan"),
        p99_ms=ordered[min(done - 1, int(done * 0.99))] * 1000 if ordered else float("nan"),
        size=size, statuses=dict(statuses), errors=dict(errors), sent=done,
        exhausted=exhausted)


def run_load(host: str, port: int, path: str, bodies: Sequence[bytes],
             headers: dict[str, str], *, concurrency: int = 10, duration: float = 3.0,
             tunnel_to: str | None = None) -> LoadResult:
    """Send each body once (POST ``path``), ``concurrency`` connections at a time,
    for at most ``duration`` seconds; through a proxy at host:port when
    ``tunnel_to`` names the host to CONNECT to."""
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError(f"loopback only, not {host!r}")
    return asyncio.run(_load(host, port, path, bodies, headers, concurrency=concurrency,
                             duration=duration, tunnel_to=tunnel_to))
