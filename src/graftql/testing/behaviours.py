"""What the chaos upstream does with a request: answer, misbehave, or wait first.

Two kinds of objects:

* a :class:`Behaviour` answers the request, or deliberately fails to: :class:`Respond`,
  :class:`RetryAfter`, :class:`Reset`, :class:`Hang`, :class:`Disconnect`, :class:`Malformed`,
  :class:`Truncated`, :class:`InvalidJson`, :class:`WrongContentType`, :class:`Trickle`,
  :class:`Call`;
* a :class:`Modifier` runs before a behaviour: :class:`Latency` waits, :class:`Sometimes` and
  :class:`FailRate` replace the answer for a seeded share of requests.

``modifier + behaviour`` is a behaviour and ``modifier + modifier`` a modifier, so
``Latency.uniform(0.02, 0.05) + FailRate(0.1, 503) + Respond(200, json={"ok": True})`` waits,
then fails one request in ten, and otherwise answers 200. A chain has to end in a behaviour, so
a script that never answers is a type error rather than a hung test.

All randomness comes from the ``random.Random`` the server hands to each request (one per route,
derived from the server's seed), so a run is reproducible.
"""

from __future__ import annotations

import inspect
import json as jsonlib
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate
from typing import Final, TypeAlias, overload

from graftql.testing._http import (
    Exchange,
    ReceivedRequest,
    encode_head,
    has_body,
    reason_phrase,
)

__all__ = [
    "Behaviour",
    "Call",
    "Disconnect",
    "FailRate",
    "Hang",
    "InvalidJson",
    "Latency",
    "Malformed",
    "Modifier",
    "Reset",
    "Respond",
    "RetryAfter",
    "Sometimes",
    "Trickle",
    "Truncated",
    "WrongContentType",
]

Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
CallResult: TypeAlias = "Behaviour | Awaitable[Behaviour]"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()
_JSON: Final = "application/json"
# Reset(after_headers=True) promises a body of this size, so the client is mid-response.
_RESET_PROMISED_BYTES: Final = 1024


# -- validation: the scripting API says clearly what is wrong --------------------------------


def _check_status(status: object, name: str = "status") -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"{name} must be an integer between 100 and 599, got {status!r}")
    return status


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_seconds(name: str, value: object) -> float:
    seconds = _check_number(name, value)
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return seconds


def _check_positive(name: str, value: object) -> float:
    number = _check_number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _check_probability(name: str, value: object) -> float:
    probability = _check_number(name, value)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
    return probability


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_cap(cap: float | None) -> float | None:
    return None if cap is None else _check_seconds("cap", cap)


# -- the two kinds -----------------------------------------------------------------------------


class Behaviour(ABC):
    """Answers a request (or deliberately fails to). Build one from the classes below."""

    @abstractmethod
    async def _perform(self, exchange: Exchange) -> bool:
        """Act on the connection; True if it may carry another request afterwards."""


class Modifier(ABC):
    """Runs before a behaviour; combine with ``+`` (see the module docstring)."""

    @abstractmethod
    async def _apply(self, exchange: Exchange) -> Behaviour | None:
        """Do its part; return a behaviour to answer with instead, or None to go on."""

    def _parts(self) -> tuple[Modifier, ...]:
        return (self,)

    @overload
    def __add__(self, other: Behaviour) -> Behaviour: ...
    @overload
    def __add__(self, other: Modifier) -> Modifier: ...
    def __add__(self, other: Behaviour | Modifier) -> Behaviour | Modifier:
        if isinstance(other, Modifier):
            return _Modifiers((*self._parts(), *other._parts()))
        if isinstance(other, _Chain):
            return _Chain((*self._parts(), *other.modifiers), other.final)
        if isinstance(other, Behaviour):
            return _Chain(self._parts(), other)
        return NotImplemented


class _Modifiers(Modifier):
    def __init__(self, parts: tuple[Modifier, ...]) -> None:
        self.parts = parts

    def _parts(self) -> tuple[Modifier, ...]:
        return self.parts

    async def _apply(self, exchange: Exchange) -> Behaviour | None:
        for part in self.parts:
            instead = await part._apply(exchange)
            if instead is not None:
                return instead
        return None

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.parts))


class _Chain(Behaviour):
    def __init__(self, modifiers: tuple[Modifier, ...], final: Behaviour) -> None:
        self.modifiers = modifiers
        self.final = final

    async def _perform(self, exchange: Exchange) -> bool:
        for modifier in self.modifiers:
            instead = await modifier._apply(exchange)
            if instead is not None:
                return await instead._perform(exchange)
        return await self.final._perform(exchange)

    def __repr__(self) -> str:
        return " + ".join([*map(repr, self.modifiers), repr(self.final)])


# -- answers -------------------------------------------------------------------------------------


class _Message:
    """Status, headers and body of an answer; Content-Length is added unless given."""

    def __init__(
        self,
        status: int,
        body: bytes | str,
        json: object,
        headers: Headers | None,
        content_type: str | None,
    ) -> None:
        self.status = _check_status(status)
        if json is not _UNSET:
            if body:
                raise ValueError("give either body or json, not both")
            self.body = jsonlib.dumps(json, separators=(",", ":")).encode()
            content_type = content_type or _JSON
        elif isinstance(body, str):
            self.body = body.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        elif isinstance(body, bytes | bytearray | memoryview):
            self.body = bytes(body)
        else:
            raise TypeError(f"body must be bytes or str, got {type(body).__name__}")
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for name, value in pairs:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        if content_type is not None and not _named("content-type", pairs):
            pairs.insert(0, ("content-type", content_type))
        self.headers = pairs

    def head(self, exchange: Exchange, *, length: int | None = None) -> bytes:
        """The status line and headers; ``length`` overrides the declared Content-Length."""
        pairs = list(self.headers)
        if has_body(self.status) and not _named("content-length", pairs):
            pairs.append(("content-length", str(len(self.body) if length is None else length)))
        if not exchange.keep_alive and not _named("connection", pairs):
            pairs.append(("connection", "close"))
        return encode_head(self.status, pairs)

    def keeps_alive(self, exchange: Exchange) -> bool:
        closing = any(n.lower() == "connection" and "close" in v.lower() for n, v in self.headers)
        return exchange.keep_alive and not closing

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 40 else self.body[:37] + b"..."
        return f"{self.status}, {body!r}"


def _named(name: str, pairs: list[tuple[str, str]]) -> bool:
    return any(n.lower() == name for n, _ in pairs)


class Respond(Behaviour):
    """Answer with a status, headers and a body: ``Respond(200, json={"id": 1})``.

    ``body`` may be bytes (no Content-Type unless given) or str (``text/plain``); ``json`` is
    serialized and sent as ``application/json``. Content-Length is computed unless ``headers``
    has one (which then may lie). A ``connection: close`` header closes after answering.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        *,
        json: object = _UNSET,
        headers: Headers | None = None,
        content_type: str | None = None,
    ) -> None:
        self._message = _Message(status, body, json, headers, content_type)

    @property
    def status(self) -> int:
        return self._message.status

    @property
    def body(self) -> bytes:
        return self._message.body

    async def _perform(self, exchange: Exchange) -> bool:
        message = self._message
        data = message.head(exchange)
        if has_body(message.status) and not exchange.head_only:
            data += message.body
        await exchange.send(data)
        return message.keeps_alive(exchange)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._message!r})"


class RetryAfter(Respond):
    """A 429 or 503 (any status is accepted) with ``Retry-After``.

    ``RetryAfter(429, 2)`` sends ``Retry-After: 2``; with ``http_date=True`` the same delay is
    sent as an HTTP-date computed when answering; ``at=datetime(...)`` sends that fixed date.
    """

    def __init__(
        self,
        status: int = 503,
        seconds: int = 1,
        *,
        http_date: bool = False,
        at: datetime | None = None,
        json: object = _UNSET,
        headers: Headers | None = None,
    ) -> None:
        _check_status(status)
        self.seconds = _check_count("seconds", seconds, 0)
        if at is not None and at.tzinfo is None:
            raise ValueError("at must be a timezone-aware datetime")
        self.http_date = http_date
        self.at = at
        if json is _UNSET:
            default: dict[str, object] = {"error": reason_phrase(status)}
            if at is None:
                default["retry_after"] = seconds
            json = default
        super().__init__(status, json=json, headers=headers)

    def retry_after(self) -> str:
        """The header value, as it would be sent now."""
        if self.at is not None:
            return format_datetime(self.at.astimezone(UTC), usegmt=True)
        if self.http_date:
            return formatdate(time.time() + self.seconds, usegmt=True)
        return str(self.seconds)

    async def _perform(self, exchange: Exchange) -> bool:
        headers = [("retry-after", self.retry_after()), *self._message.headers]
        message = self._message
        answer = Respond(message.status, message.body, headers=headers)
        return await answer._perform(exchange)

    def __repr__(self) -> str:
        return f"RetryAfter({self.status}, {self.retry_after()!r})"


class InvalidJson(Respond):
    """A body that is not JSON under a JSON Content-Type (a cut-off document by default)."""

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b'{"data": [1, 2',
        *,
        content_type: str = _JSON,
        headers: Headers | None = None,
    ) -> None:
        raw = body.encode() if isinstance(body, str) else body
        try:
            jsonlib.loads(raw)
        except ValueError:
            pass
        else:
            raise ValueError(f"InvalidJson body must not parse as JSON, got {raw!r}")
        super().__init__(status, raw, content_type=content_type, headers=headers)


class WrongContentType(Respond):
    """A body under a Content-Type that does not describe it: a proxy's HTML page by default.

    ``WrongContentType(json={"ok": True}, content_type="text/html")`` sends valid JSON labelled
    as HTML instead.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"<html><body><h1>Service Unavailable</h1></body></html>",
        *,
        json: object = _UNSET,
        content_type: str = "text/html; charset=utf-8",
        headers: Headers | None = None,
    ) -> None:
        if json is not _UNSET:
            body = b""
        super().__init__(status, body, json=json, content_type=content_type, headers=headers)


class Truncated(Behaviour):
    """Declare the whole body's Content-Length, send only its first ``sent`` bytes, close.

    ``sent`` defaults to half the body. The client sees the connection end mid-body.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        *,
        json: object = _UNSET,
        headers: Headers | None = None,
        content_type: str | None = None,
        sent: int | None = None,
    ) -> None:
        self._message = _Message(status, body, json, headers, content_type)
        size = len(self._message.body)
        if size == 0:
            raise ValueError("Truncated needs a non-empty body (or json) to cut short")
        self.sent = size // 2 if sent is None else _check_count("sent", sent, 0)
        if self.sent >= size:
            raise ValueError(f"sent must be smaller than the body's {size} bytes, got {sent!r}")

    async def _perform(self, exchange: Exchange) -> bool:
        message = self._message
        await exchange.send(message.head(exchange) + message.body[: self.sent])
        await exchange.close()
        return False

    def __repr__(self) -> str:
        return f"Truncated({self._message!r}, sent={self.sent})"


class Trickle(Behaviour):
    """Send the head at once, then the body ``chunk_size`` bytes every ``interval`` seconds.

    The Content-Length is right; the body is just slow: each chunk waits ``interval`` first,
    so the whole answer takes ``ceil(len(body) / chunk_size) * interval``.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        *,
        json: object = _UNSET,
        headers: Headers | None = None,
        content_type: str | None = None,
        chunk_size: int = 1,
        interval: float = 0.05,
    ) -> None:
        self._message = _Message(status, body, json, headers, content_type)
        self.chunk_size = _check_count("chunk_size", chunk_size, 1)
        self.interval = _check_seconds("interval", interval)

    async def _perform(self, exchange: Exchange) -> bool:
        message = self._message
        await exchange.send(message.head(exchange))
        if exchange.head_only or not has_body(message.status):
            return message.keeps_alive(exchange)
        body = message.body
        for start in range(0, len(body), self.chunk_size):
            await exchange.wait(self.interval)
            await exchange.send(body[start : start + self.chunk_size])
        return message.keeps_alive(exchange)

    def __repr__(self) -> str:
        return f"Trickle({self._message!r}, {self.chunk_size} B every {self.interval} s)"


class Reset(Behaviour):
    """Reset the connection (RST, the client sees ECONNRESET).

    ``Reset()`` resets right after reading the request; ``Reset(after_headers=True)`` first
    sends a status line and headers promising a body, so the client is mid-response.
    """

    def __init__(self, *, after_headers: bool = False, status: int = 200) -> None:
        self.after_headers = after_headers
        self.status = _check_status(status)

    async def _perform(self, exchange: Exchange) -> bool:
        if self.after_headers:
            headers = [("content-type", _JSON), ("content-length", str(_RESET_PROMISED_BYTES))]
            await exchange.send(encode_head(self.status, headers))
            await exchange.flush()
        exchange.reset()
        return False

    def __repr__(self) -> str:
        return f"Reset(after_headers={self.after_headers})"


class Hang(Behaviour):
    """Never answer: wait until the client goes away or the server stops."""

    async def _perform(self, exchange: Exchange) -> bool:
        await exchange.until_disconnect()
        return False

    def __repr__(self) -> str:
        return "Hang()"


class Disconnect(Behaviour):
    """Close the connection in an orderly way (FIN) without answering."""

    async def _perform(self, exchange: Exchange) -> bool:
        await exchange.close()
        return False

    def __repr__(self) -> str:
        return "Disconnect()"


class Malformed(Behaviour):
    """Send bytes that are not an HTTP response (a garbage status line by default), close."""

    def __init__(self, data: bytes = b"HTTP/1.1 OK-ish banana\r\n\r\n") -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"Malformed sends bytes, got {type(data).__name__}")
        if not data:
            raise ValueError("Malformed needs some bytes to send")
        self.data = data

    async def _perform(self, exchange: Exchange) -> bool:
        await exchange.send(self.data)
        await exchange.close()
        return False

    def __repr__(self) -> str:
        return f"Malformed({self.data!r})"


class Call(Behaviour):
    """Decide per request: ``fn(request)`` returns (or awaits to) the behaviour to perform.

    If ``fn`` raises, the client gets a 500 and the exception is kept in
    ``ChaosUpstream.errors``, so a test can check its own callable did not fail.
    """

    def __init__(self, fn: Callable[[ReceivedRequest], CallResult]) -> None:
        if not callable(fn):
            raise TypeError(f"Call needs a callable, got {fn!r}")
        self.fn = fn

    async def _perform(self, exchange: Exchange) -> bool:
        try:
            result = self.fn(exchange.request)
            behaviour = await result if inspect.isawaitable(result) else result
            if not isinstance(behaviour, Behaviour):
                raise TypeError(f"a Call must return a Behaviour, got {behaviour!r}")
        except Exception as exc:
            exchange.report(exc)
            error = {"error": "the chaos upstream's Call raised", "detail": repr(exc)}
            behaviour = Respond(500, json=error)
        return await behaviour._perform(exchange)

    def __repr__(self) -> str:
        return f"Call({getattr(self.fn, '__qualname__', self.fn)!r})"


# -- modifiers -----------------------------------------------------------------------------------


class Latency(Modifier):
    """Wait before answering: fixed, or drawn from the request's seeded ``random.Random``.

    ``Latency(0.05)`` always waits 50 ms. The class methods draw per request:
    ``uniform(low, high)``, ``exponential(mean)``, ``lognormal(median, sigma)``,
    ``normal(mean, stddev)`` (clipped at 0) and ``spike(probability, extra)`` ("5 % of requests
    +200 ms"). ``cap`` bounds the unbounded ones. Add latencies to sum them:
    ``Latency.uniform(0.01, 0.02) + Latency.spike(0.05, 0.2)``.
    """

    def __init__(self, seconds: float) -> None:
        fixed = _check_seconds("latency", seconds)
        self._draw: Callable[[random.Random], float] = lambda _rng: fixed
        self._text = f"Latency({fixed!r})"

    @classmethod
    def _drawn(cls, draw: Callable[[random.Random], float], text: str) -> Latency:
        latency = cls(0.0)
        latency._draw = draw
        latency._text = text
        return latency

    @classmethod
    def uniform(cls, low: float, high: float) -> Latency:
        lo, hi = _check_seconds("low", low), _check_seconds("high", high)
        if lo > hi:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
        return cls._drawn(lambda rng: rng.uniform(lo, hi), f"Latency.uniform({lo!r}, {hi!r})")

    @classmethod
    def exponential(cls, mean: float, *, cap: float | None = None) -> Latency:
        rate = 1.0 / _check_positive("mean", mean)
        limit = _check_cap(cap)
        return cls._drawn(
            lambda rng: _capped(rng.expovariate(rate), limit),
            f"Latency.exponential({mean!r}, cap={cap!r})",
        )

    @classmethod
    def lognormal(cls, median: float, sigma: float, *, cap: float | None = None) -> Latency:
        mu = math.log(_check_positive("median", median))
        spread = _check_seconds("sigma", sigma)
        limit = _check_cap(cap)
        return cls._drawn(
            lambda rng: _capped(rng.lognormvariate(mu, spread), limit),
            f"Latency.lognormal({median!r}, {sigma!r}, cap={cap!r})",
        )

    @classmethod
    def normal(cls, mean: float, stddev: float, *, cap: float | None = None) -> Latency:
        centre = _check_seconds("mean", mean)
        spread = _check_seconds("stddev", stddev)
        limit = _check_cap(cap)
        return cls._drawn(
            lambda rng: _capped(max(0.0, rng.normalvariate(centre, spread)), limit),
            f"Latency.normal({mean!r}, {stddev!r}, cap={cap!r})",
        )

    @classmethod
    def spike(cls, probability: float, extra: float) -> Latency:
        p = _check_probability("probability", probability)
        seconds = _check_seconds("extra", extra)
        # Always one draw per request, so the sequence does not depend on earlier outcomes.
        return cls._drawn(
            lambda rng: seconds if rng.random() < p else 0.0,
            f"Latency.spike({probability!r}, {extra!r})",
        )

    def sample(self, rng: random.Random) -> float:
        """Draw one delay from ``rng``, as the server does for each request."""
        return self._draw(rng)

    async def _apply(self, exchange: Exchange) -> Behaviour | None:
        await exchange.delay(self._draw(exchange.rng))
        return None

    def __repr__(self) -> str:
        return self._text


def _capped(value: float, cap: float | None) -> float:
    return value if cap is None else min(value, cap)


class Sometimes(Modifier):
    """With ``probability`` (seeded), answer with ``behaviour`` instead of going on.

    ``Sometimes(0.05, Reset())`` resets one request in twenty.
    """

    def __init__(self, probability: float, behaviour: Behaviour) -> None:
        self.probability = _check_probability("probability", probability)
        if not isinstance(behaviour, Behaviour):
            raise TypeError(f"Sometimes needs a Behaviour, got {behaviour!r}")
        self.behaviour = behaviour

    async def _apply(self, exchange: Exchange) -> Behaviour | None:
        # Draw even at 0 and 1, so each request consumes the same randomness.
        return self.behaviour if exchange.rng.random() < self.probability else None

    def __repr__(self) -> str:
        return f"Sometimes({self.probability!r}, {self.behaviour!r})"


class FailRate(Sometimes):
    """Fail a seeded share of requests with ``status`` and a JSON error body.

    ``FailRate(0.1, 503) + Respond(200, json=...)``: about one request in ten gets a 503.
    """

    def __init__(self, rate: float, status: int = 503) -> None:
        _check_probability("rate", rate)
        _check_status(status)
        body = {"error": reason_phrase(status), "injected": True}
        super().__init__(rate, Respond(status, json=body))
        self.status = status

    def __repr__(self) -> str:
        return f"FailRate({self.probability!r}, {self.status})"
