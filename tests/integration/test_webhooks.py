"""Webhook routes over real HTTP: verification, dedup, the inbox, ordering, metrics."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from graftql.events import MemoryBus
from graftql.upstreams import Upstreams
from integration.events_helpers import (
    OLD_SECRET,
    Collector,
    gateway_config,
    payment_body,
    running,
    source,
    standard_headers,
)
from integration.helpers import require_postgres


def stored_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "inbox.sqlite3") as db:
        return db.execute("SELECT source, event_id, status FROM graftql_inbox").fetchall()


def post(url: str, body: bytes, headers: dict[str, str], name: str = "pay") -> httpx.Response:
    return httpx.post(f"{url}/webhooks/{name}", content=body, headers=headers, timeout=10)


def test_a_verified_delivery_is_stored_acknowledged_and_published(tmp_path: Path) -> None:
    config = gateway_config(str(tmp_path), {"pay": source()})
    bus = MemoryBus()
    with running(config, bus=bus) as (server, _):
        collector = Collector(server, bus, "payment.c1")
        body = payment_body("p1", "succeeded")
        answer = post(server.url, body, standard_headers(body, "msg_1"))
        assert answer.status_code == 200
        assert answer.json() == {"status": "stored", "id": "msg_1"}
        [event] = collector.wait_for(1)
        assert event["id"] == "msg_1"
        assert event["source"] == "pay"
        assert event["type"] == "payment.updated"
        assert event["data"]["data"]["status"] == "succeeded"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'graftql_webhooks_received_total{source="pay"} 1.0' in metrics
        assert 'graftql_webhooks_verified_total{source="pay"} 1.0' in metrics
        processed = 'graftql_webhooks_processed_total{outcome="processed",source="pay"} 1.0'
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the worker's pass ends after the event is published
            metrics = httpx.get(f"{server.url}/metrics").text
            if processed in metrics and "graftql_webhook_inbox_backlog 0.0" in metrics:
                break
            time.sleep(0.02)
        assert processed in metrics
        assert "graftql_webhook_inbox_backlog 0.0" in metrics
    assert stored_rows(tmp_path) == [("pay", "msg_1", "processed")]


def test_the_same_event_twice_and_concurrently_is_acknowledged_each_time_published_once(
    tmp_path: Path,
) -> None:
    config = gateway_config(str(tmp_path), {"pay": source()})
    bus = MemoryBus()
    with running(config, bus=bus) as (server, _):
        collector = Collector(server, bus, "payment.c1")
        body = payment_body("p1", "succeeded")
        headers = standard_headers(body, "msg_dup")
        first = post(server.url, body, headers)
        second = post(server.url, body, headers)
        assert (first.status_code, second.status_code) == (200, 200)
        assert second.json()["status"] == "duplicate"

        other = payment_body("p2", "failed")
        other_headers = standard_headers(other, "msg_concurrent")

        async def deliver_at_once() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=10) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"{server.url}/webhooks/pay", content=other, headers=other_headers
                        )
                        for _ in range(8)
                    )
                )

        answers = asyncio.run(deliver_at_once())
        assert [a.status_code for a in answers] == [200] * 8
        assert sorted(a.json()["status"] for a in answers) == ["duplicate"] * 7 + ["stored"]
        collector.wait_for(2)
        time.sleep(0.3)  # anything extra would have arrived by now
        assert sorted(e["id"] for e in collector.events) == ["msg_concurrent", "msg_dup"]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'graftql_webhooks_duplicated_total{source="pay"} 8.0' in metrics


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        ("tampered", 401, "mismatch"),
        ("reserialised", 401, "mismatch"),
        ("wrong_secret", 401, "mismatch"),
        ("no_signature", 401, "missing"),
        ("garbage_signature", 400, "malformed"),
        ("stale", 401, "stale"),
        ("future", 401, "stale"),
        ("bad_timestamp", 400, "malformed"),
    ],
)
def test_bad_deliveries_are_refused_and_nothing_is_stored(
    tmp_path: Path, mutate: str, status: int, reason: str
) -> None:
    config = gateway_config(str(tmp_path), {"pay": source()})
    bus = MemoryBus()
    body = orjson.dumps({"type": "payment.updated", "data": {"id": "p1", "customerId": "c1"}})
    headers = standard_headers(body, "msg_bad")
    if mutate == "tampered":
        body = body.replace(b"p1", b"p9")
    elif mutate == "reserialised":
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    elif mutate == "wrong_secret":
        headers = standard_headers(body, "msg_bad", secret="whsec_c29tZW9uZSBlbHNl")
    elif mutate == "no_signature":
        del headers["webhook-signature"]
    elif mutate == "garbage_signature":
        headers["webhook-signature"] = "v1,@@@"
    elif mutate == "stale":
        headers = standard_headers(body, "msg_bad", timestamp=int(time.time()) - 600)
    elif mutate == "future":
        headers = standard_headers(body, "msg_bad", timestamp=int(time.time()) + 600)
    elif mutate == "bad_timestamp":
        headers["webhook-timestamp"] = "12:00"
    with running(config, bus=bus) as (server, _):
        answer = post(server.url, body, headers)
        assert answer.status_code == status
        assert "error" in answer.json()
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'graftql_webhooks_rejected_total{{reason="{reason}",source="pay"}} 1.0' in metrics
    assert stored_rows(tmp_path) == []
    assert bus.published == 0


def test_a_rotated_secret_still_verifies(tmp_path: Path) -> None:
    config = gateway_config(str(tmp_path), {"pay": source()})
    with running(config) as (server, _):
        body = payment_body("p1", "ok")
        answer = post(server.url, body, standard_headers(body, "m-old", secret=OLD_SECRET))
        assert answer.status_code == 200


def test_unknown_source_oversized_body_and_non_json(tmp_path: Path) -> None:
    config = gateway_config(str(tmp_path), {"pay": source(max_body_bytes=100)})
    with running(config) as (server, _):
        body = payment_body("p1", "ok")
        assert post(server.url, body, standard_headers(body, "m"), name="nope").status_code == 404
        big = payment_body("p1", "x" * 200)
        assert post(server.url, big, standard_headers(big, "m")).status_code == 413

        def chunks() -> Any:  # no Content-Length: counted while read
            yield big[:60]
            yield big[60:]

        chunked = httpx.post(
            f"{server.url}/webhooks/pay", content=chunks(), headers=standard_headers(big, "m")
        )
        assert chunked.status_code == 413
        not_json = b"[1, 2]"
        assert post(server.url, not_json, standard_headers(not_json, "m")).status_code == 400
        no_customer = orjson.dumps({"data": {"id": "p1"}})
        answer = post(server.url, no_customer, standard_headers(no_customer, "m"))
        assert answer.status_code == 400 and "topic" in answer.json()["error"]
        assert httpx.get(f"{server.url}/webhooks/pay").status_code == 405
    assert stored_rows(tmp_path) == []


def test_ip_allowlist_uses_the_real_peer(tmp_path: Path) -> None:
    body = payment_body("p1", "ok")
    direct = gateway_config(str(tmp_path), {"pay": source(allow_ips=["10.0.0.0/8"])})
    with running(direct) as (server, _):
        forged = {**standard_headers(body, "m1"), "x-forwarded-for": "10.1.2.3"}
        assert post(server.url, body, forged).status_code == 403  # not from a trusted proxy
    proxied = gateway_config(
        str(tmp_path),
        {"pay": source(allow_ips=["10.0.0.0/8"], trusted_proxies=["127.0.0.1/32"])},
    )
    with running(proxied) as (server, _):
        via_proxy = {**standard_headers(body, "m2"), "x-forwarded-for": "10.1.2.3"}
        assert post(server.url, body, via_proxy).status_code == 200
        outside = {**standard_headers(body, "m3"), "x-forwarded-for": "192.0.2.1"}
        assert post(server.url, body, outside).status_code == 403


def test_an_older_event_arriving_late_does_not_overwrite_newer_state(tmp_path: Path) -> None:
    config = gateway_config(
        str(tmp_path),
        {"pay": source(entity="{data.id}", version_field="data.updatedAt")},
    )
    bus = MemoryBus()
    with running(config, bus=bus) as (server, _):
        collector = Collector(server, bus, "payment.c1")
        newer = payment_body("p1", "succeeded", updatedAt="2026-01-01T10:00:05Z")
        older = payment_body("p1", "pending", updatedAt="2026-01-01T10:00:00Z")
        other = payment_body("p2", "pending", updatedAt="2026-01-01T09:00:00Z")
        assert post(server.url, newer, standard_headers(newer, "e-new")).status_code == 200
        collector.wait_for(1)
        assert post(server.url, older, standard_headers(older, "e-old")).status_code == 200
        assert post(server.url, other, standard_headers(other, "e-other")).status_code == 200
        collector.wait_for(2)
        time.sleep(0.3)
        assert [e["id"] for e in collector.events] == ["e-new", "e-other"]
    rows = dict(((s, i), st) for s, i, st in stored_rows(tmp_path))
    assert rows[("pay", "e-old")] == "superseded"


class _InvalidatingUpstreams(Upstreams):
    def __init__(self) -> None:
        super().__init__({})
        self.invalidated: list[list[str]] = []

    async def invalidate(self, tags: list[str]) -> None:
        self.invalidated.append(tags)


def test_events_invalidate_cache_tags_when_the_upstreams_can(tmp_path: Path) -> None:
    config = gateway_config(
        str(tmp_path),
        {"pay": source(invalidate=["Payment:{data.id}", "Customer:{data.customerId}", "X:{no}"])},
    )
    upstreams = _InvalidatingUpstreams()
    with running(config, upstreams=upstreams) as (server, _):
        body = payment_body("p7", "ok")
        assert post(server.url, body, standard_headers(body, "inv")).status_code == 200
        deadline = time.monotonic() + 5
        while not upstreams.invalidated and time.monotonic() < deadline:
            time.sleep(0.01)
    assert upstreams.invalidated == [["Payment:p7", "Customer:c1"]]


class _FlakyBus(MemoryBus):
    """Refuses the first ``failures`` publishes, as a Redis outage would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, topic: str, event: Any, *, event_id: str | None = None) -> None:
        if self.failures > 0:
            self.failures -= 1
            from graftql.events import BusUnavailable

            raise BusUnavailable("down")
        await super().publish(topic, event, event_id=event_id)


def test_processing_is_retried_until_the_bus_takes_the_event(tmp_path: Path) -> None:
    config = gateway_config(str(tmp_path), {"pay": source()})
    bus = _FlakyBus(failures=5)  # retried after 0.05, 0.1, 0.2, 0.4, 0.8 s
    with running(config, bus=bus) as (server, _):
        collector = Collector(server, bus, "payment.c1")
        body = payment_body("p1", "ok")
        assert post(server.url, body, standard_headers(body, "retry-me")).status_code == 200
        backlog_seen = False
        deadline = time.monotonic() + 15
        while not collector.events and time.monotonic() < deadline:  # waiting in the backlog
            backlog_seen |= (
                "graftql_webhook_inbox_backlog 1.0" in httpx.get(f"{server.url}/metrics").text
            )
        assert backlog_seen
        assert [e["id"] for e in collector.wait_for(1)] == ["retry-me"]
    assert bus.failures == 0
    assert stored_rows(tmp_path) == [("pay", "retry-me", "processed")]


def test_github_and_stripe_sources_take_their_ids_from_the_scheme(tmp_path: Path) -> None:
    import hashlib
    import hmac

    config = gateway_config(
        str(tmp_path),
        {
            "gh": {"scheme": "github", "secrets": ["${WH_SECRET}"], "topic": "gh.{type}"},
            "st": {"scheme": "stripe", "secrets": ["${WH_SECRET}"], "topic": "st.{type}"},
        },
    )
    from integration.events_helpers import SECRET

    with running(config) as (server, _):
        body = b'{"action": "opened"}'
        mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        gh = {
            "x-hub-signature-256": f"sha256={mac}",
            "x-github-delivery": "d-77",
            "x-github-event": "issues",
        }
        assert post(server.url, body, gh, name="gh").json() == {"status": "stored", "id": "d-77"}
        body = b'{"id": "evt_9", "type": "charge.succeeded"}'
        t = int(time.time())
        mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        st = {"stripe-signature": f"t={t},v1={mac}"}
        assert post(server.url, body, st, name="st").json() == {"status": "stored", "id": "evt_9"}
        assert post(server.url, body, st, name="st").json()["status"] == "duplicate"


def test_a_store_that_fails_is_answered_503_so_the_sender_retries(tmp_path: Path) -> None:
    dsn = require_postgres()
    table = f"inbox_{uuid.uuid4().hex[:12]}"
    config = gateway_config(
        str(tmp_path),
        {"pay": source()},
        events={"inbox": {"backend": "postgres", "dsn": dsn, "table": table}},
    )

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f"DROP TABLE {table}; DROP TABLE {table}_versions")
        await conn.close()

    with running(config) as (server, _):
        body = payment_body("p1", "ok")
        assert post(server.url, body, standard_headers(body, "before")).status_code == 200
        asyncio.run(drop())  # the store now fails every write
        answer = post(server.url, body, standard_headers(body, "after"))
        assert answer.status_code == 503
        assert answer.json() == {"error": "the event could not be stored; retry later"}
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'graftql_webhooks_rejected_total{reason="unavailable",source="pay"} 1.0' in metrics


def test_an_inbox_that_cannot_open_answers_503_until_it_can(tmp_path: Path) -> None:
    """The SQLite file's directory is missing at start-up: the gateway serves, webhooks get
    503 (nothing acknowledged that is not stored), and once the directory exists the inbox
    opens by itself and deliveries are stored."""
    directory = tmp_path / "later"
    config = gateway_config(
        str(tmp_path), {"pay": source()}, events={"inbox": {"path": str(directory / "x.db")}}
    )
    with running(config) as (server, app):
        app.state.realtime.inbox.poll_interval = 0.05
        body = payment_body("p1", "ok")
        assert post(server.url, body, standard_headers(body, "m1")).status_code == 503
        directory.mkdir()
        deadline = time.monotonic() + 10
        while True:
            answer = post(server.url, body, standard_headers(body, "m1"))
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer.json() == {"status": "stored", "id": "m1"}


def test_replicas_sharing_a_postgres_inbox_store_an_event_once(tmp_path: Path) -> None:
    """The same delivery to two replicas at once: one stores it, the other answers
    duplicate, and only one of them publishes it."""
    dsn = require_postgres()
    table = f"inbox_{uuid.uuid4().hex[:12]}"
    config = gateway_config(
        str(tmp_path),
        {"pay": source()},
        events={"inbox": {"backend": "postgres", "dsn": dsn, "table": table}},
    )
    buses = [MemoryBus(), MemoryBus()]
    try:
        with running(config, bus=buses[0]) as (a, _), running(config, bus=buses[1]) as (b, _):
            body = payment_body("p1", "ok")
            headers = standard_headers(body, "shared-1")

            async def both() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=10) as client:
                    return await asyncio.gather(
                        *(
                            client.post(f"{url}/webhooks/pay", content=body, headers=headers)
                            for url in (a.url, b.url, a.url, b.url)
                        )
                    )

            answers = asyncio.run(both())
            assert [r.status_code for r in answers] == [200] * 4
            assert sorted(r.json()["status"] for r in answers) == ["duplicate"] * 3 + ["stored"]
            deadline = time.monotonic() + 5
            while sum(bus.published for bus in buses) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.5)
            assert sum(bus.published for bus in buses) == 1
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(dsn)
            await conn.execute(
                f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_versions"
            )
            await conn.close()

        asyncio.run(drop())
