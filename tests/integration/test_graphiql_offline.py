"""GraphiQL with no network but loopback, as behind a firewall: ``graftql graphiql-assets``
installs the page's files from the npm registry (the real command, ``npm ci`` on the shipped
lockfile, npm's own download cache reused between runs), the demo gateway serves them with
``server.graphiql_assets``, and Debian's headless Chromium, driven by playwright-core
(tests/browser/graphiql.mjs), opens GraphiQL, runs the README's example query as the customer
Ada and sees the result, while every request to another host is refused. The screenshot is
kept in tests/artifacts/ (ignored by git) and its path printed.

Without node/npm or Chromium these tests skip with the reason, except under CI=true, where
they fail (.ci/run installs Chromium)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from graftql.config import GatewayConfig
from graftql.demo.runner import EXAMPLE_QUERY
from graftql.demo.servers import ServerThread
from graftql.errors import ConfigError
from graftql.server import create_app
from graftql.server.graphiql import ASSETS_PATH, page_assets
from integration.helpers import GRAFTQL, demo_token, free_port_block, graphql, unavailable
from integration.node_packages import node_with_packages

ROOT = Path(__file__).resolve().parents[2]
BROWSER = ROOT / "tests" / "browser"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GraphiQL's files, installed by the command an operator runs."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        unavailable("graftql graphiql-assets needs Node.js and npm on PATH")
    directory = tmp_path_factory.mktemp("graphiql") / "assets"
    run = subprocess.run(
        [*GRAFTQL, "graphiql-assets", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    listed = {Path(line) for line in run.stdout.splitlines()[:-1]}
    assert {directory / asset.name for asset in page_assets()} <= listed
    assert f"server.graphiql_assets: {directory}" in run.stdout
    return directory


def _offline(config: GatewayConfig, assets: Path | str | None, **server: Any) -> GatewayConfig:
    changes = {"graphiql_assets": None if assets is None else str(assets), **server}
    return config.model_copy(update={"server": config.server.model_copy(update=changes)})


@pytest.fixture(scope="module")
def offline_gateway(gateway_config: GatewayConfig, assets_dir: Path) -> Iterator[str]:
    with ServerThread(create_app(_offline(gateway_config, assets_dir))) as server:
        yield server.url


def _page(url: str) -> httpx.Response:
    return httpx.get(f"{url}/graphql", headers={"accept": "text/html"}, timeout=10)


# -- over HTTP -----------------------------------------------------------------------------------


def test_the_page_loads_every_file_from_the_gateway_under_a_self_only_policy(
    offline_gateway: str,
) -> None:
    page = _page(offline_gateway)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "https://" not in page.text.replace("http://www.w3.org/2000/svg", "")
    for asset in page_assets():
        assert f'="{ASSETS_PATH}{asset.name}"' in page.text
        assert f'integrity="{asset.integrity}"' in page.text  # the browser checks them too
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src"):
        sources = policy[directive].split()
        assert sources[0] == "'self'" and all(s.startswith("'sha256-") for s in sources[1:])
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == policy["font-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("encoding", ["identity", "gzip, deflate"])
def test_each_file_is_served_with_its_type_and_immutable_caching(
    offline_gateway: str, encoding: str
) -> None:
    compressed = encoding != "identity"
    tag = "-gzip" if compressed else ""
    with httpx.Client(
        base_url=offline_gateway, timeout=10, headers={"accept-encoding": encoding}
    ) as client:
        for asset in page_assets():
            response = client.get(ASSETS_PATH + asset.name)
            assert response.status_code == 200, asset.name
            assert asset.matches(response.content)  # decoded by httpx when gzipped
            assert response.headers.get("content-encoding") == ("gzip" if compressed else None)
            expected = "text/css" if asset.path.endswith(".css") else "text/javascript"
            assert response.headers["content-type"] == f"{expected}; charset=utf-8"
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["vary"] == "accept-encoding"
            # Revalidation and HEAD, as browsers and proxies use them; one tag per encoding.
            assert response.headers["etag"] == f'"{asset.integrity}{tag}"'
            again = client.get(
                ASSETS_PATH + asset.name,
                headers={"if-none-match": f'W/"x", "{asset.integrity}{tag}"'},
            )
            assert again.status_code == 304 and again.content == b""
            assert again.headers["cache-control"] == response.headers["cache-control"]
            other = "" if compressed else "-gzip"
            unchanged = {"if-none-match": f'"{asset.integrity}{other}"'}
            assert client.get(ASSETS_PATH + asset.name, headers=unchanged).status_code == 200
            head = client.head(ASSETS_PATH + asset.name)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(response.num_bytes_downloaded)


def test_the_largest_file_travels_compressed(offline_gateway: str) -> None:
    [largest] = [a for a in page_assets() if a.path == "graphiql.min.js"]
    with httpx.stream(
        "GET", offline_gateway + ASSETS_PATH + largest.name, headers={"accept-encoding": "gzip"}
    ) as response:
        raw = b"".join(response.iter_raw())
    assert len(raw) < 1_000_000  # 3.5 MB as it is
    assert largest.matches(gzip.decompress(raw))
    # Refused by q=0, it comes as it is.
    plain = httpx.get(
        offline_gateway + ASSETS_PATH + largest.name,
        headers={"accept-encoding": "gzip;q=0, *;q=0.5"},
    )
    assert "content-encoding" not in plain.headers


@pytest.mark.parametrize(
    "path",
    [
        "react@18.2.0/LICENSE",  # in the directory, but not a file of the page
        "react@18.2.0/umd/react.development.js",  # a file of the package, not installed
        "react@18.2.0/umd/../LICENSE",
        "react@18.2.0/umd/%2e%2e/LICENSE",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2fetc%2fpasswd",
        "",
    ],
)
def test_nothing_else_is_served_from_the_directory(offline_gateway: str, path: str) -> None:
    # Sent as written: httpx would otherwise normalize the dots away before sending.
    url = httpx.URL(offline_gateway + ASSETS_PATH + path)
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", url)
        request.url = request.url.copy_with(raw_path=(ASSETS_PATH + path).encode())
        response = client.send(request)
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_a_file_changed_after_start_is_not_what_is_served(
    gateway_config: GatewayConfig, assets_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "assets"
    shutil.copytree(assets_dir, copy)
    asset = page_assets()[0]
    with ServerThread(create_app(_offline(gateway_config, copy))) as server:
        (copy / asset.name).write_bytes(b"alert('changed')")
        served = httpx.get(server.url + ASSETS_PATH + asset.name)
    assert served.status_code == 200 and asset.matches(served.content)


def test_without_the_key_the_page_is_strawberrys_from_the_cdn(gateway: str) -> None:
    page = _page(gateway)
    assert page.status_code == 200
    assert all(f"/{asset.name}" in page.text for asset in page_assets())
    assert ASSETS_PATH not in page.text and "content-security-policy" not in page.headers
    assert (
        httpx.get(f"{gateway}{ASSETS_PATH}react@18.2.0/umd/react.production.min.js").status_code
        == 404
    )


def test_production_serves_neither_the_page_nor_the_files_and_checks_no_directory(
    gateway_config: GatewayConfig, tmp_path: Path
) -> None:
    # GraphiQL off: the directory is not read, so a production config may keep the key.
    config = _offline(gateway_config, tmp_path / "absent", env="production", graphiql=None)
    with ServerThread(create_app(config)) as server:
        assert _page(server.url).status_code == 404
        assert httpx.get(f"{server.url}{ASSETS_PATH}x.js").status_code == 404


# -- a directory that is not right --------------------------------------------------------------


def test_a_directory_that_is_missing_empty_or_changed_is_a_config_error(
    gateway_config: GatewayConfig, assets_dir: Path, tmp_path: Path
) -> None:
    first = page_assets()[0]
    hint = "install them with `graftql graphiql-assets --dir"

    def error(directory: Path) -> tuple[str, str]:
        with pytest.raises(ConfigError) as raised:
            create_app(_offline(gateway_config, directory))
        [(key, reason)] = raised.value.errors
        assert key == "server.graphiql_assets" and hint in reason
        return key, reason

    assert "is not a directory" in error(tmp_path / "absent")[1]
    (tmp_path / "empty").mkdir()
    assert f"has no {first.name} (GraphiQL needs it)" in error(tmp_path / "empty")[1]
    changed = tmp_path / "changed"
    shutil.copytree(assets_dir, changed)
    with (changed / first.name).open("ab") as file:
        file.write(b"\n// changed")
    assert f"{first.name} is not the file GraphiQL expects" in error(changed)[1]


def test_graftql_check_reads_the_directory_and_reports_the_key(
    assets_dir: Path, tmp_path: Path
) -> None:
    def check(directory: Path) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "gateway.yaml"
        config.write_text(
            "schema: graftql.demo.schema:schema\nserver:\n  graphiql_assets: ${ASSETS}\n"
        )
        return subprocess.run(
            [*GRAFTQL, "check", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "ASSETS": str(directory)},  # ${VAR} is expanded
        )

    assert check(assets_dir).returncode == 0
    refused = check(tmp_path / "none")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"graftql: {tmp_path}/gateway.yaml: server.graphiql_assets: {tmp_path}/none is not a "
        "directory"
    )


def test_the_demo_with_a_directory_that_is_not_filled_stops_with_the_key(tmp_path: Path) -> None:
    port = free_port_block(5)
    run = subprocess.run(
        [*GRAFTQL, "demo", "--port", str(port), "--graphiql-assets", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.strip().startswith(
        f"graftql: the demo could not start: server.graphiql_assets: {tmp_path} has no "
        "react@18.2.0/umd/react.production.min.js (GraphiQL needs it); install them with"
    )


def test_the_command_without_npm_says_what_is_missing(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *GRAFTQL,
            "graphiql-assets",
            "--dir",
            str(tmp_path / "a"),
            "--npm",
            str(tmp_path / "no-npm"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("graftql: graphiql-assets: `npm ci` could not run:")
    assert list((tmp_path / "a").iterdir()) == []


# -- in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found is None:
        unavailable("the browser test needs Chromium (Debian: apt-get install -y chromium)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def node() -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable(
            "the browser test drives Chromium with playwright-core: it needs Node.js and npm"
        )
    return node_with_packages(BROWSER, "the GraphiQL browser test")


def drive(node: str, chromium: str, url: str, screenshot: Path, *mode: str) -> dict[str, Any]:
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [node, "graphiql.mjs", url, str(screenshot), *mode],
        cwd=BROWSER,
        env={**os.environ, "CHROMIUM": chromium},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    report: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return report


def test_graphiql_runs_the_example_query_with_no_network_but_loopback(
    node: str, chromium: str, offline_gateway: str
) -> None:
    headers = json.dumps({"Authorization": f"Bearer {demo_token('customer')}"})
    url = f"{offline_gateway}/graphql?q={quote(EXAMPLE_QUERY)}&headers={quote(headers)}"
    screenshot = ARTIFACTS / "graphiql-offline.png"
    report = drive(node, chromium, url, screenshot)
    print(f"\nGraphiQL screenshot: {screenshot}")

    # GraphiQL showed what the gateway answers over plain HTTP for the same query and token.
    shown = json.loads(report["result"])
    assert shown == graphql(offline_gateway, EXAMPLE_QUERY, token="customer")
    assert shown["data"]["customer"]["name"] == "Ada Lovelace" and "errors" not in shown
    assert len(shown["data"]["customer"]["orders"]["edges"]) == 5
    assert '"name": "Ada Lovelace"' in report["visible"]  # on screen, not only in the model
    # Nothing left the machine and nothing broke: every file came from the gateway.
    assert report["blocked"] == [] and report["errors"] == []
    assert all(r["url"].startswith(offline_gateway + "/") for r in report["requests"])
    assert all(r["status"] == 200 for r in report["requests"])
    loaded = {r["url"] for r in report["requests"]}
    assert {f"{offline_gateway}{ASSETS_PATH}{a.name}" for a in page_assets()} <= loaded
    # The policy allows only the gateway's origin: the page's own probes of another origin
    # (localhost instead of 127.0.0.1, same port) were refused by the browser, nothing else.
    assert sorted(report["csp"]) == ["connect-src", "script-src-elem"]
    assert report["websocket"] == "open"  # 'self' covers the page's own ws:// too
    assert screenshot.read_bytes().startswith(b"\x89PNG")


def test_the_cdn_page_is_blank_under_the_same_blocking(
    node: str, chromium: str, gateway: str
) -> None:
    # The control: strawberry's page without server.graphiql_assets, in the same browser.
    report = drive(node, chromium, f"{gateway}/graphql", ARTIFACTS / "graphiql-cdn.png", "load")
    assert {asset.name for asset in page_assets()} == {
        url.split("/", 3)[3] for url in report["blocked"]
    }
    assert report["rendered"] is False
