"""Test tools for gateways and their integrations: a scripted, misbehaving upstream.

Resilience code is only as good as the failures it was tested against, and real upstreams fail
in ways a well-behaved test server cannot imitate: connections reset halfway through, bodies
cut short, garbage instead of a status line, answers that never come. :class:`ChaosUpstream`
is a real HTTP/1.1 server on 127.0.0.1, written on raw ``asyncio`` streams so it can do all of
that on demand, per route, reproducibly from a seed, while recording every request it received.

In an async test (the server runs in the test's event loop)::

    from graftql.testing import ChaosUpstream, FailRate, Latency, Respond

    async with ChaosUpstream(seed=7) as chaos:
        chaos.route("GET /users/*").queue(Respond(503), times=2).always(
            Respond(200, json={"id": "u1"})
        )
        chaos.route("POST /orders", Latency.uniform(0.02, 0.05) + FailRate(0.1, 503)
                    + Respond(201, json={"id": "o1"}))
        ...  # point the gateway (or any client) at chaos.url
        assert chaos.count("GET /users/*") == 3

In a synchronous test it serves from a background thread::

    with ChaosUpstream(seed=7).running() as chaos:
        chaos.route("/slow", Hang())
        ...
        assert [r.path for r in chaos.requests] == ["/slow"]

Behaviours answer (:class:`Respond`, :class:`RetryAfter`, :class:`InvalidJson`,
:class:`WrongContentType`, :class:`Trickle`, :class:`Call`) or fail to (:class:`Reset`,
:class:`Hang`, :class:`Disconnect`, :class:`Malformed`, :class:`Truncated`); modifiers
(:class:`Latency`, :class:`Sometimes`, :class:`FailRate`) run first and combine with ``+``.
See docs/testing.md for the full table and a gateway example.
"""

from __future__ import annotations

from graftql.testing._http import ReceivedRequest
from graftql.testing.behaviours import (
    Behaviour,
    Call,
    Disconnect,
    FailRate,
    Hang,
    InvalidJson,
    Latency,
    Malformed,
    Modifier,
    Reset,
    Respond,
    RetryAfter,
    Sometimes,
    Trickle,
    Truncated,
    WrongContentType,
)
from graftql.testing.chaos import UNMATCHED, ChaosUpstream, Route

__all__ = [
    "UNMATCHED",
    "Behaviour",
    "Call",
    "ChaosUpstream",
    "Disconnect",
    "FailRate",
    "Hang",
    "InvalidJson",
    "Latency",
    "Malformed",
    "Modifier",
    "ReceivedRequest",
    "Reset",
    "Respond",
    "RetryAfter",
    "Route",
    "Sometimes",
    "Trickle",
    "Truncated",
    "WrongContentType",
]
