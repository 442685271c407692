"""gateway.yaml validation: every bad input names its key and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graftql.config import Secret, load_config, parse_config
from graftql.errors import ConfigError


def minimal(**upstreams: Any) -> dict[str, Any]:
    return {"schema": "graftql.demo.schema:schema", "upstreams": upstreams}


def errors_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.errors


def test_minimal_config_has_safe_defaults() -> None:
    config = parse_config(minimal(crm={"kind": "rest", "url": "http://127.0.0.1:1"}))
    assert config.server.env == "development"
    assert config.server.graphiql_enabled and config.server.introspection_enabled
    crm = config.upstreams["crm"]
    assert crm.timeout == 10 and crm.required and crm.auth is None


def test_production_turns_graphiql_and_introspection_off_unless_asked() -> None:
    config = parse_config({"schema": "a:b", "server": {"env": "production"}})
    assert not config.server.graphiql_enabled
    assert not config.server.introspection_enabled
    config = parse_config({"schema": "a:b", "server": {"env": "production", "graphiql": True}})
    assert config.server.graphiql_enabled


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    data = minimal(crm={"kind": "rest", "url": "http://x", "timout": 3})
    assert errors_of(data) == [("upstreams.crm.timout", "unknown key (did you mean 'timeout'?)")]


def test_unknown_top_level_key() -> None:
    assert errors_of({"schema": "a:b", "upstream": {}}) == [
        ("upstream", "unknown key (did you mean 'upstreams'?)")
    ]


def test_unknown_key_inside_auth_names_the_path_without_the_union_tag() -> None:
    data = minimal(
        crm={
            "kind": "rest",
            "url": "http://x",
            "auth": {"type": "bearer", "token": "${T:-x}", "tokn": 1},
        }
    )
    assert errors_of(data) == [("upstreams.crm.auth.tokn", "unknown key (did you mean 'token'?)")]


def test_bad_types_and_ranges() -> None:
    data = {
        "schema": "a:b",
        "server": {"port": "eighty", "env": "prod"},
        "upstreams": {"crm": {"kind": "soap", "url": "http://x", "timeout": 0}},
    }
    found = dict(errors_of(data))
    assert found["server.port"].startswith("input should be a valid integer")
    assert found["server.env"] == "input should be 'development' or 'production'"
    assert found["upstreams.crm.kind"] == "input should be 'rest' or 'graphql'"
    assert found["upstreams.crm.timeout"] == "input should be greater than 0"


def test_missing_required_key() -> None:
    assert errors_of(minimal(crm={"kind": "rest"})) == [
        ("upstreams.crm.url", "required key is missing")
    ]
    assert errors_of({"upstreams": {}}) == [("schema", "required key is missing")]


def test_url_must_be_absolute_http() -> None:
    assert errors_of(minimal(crm={"kind": "rest", "url": "ftp://host/x"})) == [
        ("upstreams.crm.url", "must be an absolute http:// or https:// URL")
    ]


def test_upstream_names_are_identifiers() -> None:
    assert errors_of(minimal(**{"My CRM": {"kind": "rest", "url": "http://x"}})) == [
        ("upstreams", "'My CRM': upstream names are lower_snake_case identifiers")
    ]


def test_unknown_auth_type() -> None:
    data = minimal(crm={"kind": "rest", "url": "http://x", "auth": {"type": "kerberos"}})
    [(path, reason)] = errors_of(data)
    assert path == "upstreams.crm.auth"
    assert reason.startswith("unknown type 'kerberos'; expected one of api_key, aws_sigv4, basic")


def test_api_key_needs_exactly_one_place() -> None:
    auth = {"type": "api_key", "value": "${K:-k}", "header": "X-Key", "query": "key"}
    [(path, reason)] = errors_of(minimal(crm={"kind": "rest", "url": "http://x", "auth": auth}))
    assert (path, reason) == ("upstreams.crm.auth", "set exactly one of 'header' or 'query'")


def test_env_interpolation_in_plain_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_HOST", "127.0.0.1:9")
    config = parse_config(
        minimal(
            crm={"kind": "rest", "url": "http://${CRM_HOST}/api"},
            cat={"kind": "graphql", "url": "${CAT_URL:-http://127.0.0.1:8}/graphql"},
        )
    )
    assert config.upstreams["crm"].url == "http://127.0.0.1:9/api"
    assert config.upstreams["cat"].url == "http://127.0.0.1:8/graphql"


def test_escaped_dollar_stays_literal() -> None:
    config = parse_config(
        minimal(crm={"kind": "rest", "url": "http://x", "headers": {"X-Note": "$${NOT_A_VAR}"}})
    )
    assert config.upstreams["crm"].headers["X-Note"] == "${NOT_A_VAR}"


def test_unset_variable_names_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFTQL_TEST_UNSET", raising=False)
    data = minimal(
        crm={
            "kind": "rest",
            "url": "http://x",
            "auth": {"type": "bearer", "token": "${GRAFTQL_TEST_UNSET}"},
        }
    )
    assert errors_of(data) == [
        ("upstreams.crm.auth.token", "environment variable GRAFTQL_TEST_UNSET is not set")
    ]


def test_literal_secret_is_rejected() -> None:
    data = minimal(
        crm={"kind": "rest", "url": "http://x", "auth": {"type": "bearer", "token": "abc123"}}
    )
    [(path, reason)] = errors_of(data)
    assert path == "upstreams.crm.auth.token"
    assert reason.startswith("must be a secret reference")
    assert "abc123" not in reason


def test_literal_credential_header_is_rejected_but_plain_headers_are_fine() -> None:
    data = minimal(
        crm={"kind": "rest", "url": "http://x", "headers": {"Authorization": "Bearer abc"}}
    )
    [(path, reason)] = errors_of(data)
    assert path == "upstreams.crm.headers"
    assert "Authorization" in reason and "abc" not in reason
    config = parse_config(
        minimal(
            crm={
                "kind": "rest",
                "url": "http://x",
                "headers": {"Accept": "application/json", "X-Api-Key": "${K:-secret}"},
            }
        )
    )
    headers = config.upstreams["crm"].headers
    assert headers["Accept"] == "application/json"
    assert isinstance(headers["X-Api-Key"], Secret)


def test_secret_from_env_and_file_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "s3cr3t-env")
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-file\n")
    env_secret = Secret("${CRM_TOKEN}")
    file_secret = Secret(f"file:{secret_file}")
    assert env_secret.reveal() == "s3cr3t-env"
    assert file_secret.reveal() == "s3cr3t-file"  # trailing newline dropped
    for secret in (env_secret, file_secret):
        assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret)
    secret_file.write_text("rotated")
    file_secret.reload()
    assert file_secret.reveal() == "rotated"


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    data = minimal(
        crm={
            "kind": "rest",
            "url": "http://x",
            "auth": {"type": "bearer", "token": f"file:{tmp_path}/absent"},
        }
    )
    [(path, reason)] = errors_of(data)
    assert path == "upstreams.crm.auth.token"
    assert reason.startswith("cannot read secret file") and "No such file" in reason


def test_secrets_are_redacted_when_the_config_is_dumped() -> None:
    data = minimal(
        crm={"kind": "rest", "url": "http://x", "auth": {"type": "bearer", "token": "${T:-tok}"}}
    )
    dumped = parse_config(data).model_dump_json()
    assert "tok" not in dumped.replace("token", "")


def test_schema_reference_shape() -> None:
    assert errors_of({"schema": "not a reference"}) == [
        ("schema", "must look like 'package.module:attribute'")
    ]


def test_top_level_must_be_a_mapping() -> None:
    [(path, reason)] = errors_of(["a", "b"])
    assert path == "" and "top level must be a mapping" in reason


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "gateway.yaml")
    assert caught.value.errors == [("", f"{tmp_path / 'gateway.yaml'}: no such file")]


def test_load_bad_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("schema: a:b\nupstreams:\n  crm: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [(key, reason)] = caught.value.errors
    assert key == ""
    assert reason.startswith(f"{path}: invalid YAML at line 4")


def test_the_demo_config_is_valid() -> None:
    from importlib.resources import files

    config = load_config(str(files("graftql.demo") / "gateway.yaml"))
    assert set(config.upstreams) == {"catalog", "crm", "payments", "shipping"}


def test_extra_params_cannot_override_the_grant() -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "http://127.0.0.1:9/token",
        "client_id": "gw",
        "client_secret": "${S:-s}",
        "extra_params": {"grant_type": "password", "scope": "admin"},
    }
    assert errors_of(minimal(pay={"kind": "rest", "url": "http://x", "auth": auth})) == [
        (
            "upstreams.pay.auth.extra_params",
            "grant_type, scope cannot be set here; use the dedicated keys",
        )
    ]


def test_empty_secret_is_an_error() -> None:
    data = minimal(
        crm={"kind": "rest", "url": "http://x", "auth": {"type": "bearer", "token": "${T:-}"}}
    )
    assert errors_of(data) == [("upstreams.crm.auth.token", "the secret is empty")]


@pytest.mark.parametrize("path", ["healthz", "/health check", "/ünï", "http://other/healthz"])
def test_health_path_must_be_a_path(path: str) -> None:
    data = minimal(crm={"kind": "rest", "url": "http://x", "health_path": path})
    [(key, reason)] = errors_of(data)
    assert key == "upstreams.crm.health_path" and reason.startswith("string should match pattern")


@pytest.mark.parametrize(
    ("policy", "path", "reason"),
    [
        (
            {"retry": {"attempts": 0}},
            "upstreams.crm.retry.attempts",
            "input should be greater than or equal to 1",
        ),
        (
            {"retry": {"base_delay": -1}},
            "upstreams.crm.retry.base_delay",
            "input should be greater than 0",
        ),
        (
            {"breaker": {"half_open_probes": 0}},
            "upstreams.crm.breaker.half_open_probes",
            "input should be greater than or equal to 1",
        ),
        (
            {"breaker": {"failure_rate": 1.5}},
            "upstreams.crm.breaker.failure_rate",
            "input should be less than or equal to 1",
        ),
        (
            {"rate_limit": {"rate": "fast"}},
            "upstreams.crm.rate_limit.rate",
            "input should be a valid number, unable to parse string as a number",
        ),
        ({"rate_limit": {"burst": 2}}, "upstreams.crm.rate_limit.rate", "required key is missing"),
        (
            {"bulkhead": {"max_concurrent": 0}},
            "upstreams.crm.bulkhead.max_concurrent",
            "input should be greater than or equal to 1",
        ),
        ({"timeout": -3}, "upstreams.crm.timeout", "input should be greater than 0"),
        (
            {"max_response_bytes": 10},
            "upstreams.crm.max_response_bytes",
            "input should be greater than or equal to 1024",
        ),
    ],
)
def test_bad_policy_values_name_their_key(policy: dict[str, Any], path: str, reason: str) -> None:
    assert errors_of(minimal(crm={"kind": "rest", "url": "http://x", **policy})) == [(path, reason)]


def test_request_timeout_must_be_positive() -> None:
    assert errors_of({"schema": "a:b", "server": {"request_timeout": 0}}) == [
        ("server.request_timeout", "input should be greater than 0")
    ]
