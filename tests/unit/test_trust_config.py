"""Bad upstream credential, header, redirect and TLS settings: each a config error that names
the key and says why (and never shows a secret)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from graftql.config import AwsSigV4Auth, parse_config
from graftql.errors import ConfigError


def upstream(environ: dict[str, str] | None = None, **settings: Any) -> Any:
    data = {"schema": "a:b", "upstreams": {"svc": {"kind": "rest", "url": "http://x", **settings}}}
    return parse_config(data, environ=environ or {}).upstreams["svc"]


def errors(environ: dict[str, str] | None = None, **settings: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        upstream(environ, **settings)
    return caught.value.errors


SIGV4 = {"type": "aws_sigv4", "service": "execute-api", "region": "eu-west-1"}


def test_sigv4_credentials_come_from_the_environment() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "sk-1"}
    auth = upstream(environ, auth=SIGV4).auth
    assert isinstance(auth, AwsSigV4Auth)
    assert auth.access_key_id.reveal() == "AKID" and auth.secret_access_key.reveal() == "sk-1"
    assert auth.session_token is None
    auth = upstream({**environ, "AWS_SESSION_TOKEN": "st"}, auth=SIGV4).auth
    assert auth.session_token is not None and auth.session_token.reveal() == "st"


def test_sigv4_without_credentials_names_the_keys_and_variables() -> None:
    assert errors(auth=SIGV4) == [
        ("upstreams.svc.auth.access_key_id", "environment variable AWS_ACCESS_KEY_ID is not set"),
        (
            "upstreams.svc.auth.secret_access_key",
            "environment variable AWS_SECRET_ACCESS_KEY is not set",
        ),
    ]


def test_sigv4_needs_both_keys_or_neither() -> None:
    [(path, reason)] = errors({"K": "x"}, auth={**SIGV4, "access_key_id": "${K}"})
    assert path == "upstreams.svc.auth"
    assert reason.startswith("set both 'access_key_id' and 'secret_access_key', or neither")


def test_sigv4_keys_must_be_references() -> None:
    auth = {**SIGV4, "access_key_id": "AKID", "secret_access_key": "literal-secret"}
    found = dict(errors(auth=auth))
    assert found["upstreams.svc.auth.secret_access_key"].startswith("must be a secret reference")
    assert "literal-secret" not in str(found)


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"service": None}, "upstreams.svc.auth.service", "required key is missing"),
        ({"region": "EU West"}, "upstreams.svc.auth.region", "string should match pattern"),
    ],
)
def test_sigv4_service_and_region(change: dict[str, Any], path: str, reason: str) -> None:
    auth = {**SIGV4, **change, "access_key_id": "${K}", "secret_access_key": "${K}"}
    auth = {k: v for k, v in auth.items() if v is not None}
    [(found_path, found_reason)] = errors({"K": "x"}, auth=auth)
    assert found_path == path and found_reason.startswith(reason)


def test_sigv4_without_botocore_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if it were not installed
    auth = {**SIGV4, "access_key_id": "${K}", "secret_access_key": "${K}"}
    assert errors({"K": "x"}, auth=auth) == [
        ("upstreams.svc.auth", "aws_sigv4 needs botocore: pip install 'graftql[aws]'")
    ]


def test_forward_auth_defaults_to_authorization() -> None:
    auth = upstream(auth={"type": "forward"}).auth
    assert auth.headers == ["authorization"]
    assert upstream(auth={"type": "forward", "headers": ["X-Session"]}).auth.headers == [
        "x-session"
    ]


@pytest.mark.parametrize(
    ("settings", "path", "reason"),
    [
        (
            {"forward_headers": ["Connection"]},
            "upstreams.svc.forward_headers",
            "'Connection' is a hop-by-hop or connection header and is never forwarded",
        ),
        (
            {"forward_headers": ["Transfer-Encoding"]},
            "upstreams.svc.forward_headers",
            "'Transfer-Encoding' is a hop-by-hop or connection header and is never forwarded",
        ),
        (
            {"auth": {"type": "forward", "headers": ["Proxy-Authorization"]}},
            "upstreams.svc.auth.headers",
            "'Proxy-Authorization' is a hop-by-hop or connection header and is never forwarded",
        ),
        (
            {"forward_headers": ["X-User-Id"]},
            "upstreams.svc.forward_headers",
            "x-user-id is an identity header (identity_headers): a client's value is never "
            "forwarded, only one the gateway sets itself",
        ),
        (
            {"identity_headers": ["x-tenant-admin"], "forward_headers": ["x-tenant-admin"]},
            "upstreams.svc.forward_headers",
            "x-tenant-admin is an identity header (identity_headers): a client's value is never "
            "forwarded, only one the gateway sets itself",
        ),
        (
            {"auth": {"type": "forward", "headers": ["x-user-roles"]}},
            "upstreams.svc.auth.headers",
            "x-user-roles is an identity header (identity_headers): a client's value is never "
            "forwarded, only one the gateway sets itself",
        ),
        (
            {"forward_headers": ["bad header"]},
            "upstreams.svc.forward_headers",
            "'bad header' is not a valid header name",
        ),
        (
            {"auth": {"type": "forward", "headers": []}},
            "upstreams.svc.auth.headers",
            "list should have at least 1 item after validation, not 0",
        ),
        (
            {"follow_redirects": "always"},
            "upstreams.svc.follow_redirects",
            "input should be 'never' or 'same_origin'",
        ),
        ({"tls": {"verify": False}}, "upstreams.svc.tls.verify", "unknown key"),
        (
            {"tls": {"min_version": "1.1"}},
            "upstreams.svc.tls.min_version",
            "input should be '1.2' or '1.3'",
        ),
    ],
)
def test_header_redirect_and_tls_settings(settings: dict[str, Any], path: str, reason: str) -> None:
    assert errors(**settings) == [(path, reason)]


def test_tls_files_are_checked_at_load(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("gateway.example")
    other = trustme.CA().issue_cert("gateway.example")
    ca_path, cert_path, wrong_key = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    other.private_key_pem.write_to_path(str(wrong_key))
    assert errors(tls={"ca_bundle": str(tmp_path / "absent.pem")}) == [
        ("upstreams.svc.tls.ca_bundle", f"no such file: {tmp_path / 'absent.pem'}")
    ]
    [(path, reason)] = errors(tls={"ca_bundle": str(wrong_key)})  # a key is no certificate
    assert path == "upstreams.svc.tls.ca_bundle" and reason.startswith("no PEM certificate")
    [(path, reason)] = errors(tls={"client_cert": str(cert_path), "client_key": str(wrong_key)})
    assert path == "upstreams.svc.tls.client_key"
    assert reason.startswith("cannot load the certificate and its key")
    assert errors(tls={"client_key": str(wrong_key)}) == [
        ("upstreams.svc.tls.client_cert", "required with 'client_key'")
    ]
    good = upstream(tls={"ca_bundle": str(ca_path), "min_version": "1.3"}).tls
    assert good.ca_bundle == str(ca_path) and good.min_version == "1.3"


def test_new_keys_have_safe_defaults() -> None:
    svc = upstream()
    assert svc.forward_headers == [] and svc.follow_redirects == "never" and svc.tls is None
    assert "x-user-id" in svc.identity_headers and "x-user-roles" in svc.identity_headers
