"""The events: and webhooks: blocks of gateway.yaml: each mistake names its key."""

from __future__ import annotations

from typing import Any

import pytest

from graftql.config import parse_config
from graftql.errors import ConfigError

ENV = {"S": "whsec_c2VjcmV0", "PLAIN": "secret"}


def problems(**top: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schema": "tests:unused", **top}, environ=ENV)
    return list(caught.value.errors)


def source(**kw: Any) -> dict[str, Any]:
    return {"scheme": "standard", "secrets": ["${S}"], **kw}


def test_defaults() -> None:
    config = parse_config({"schema": "tests:unused", "webhooks": {"pay": source()}}, environ=ENV)
    assert config.events.bus.backend == "memory"
    assert config.events.bus.slow_consumer == "drop_oldest"
    assert config.events.inbox.backend == "sqlite"
    assert config.events.inbox.retention_days == 7
    pay = config.webhooks["pay"]
    assert (pay.tolerance, pay.max_body_bytes, pay.topic) == (300, 1024 * 1024, "webhook.{source}")


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (
            {"events": {"bus": {"backend": "redis"}}},
            ("events.bus.backend", "needs the top-level 'redis:' block"),
        ),
        (
            {"events": {"inbox": {"backend": "redis"}}},
            ("events.inbox.backend", "needs the top-level 'redis:' block"),
        ),
        (
            {"events": {"inbox": {"backend": "postgres"}}},
            ("events.inbox", "backend 'postgres' needs 'dsn'"),
        ),
        ({"events": {"bus": {"queue_size": 0}}}, ("events.bus.queue_size", None)),
        ({"events": {"inbox": {"retention_days": 0}}}, ("events.inbox.retention_days", None)),
        ({"webhooks": {"Pay!": source()}}, ("webhooks", "'Pay!': webhook source names")),
        (
            {"webhooks": {"pay": {"scheme": "hmac", "secrets": ["${PLAIN}"]}}},
            ("webhooks.pay", "scheme 'hmac' needs the 'hmac' block"),
        ),
        (
            {"webhooks": {"pay": {"scheme": "github", "secrets": ["inline"]}}},
            ("webhooks.pay.secrets[0]", "must be a secret reference"),
        ),
        ({"webhooks": {"pay": source(secrets=[])}}, ("webhooks.pay.secrets", None)),
        (
            {"webhooks": {"pay": {"scheme": "standard", "secrets": ["${PLAIN}!"]}}},
            ("webhooks.pay.secrets[0]", None),
        ),
        ({"webhooks": {"pay": source(topic="p.{a b}")}}, ("webhooks.pay.topic", "placeholders")),
        ({"webhooks": {"pay": source(schema="x")}}, ("webhooks.pay.schema", "unknown key")),
        (
            {"webhooks": {"pay": source(allow_ips=["10.0.0.300"])}},
            ("webhooks.pay.allow_ips[0]", "is not an IP address"),
        ),
        (
            {
                "webhooks": {
                    "pay": {
                        "scheme": "hmac",
                        "secrets": ["${PLAIN}"],
                        "hmac": {"signed_payload": "{timestamp}.{body}"},
                    }
                }
            },
            ("webhooks.pay.hmac", "set 'timestamp_header'"),
        ),
    ],
)
def test_mistakes_name_their_key(top: dict[str, Any], expected: tuple[str, str | None]) -> None:
    found = problems(**top)
    key, reason = expected
    assert any(k == key and (reason is None or reason in r) for k, r in found), found
