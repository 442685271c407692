"""Measurements: raw-socket answer checks, wrk runs, upstream counters, exact call counts.

All traffic goes to 127.0.0.1. A wrk run is valid only if wrk saw no socket error, every
response was 2xx with the verified body length and no ``"errors"`` in it (checked per response
in wrk's Lua), ``bytes / requests`` matches the verified size on the wire, and the measured
process is still alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import procs

LUA = Path(__file__).resolve().parent / "wrk_report.lua"
WRK = "/usr/bin/wrk"
MAX_RESPONSE = 8 * 1024 * 1024
Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Probe:
    """One fixed request, as wrk sends it."""

    port: int
    method: str
    path: str
    body: bytes | None
    check: Check
    # Sent with every request (wrk too), e.g. the demo's inbound-auth token.
    authorization: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def headers(self) -> dict[str, str]:
        out = {"content-type": "application/json"} if self.body is not None else {}
        if self.authorization is not None:
            out["authorization"] = self.authorization
        return out

    def wire(self) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if self.body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        if self.authorization is not None:
            head += f"Authorization: {self.authorization}\r\n"
        return (head + "\r\n").encode() + (self.body or b"")


def _read_response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """(status, the whole response as received, the decoded body) of one HTTP/1.1 response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk or len(buf) > MAX_RESPONSE:
            raise ConnectionError("connection closed before the response headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}

    def need(n: int) -> None:
        nonlocal rest
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk or len(rest) > MAX_RESPONSE:
                raise ConnectionError("connection closed inside the response body")
            rest += chunk

    if "content-length" in headers:
        length = int(headers["content-length"])
        need(length)
        return status, head + b"\r\n\r\n" + rest[:length], rest[:length]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        for _ in range(100_000):
            while b"\r\n" not in rest[pos:]:
                need(len(rest) + 1)
            line_end = rest.index(b"\r\n", pos)
            size = int(rest[pos:line_end].split(b";")[0], 16)
            need(line_end + 2 + size + 2)
            body += rest[line_end + 2 : line_end + 2 + size]
            pos = line_end + 2 + size + 2
            if size == 0:
                return status, head + b"\r\n\r\n" + rest[:pos], body
        raise ConnectionError("too many chunks")
    raise ConnectionError("response without Content-Length or chunked encoding")


def fetch(probe: Probe, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", probe.port), timeout=timeout) as sock:
        sock.sendall(probe.wire())
        return _read_response(sock)


@dataclass
class Verdict:
    ok: bool
    reason: str
    response_bytes: int  # status line + headers + body, what wrk counts per response
    body_bytes: int


def verify(probe: Probe) -> Verdict:
    """Check the answer field by field, twice; the wire size must be the same both times."""
    sizes: list[int] = []
    body_len = 0
    for _ in range(2):
        try:
            status, raw, body = fetch(probe)
        except (OSError, ValueError) as exc:
            return Verdict(False, f"request failed: {exc}", 0, 0)
        if not 200 <= status < 300:
            return Verdict(False, f"HTTP {status}: {body[:300]!r}", len(raw), len(body))
        try:
            answer = json.loads(body)
        except ValueError:
            return Verdict(False, f"not JSON: {body[:300]!r}", len(raw), len(body))
        problem = probe.check(answer)
        if problem:
            return Verdict(False, problem, len(raw), len(body))
        sizes.append(len(raw))
        body_len = len(body)
    if sizes[0] != sizes[1]:
        return Verdict(False, f"response size varies between requests: {sizes}", sizes[1], body_len)
    return Verdict(True, "", sizes[0], body_len)


def run_wrk(
    probe: Probe, conc: int, duration: float, body_bytes: int | None = None
) -> dict[str, Any]:
    """One closed-loop wrk run (``-t1``, keep-alive); wrk's own summary as a dict.

    With ``body_bytes``, every response is checked in wrk's Lua: ``bad_status`` (not 2xx),
    ``bad_size`` (another body length), ``bad_errors`` (the body contains ``"errors"``).
    """
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["WRK_METHOD"] = probe.method
    if probe.authorization is not None:
        env["WRK_AUTHORIZATION"] = probe.authorization
    if body_bytes is not None:
        env["WRK_EXPECT_BYTES"] = str(body_bytes)
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as body_file:
        if probe.body is not None:
            body_file.write(probe.body)
            body_file.flush()
            env["WRK_BODY_FILE"] = body_file.name
        argv = [WRK, "-t1", f"-c{conc}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(LUA)]
        out = subprocess.run(  # noqa: S603
            [*argv, probe.url], env=env, capture_output=True, text=True, timeout=duration + 60
        )
    lines = [line for line in out.stdout.splitlines() if line.startswith("JSON:")]
    if out.returncode != 0 or not lines:
        raise procs.HarnessError(f"wrk failed ({out.returncode}): {out.stderr.strip()[:300]}")
    res: dict[str, Any] = json.loads(lines[0][5:])
    return res


class Counters(Protocol):
    """The upstreams' own request counters."""

    def reset(self) -> None: ...

    def read(self) -> dict[str, dict[str, Any]]:
        """{upstream: {"total": n, ...details}}"""
        ...


class StatsCounters:
    """Upstreams that answer ``GET /__stats`` (with a ``total``) and ``POST /__reset``."""

    def __init__(self, urls: Mapping[str, str], after_reset: Callable[[], None] | None = None):
        self.urls = dict(urls)
        self.after_reset = after_reset

    def reset(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            for url in self.urls.values():
                client.post(url + "/__reset").raise_for_status()
        if self.after_reset:
            self.after_reset()

    def read(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with httpx.Client(timeout=10, trust_env=False) as client:
            for name, url in self.urls.items():
                stats = client.get(url + "/__stats").json()
                stats.pop("recent", None)
                out[name] = stats
        return out


def settle(counters: Counters, max_wait: float = 10.0) -> dict[str, dict[str, Any]]:
    """The counters once they stop moving (two equal reads 0.25 s apart), at most ``max_wait``."""
    time.sleep(0.25)
    prev = counters.read()
    for _ in range(int(max_wait / 0.25)):
        time.sleep(0.25)
        cur = counters.read()
        if all(cur[k]["total"] == prev[k]["total"] for k in cur):
            return cur
        prev = cur
    return prev


def measure_run(
    probe: Probe,
    pid: int,
    conc: int,
    duration: float,
    counters: Counters,
    expected: Verdict,
) -> dict[str, Any]:
    """One wrk run with CPU, memory and upstream calls of the process tree under ``pid``."""
    tree = procs.process_tree(pid)
    hwm_reset = procs.reset_peak_rss(tree)
    counters.reset()
    busy0, total0 = procs.machine_busy()
    cpu0 = procs.cpu_seconds(tree)
    t0 = time.monotonic()
    wrk = run_wrk(probe, conc, duration, expected.body_bytes)
    expected_bytes = expected.response_bytes
    wall = time.monotonic() - t0
    tree_after = procs.process_tree(pid)
    cpu1 = procs.cpu_seconds(tree_after)
    busy1, total1 = procs.machine_busy()
    peak, rss = procs.memory_mb(tree_after)
    stats = settle(counters)  # the upstream calls of the requests still in flight land
    n = wrk["requests"]
    errors = {k[4:]: wrk[k] for k in wrk if k.startswith("err_")}
    bad = {k: wrk[k] for k in ("bad_status", "bad_size", "bad_errors") if wrk[k]}
    rec: dict[str, Any] = {
        "conc": conc,
        "requests": n,
        "rps": round(n / (wrk["duration_us"] / 1e6), 1),
        "p50_ms": wrk["p50_us"] / 1000,
        "p90_ms": wrk["p90_us"] / 1000,
        "p99_ms": wrk["p99_us"] / 1000,
        "max_ms": wrk["max_us"] / 1000,
        "errors": sum(errors.values()),
        "error_kinds": {k: v for k, v in errors.items() if v},
        "bad_responses": bad,
        "bytes_per_request": round(wrk["bytes"] / n, 1) if n else None,
        "cpu_ms_per_query": round(1000 * (cpu1 - cpu0) / n, 3) if n else None,
        "cpu_cores": round((cpu1 - cpu0) / wall, 3),
        "processes": len(tree_after),
        "peak_rss_mb": round(peak, 1),
        "rss_mb": round(rss, 1),
        "peak_rss_is_per_run": hwm_reset,
        "calls_per_query": {k: round(v["total"] / n, 4) if n else None for k, v in stats.items()},
        "calls_detail": stats,
        "load1": procs.loadavg(),
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(total1 - total0, 1e-9), 1),
    }
    problems = []
    if rec["errors"]:
        problems.append(f"wrk errors {rec['error_kinds']}")
    if bad:
        problems.append(f"wrong responses {bad}")
    if n == 0:
        problems.append("no request completed")
    # wrk counts the bytes of the (at most conc) responses still in flight at the end, but not
    # those requests: 0 <= bytes - n * size < conc * size for a run of correct answers.
    extra = wrk["bytes"] - n * expected_bytes
    if n and not 0 <= extra < conc * expected_bytes:
        problems.append(
            f"bytes/request {wrk['bytes'] / n:.1f} != verified response size {expected_bytes}"
        )
    if not procs.alive(pid):
        problems.append("the process died")
    rec["problems"] = problems
    rec["valid"] = not problems
    return rec


async def _scenario(probe: Probe, counters: Counters, n_bursts: int, burst: int) -> dict[str, Any]:
    await asyncio.to_thread(counters.reset)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    bad: list[str] = []
    async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:
        for _ in range(n_bursts):
            responses = await asyncio.gather(
                *[
                    client.request(
                        probe.method,
                        probe.url,
                        content=probe.body,
                        headers=probe.headers(),
                    )
                    for _ in range(burst)
                ]
            )
            for r in responses:
                problem = f"HTTP {r.status_code}" if not 200 <= r.status_code < 300 else None
                problem = problem or probe.check(r.json())
                if problem:
                    bad.append(problem)
    await asyncio.sleep(0.2)
    stats = await asyncio.to_thread(counters.read)
    n = n_bursts * burst
    return {
        "queries": n,
        "calls": {k: v["total"] for k, v in stats.items()},
        "calls_per_query": {k: round(v["total"] / n, 3) for k, v in stats.items()},
        "detail": stats,
        "bad_answers": len(bad),
        "first_bad": bad[0] if bad else None,
    }


SCENARIOS: Sequence[tuple[str, int, int]] = (
    ("1 query", 1, 1),
    ("100 sequential", 100, 1),
    ("10 bursts x 32 concurrent", 10, 32),
)


def count_calls(probe: Probe, counters: Counters) -> dict[str, dict[str, Any]]:
    """Exact upstream calls per query (no in-flight tail): 1; 100 sequential; 10 x 32."""
    return {
        name: asyncio.run(_scenario(probe, counters, n_bursts, burst))
        for name, n_bursts, burst in SCENARIOS
    }
