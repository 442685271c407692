"""GraphiQL's page and files, without npm or a browser: which files strawberry's page loads
(and that graftql's npm pins are exactly those), how the page is rewritten and its policy
computed, and how the installer fails (a fake npm executable stands in for the registry)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from graftql.errors import ConfigError
from graftql.server.graphiql import ASSETS_PATH, OfflineGraphiQL, page_assets
from graftql.server.graphiql.install import AssetInstallError, install_assets

NPM = files("graftql.server.graphiql") / "npm"


def sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_strawberrys_page_loads_seven_pinned_files() -> None:
    assets = page_assets()
    assert [asset.name for asset in assets] == [
        "react@18.2.0/umd/react.production.min.js",
        "react-dom@18.2.0/umd/react-dom.production.min.js",
        "js-cookie@3.0.5/dist/js.cookie.min.js",
        "graphiql@3.8.3/graphiql.min.css",
        "@graphiql/plugin-explorer@1.0.2/dist/style.css",
        "graphiql@3.8.3/graphiql.min.js",
        "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js",
    ]
    assert all(asset.integrity.startswith("sha384-") for asset in assets)


def test_the_shipped_npm_pins_are_the_pages_versions() -> None:
    # A strawberry upgrade that moves GraphiQL fails here, before any gateway serves a page
    # whose files are not installed.
    pinned = json.loads((NPM / "package.json").read_text())["dependencies"]
    assert pinned == {asset.package: asset.version for asset in page_assets()}
    lock = json.loads((NPM / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == pinned
    for package, version in pinned.items():
        assert lock["packages"][f"node_modules/{package}"]["version"] == version


PAGE = """<!doctype html><html><head>
<style>body { margin: 0 }</style>
<script crossorigin src="https://cdn.test/lib@1.2.3/dist/lib.min.js"
  integrity="{js}"></script>
<link rel="stylesheet" href="https://cdn.test/@scope/ui@4.5.6/ui.css" integrity="{css}" />
</head><body><script>
  render(document.body);
</script></body></html>"""


def synthetic(tmp_path: Path) -> tuple[Path, str]:
    js, css = b"window.lib = 1;\n", b"body { color: red }\n"
    (tmp_path / "lib@1.2.3/dist").mkdir(parents=True)
    (tmp_path / "lib@1.2.3/dist/lib.min.js").write_bytes(js)
    (tmp_path / "@scope/ui@4.5.6").mkdir(parents=True)
    (tmp_path / "@scope/ui@4.5.6/ui.css").write_bytes(css)
    return tmp_path, PAGE.replace("{js}", sri(js)).replace("{css}", sri(css))


def test_the_page_is_rewritten_to_local_addresses_with_hashes_for_its_inline_blocks(
    tmp_path: Path,
) -> None:
    directory, html = synthetic(tmp_path)
    offline = OfflineGraphiQL(directory, html=html)
    page = offline.page.html
    assert f'src="{ASSETS_PATH}lib@1.2.3/dist/lib.min.js"' in page
    assert f'href="{ASSETS_PATH}@scope/ui@4.5.6/ui.css"' in page
    assert "cdn.test" not in page and 'integrity="sha384-' in page
    policy = offline.page.headers["content-security-policy"]
    assert f"script-src 'self' {sha256(chr(10) + '  render(document.body);' + chr(10))};" in policy
    assert f"style-src 'self' {sha256('body { margin: 0 }')};" in policy
    assert set(offline.files) == {"lib@1.2.3/dist/lib.min.js", "@scope/ui@4.5.6/ui.css"}


def test_a_page_that_would_still_reach_another_origin_is_refused(tmp_path: Path) -> None:
    directory, html = synthetic(tmp_path)
    unpinned = html.replace("</head>", '<script src="https://cdn.test/other.js"></script></head>')
    with pytest.raises(ConfigError) as raised:
        OfflineGraphiQL(directory, html=unpinned)
    assert raised.value.errors == [
        (
            "server.graphiql_assets",
            "GraphiQL's page still loads a file from another origin: this graftql cannot serve "
            "it offline; unset the key",
        )
    ]
    no_hash = html.replace('integrity="sha384-', 'data-x="sha384-', 1)
    with pytest.raises(ConfigError, match="without an integrity hash"):
        OfflineGraphiQL(directory, html=no_hash)


def test_a_changed_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    directory, html = synthetic(tmp_path)
    (directory / "@scope/ui@4.5.6/ui.css").write_bytes(b"body { color: blue }\n")
    with pytest.raises(ConfigError) as raised:
        OfflineGraphiQL(directory, html=html)
    [(key, reason)] = raised.value.errors
    assert key == "server.graphiql_assets"
    assert reason == (
        f"{directory}/@scope/ui@4.5.6/ui.css is not the file GraphiQL expects (its sha384 "
        f"differs); install them with `graftql graphiql-assets --dir {directory}`"
    )


def fake_npm(tmp_path: Path, script: str) -> str:
    path = tmp_path / "npm"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_failing_npm_ci_is_reported_with_its_output(tmp_path: Path) -> None:
    npm = fake_npm(tmp_path, 'echo "npm error 404 Not Found" >&2\nexit 1\n')
    with pytest.raises(AssetInstallError) as raised:
        install_assets(tmp_path / "out", npm=npm)
    assert str(raised.value) == "`npm ci` failed with status 1:\nnpm error 404 Not Found"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_npm_installed_that_is_not_the_pages_is_refused(tmp_path: Path) -> None:
    # npm "installs" every package, the files' bytes not the ones the page pins.
    assets = page_assets()
    lines = ['[ "$1" = ci ] && [ -f package-lock.json ] || exit 9']
    for asset in assets:
        target = f"node_modules/{asset.package}/{asset.path}"
        lines.append(f'mkdir -p "$(dirname {target})" && echo tampered > {target}')
    with pytest.raises(AssetInstallError) as raised:
        install_assets(tmp_path / "out", npm=fake_npm(tmp_path, "\n".join(lines)))
    assert str(raised.value) == (
        f"{assets[0].name} from npm does not match the integrity hash in GraphiQL's page "
        f"({assets[0].integrity})"
    )
    assert list((tmp_path / "out").iterdir()) == []  # nothing unless every file is right
    # npm succeeding without installing the files is refused too.
    with pytest.raises(AssetInstallError, match=f"^npm installed no {assets[0].name}$"):
        install_assets(tmp_path / "out", npm=fake_npm(tmp_path, "exit 0"))


def test_without_npm_the_command_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssetInstallError, match=r"npm is not on PATH: install Node\.js"):
        install_assets(tmp_path / "out")


def test_the_image_installs_the_files_with_the_command_in_its_build_stage_only() -> None:
    docker = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    build, final = docker.split("\nFROM python:3.11-slim\n")
    assert "ARG GRAPHIQL_ASSETS=/opt/graftql/share/graphiql" in build
    assert '/opt/graftql/bin/graftql graphiql-assets --dir "$GRAPHIQL_ASSETS"' in build
    # Node.js is a build tool: the final stage copies /opt/graftql (the files with it) only.
    assert "nodejs npm" in build and "npm" not in final and "node" not in final
    assert "COPY --from=build /opt/graftql /opt/graftql" in final


def test_an_unwritable_directory_fails_before_npm_runs(tmp_path: Path) -> None:
    npm = fake_npm(tmp_path, f"touch {tmp_path}/npm-ran\n")
    command = ["graphiql-assets", "--dir", "/dev/null/x", "--npm", npm]
    run = subprocess.run(
        [sys.executable, "-m", "graftql.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr == "graftql: graphiql-assets: /dev/null/x: Not a directory\n"
    assert not (tmp_path / "npm-ran").exists()
