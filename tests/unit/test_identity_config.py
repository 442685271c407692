"""``server.auth``: bad configurations are refused at start-up, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from graftql.config import parse_config
from graftql.errors import ConfigError

ENVIRON = {"JWT_SECRET": "a-long-enough-shared-secret-for-hs256", "JWT_PEM": "not a key"}


def auth(**block: Any) -> Any:
    config = parse_config({"schema": "m:s", "server": {"auth": block}}, environ=ENVIRON)
    return config.server.auth


def refused(**block: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        auth(**block)
    return caught.value.errors


def test_a_secret_with_hs256() -> None:
    config = auth(algorithms=["HS256"], secret="${JWT_SECRET}", audience="api")
    assert config.secret.reveal() == ENVIRON["JWT_SECRET"]
    assert config.audience == ["api"]  # one audience or a list
    assert config.required_claims == ["exp"] and config.leeway == 30 and not config.anonymous


def test_a_literal_secret_is_refused() -> None:
    [(path, reason)] = refused(algorithms=["HS256"], secret="literal")
    assert path == "server.auth.secret" and "secret reference" in reason


def test_exactly_one_key_source(tmp_path: Any) -> None:
    [(path, reason)] = refused(algorithms=["RS256"])
    assert path == "server.auth" and "exactly one of" in reason
    (tmp_path / "k.json").write_text("{}")
    [(path, reason)] = refused(
        algorithms=["RS256"], jwks_url="https://id.example/jwks", jwks_file=str(tmp_path / "k.json")
    )
    assert "found jwks_url, jwks_file" in reason


def test_a_secret_cannot_verify_public_key_algorithms() -> None:
    [(path, reason)] = refused(algorithms=["HS256", "RS256"], secret="${JWT_SECRET}")
    assert path == "server.auth" and "RS256 need" in reason


def test_public_keys_cannot_verify_hmac_algorithms() -> None:
    # Mixing them is what algorithm confusion needs: an HMAC keyed with the public key.
    [(path, reason)] = refused(algorithms=["RS256", "HS256"], jwks_url="https://id.example/j")
    assert path == "server.auth" and "a shared 'secret' is needed for HS256" in reason


@pytest.mark.parametrize("algorithm", ["none", "None", "HS1", "RS1"])
def test_unknown_algorithms_and_none_are_refused(algorithm: str) -> None:
    [(path, _)] = refused(algorithms=[algorithm], secret="${JWT_SECRET}")
    assert path == "server.auth.algorithms[0]"


def test_no_algorithms_is_refused() -> None:
    [(path, _)] = refused(algorithms=[], secret="${JWT_SECRET}")
    assert path == "server.auth.algorithms"


def test_a_public_key_that_is_not_pem_is_refused() -> None:
    [(path, reason)] = refused(algorithms=["RS256"], public_key="${JWT_PEM}")
    assert path == "server.auth.public_key" and "not a PEM public key" in reason


def test_a_jwks_url_must_be_http() -> None:
    [(path, _)] = refused(algorithms=["ES256"], jwks_url="ftp://id.example/jwks")
    assert path == "server.auth.jwks_url"


def test_leeway_is_bounded() -> None:
    [(path, _)] = refused(algorithms=["HS256"], secret="${JWT_SECRET}", leeway=3600)
    assert path == "server.auth.leeway"


def test_unknown_keys_are_refused() -> None:
    [(path, reason)] = refused(algorithms=["HS256"], secret="${JWT_SECRET}", anonymus=True)
    assert path == "server.auth.anonymus" and "unknown key" in reason


def test_command_line_overrides_keep_the_auth_block() -> None:
    # --port/--host/--env validate the server block again; its secrets must survive that.
    import argparse

    from graftql.cli import _with_overrides

    config = parse_config(
        {
            "schema": "m:s",
            "server": {"auth": {"algorithms": ["HS256"], "secret": "${JWT_SECRET}"}},
        },
        environ=ENVIRON,
    )
    args = argparse.Namespace(host=None, port=9001, env="production")
    changed = _with_overrides(config, args)
    assert changed.server.port == 9001 and changed.server.env == "production"
    assert changed.server.auth is not None and changed.server.auth.secret is not None
    assert changed.server.auth.secret.reveal() == ENVIRON["JWT_SECRET"]


def test_an_hmac_secret_shorter_than_its_hash_is_refused() -> None:
    environ = {"SHORT": "x" * 31, "MID": "y" * 32}
    for name, algorithms, needed in (("SHORT", ["HS256"], 32), ("MID", ["HS256", "HS512"], 64)):
        with pytest.raises(ConfigError) as caught:
            parse_config(
                {
                    "schema": "m:s",
                    "server": {"auth": {"algorithms": algorithms, "secret": f"${{{name}}}"}},
                },
                environ=environ,
            )
        [(path, reason)] = caught.value.errors
        assert path == "server.auth" and f"at least {needed} bytes" in reason
        assert environ[name] not in reason


def test_unreadable_key_files_stop_start_up_naming_the_key(tmp_path: Any) -> None:
    missing = tmp_path / "nope.pem"
    [(path, reason)] = refused(algorithms=["RS256"], public_key=f"file:{missing}")
    assert path == "server.auth.public_key" and "cannot read secret file" in reason
    [(path, reason)] = refused(algorithms=["RS256"], jwks_file=str(missing))
    assert path == "server.auth.jwks_file" and "No such file" in reason
    [(path, reason)] = refused(algorithms=["HS256"], secret="${UNSET_JWT_SECRET}")
    assert path == "server.auth.secret" and "UNSET_JWT_SECRET is not set" in reason
