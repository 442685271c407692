"""``graftql graphiql-assets --dir DIR``: GraphiQL's browser files from the npm registry.

``npm ci`` installs the packages pinned by the package.json and package-lock.json shipped next
to this module (npm checks every tarball against the lockfile's hash) into a temporary
directory, with install scripts off; the files strawberry's page loads are then checked
against the page's own integrity hashes and copied into ``DIR`` as
``<package>@<version>/<path>``, each package's licence beside them. Nothing third-party is
committed to graftql; the files come from the registry at image build time or on a
developer's machine, and ``server.graphiql_assets: DIR`` serves them (``page.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

from graftql.errors import GraftqlError
from graftql.server.graphiql.page import Asset, page_assets

__all__ = ["AssetInstallError", "install_assets"]

NPM_TIMEOUT = 600.0
_LICENCES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license")


class AssetInstallError(GraftqlError):
    """``graftql graphiql-assets`` could not install GraphiQL's files (npm missing or
    failing, or a file that is not the one the page expects); the message says which."""

    code = "ASSETS_NOT_INSTALLED"


def install_assets(directory: str | Path, *, npm: str | None = None) -> list[Path]:
    """Install the page's files into ``directory`` (created if needed); returns the files
    written. ``npm`` is the npm executable (default: the one on PATH); it runs with this
    process's environment (``npm_config_cache`` moves its download cache, ``npm_config_registry``
    names a mirror)."""
    executable = npm or shutil.which("npm")
    if executable is None:
        raise AssetInstallError(
            "npm is not on PATH: install Node.js 20 or later with npm (Debian: apt-get "
            "install nodejs npm), or pass --npm"
        )
    assets = page_assets()
    _check_pins(assets)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)  # an unwritable place fails before npm runs
    with tempfile.TemporaryDirectory(prefix="graftql-graphiql-") as work:
        source = files("graftql.server.graphiql") / "npm"
        for name in ("package.json", "package-lock.json"):
            (Path(work) / name).write_bytes((source / name).read_bytes())
        _npm_ci(executable, Path(work))
        modules = Path(work) / "node_modules"
        contents: list[tuple[Path, bytes]] = []
        for asset in assets:  # every file checked before any is written
            try:
                content = (modules / asset.package / asset.path).read_bytes()
            except FileNotFoundError:
                raise AssetInstallError(f"npm installed no {asset.name}") from None
            if not asset.matches(content):
                raise AssetInstallError(
                    f"{asset.name} from npm does not match the integrity hash in GraphiQL's "
                    f"page ({asset.integrity})"
                )
            contents.append((target / asset.name, content))
        written = [_write(path, content) for path, content in contents]
        for package, version in sorted({(a.package, a.version) for a in assets}):
            for licence in _LICENCES:
                found = modules / package / licence
                if found.is_file():
                    dest = target / f"{package}@{version}" / licence
                    written.append(_write(dest, found.read_bytes()))
                    break
    return written


def _check_pins(assets: list[Asset]) -> None:
    """The shipped package.json pins exactly the versions the page loads (a strawberry
    upgrade that moves them fails here, naming both, before npm runs)."""
    manifest = json.loads((files("graftql.server.graphiql") / "npm" / "package.json").read_text())
    pinned: dict[str, str] = manifest["dependencies"]
    for asset in assets:
        if pinned.get(asset.package) != asset.version:
            raise AssetInstallError(
                f"GraphiQL's page loads {asset.package}@{asset.version}, but graftql pins "
                f"{asset.package}@{pinned.get(asset.package)}: this graftql does not match "
                "the installed strawberry-graphql"
            )


def _npm_ci(npm: str, work: Path) -> None:
    command = [
        npm,
        "ci",
        "--ignore-scripts",  # nothing from a package runs on this machine
        "--prefer-offline",  # what npm's cache has is not fetched again
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]
    try:
        run = subprocess.run(  # noqa: S603 - a fixed command line; npm from PATH or the caller
            command,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetInstallError(f"`npm ci` could not run: {exc}") from None
    if run.returncode != 0:
        output = (run.stderr or run.stdout).strip()
        raise AssetInstallError(f"`npm ci` failed with status {run.returncode}:\n{output}")


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(content)
    partial.replace(path)  # a gateway reading the directory never sees half a file
    return path
