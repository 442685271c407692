"""Node for the tests that run JavaScript clients and audits nobody at graftql wrote
(tests/conformance, tests/interop): find ``node`` (20 or later) and install a directory's
packages from its package-lock.json with ``npm ci`` when node_modules is missing or stale."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NPM_TIMEOUT = 300.0
NEEDS_NODE = "{what} need Node 20 (or later) and npm on PATH (https://nodejs.org/); {problem}"


def installed_matches_lockfile(directory: Path) -> bool:
    """node_modules holds every package at the version package-lock.json pins."""
    lock = json.loads((directory / "package-lock.json").read_text())
    for path, entry in lock["packages"].items():
        if not path:
            continue
        manifest = directory / path / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


def node_with_packages(directory: Path, what: str) -> str:
    """The ``node`` executable, with ``directory``'s packages installed from its lockfile;
    fails the test (with what is missing) when Node or npm is not there."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(NEEDS_NODE.format(what=what, problem="`node` is not on PATH"), pytrace=False)
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 20:
        problem = f"`node --version` is {version!r}"
        pytest.fail(NEEDS_NODE.format(what=what, problem=problem), pytrace=False)
    if not installed_matches_lockfile(directory):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(NEEDS_NODE.format(what=what, problem="`npm` is not on PATH"), pytrace=False)
        install = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        if install.returncode != 0:
            pytest.fail(
                f"`npm ci` in {directory} failed ({install.returncode}):\n"
                f"{install.stdout}\n{install.stderr}",
                pytrace=False,
            )
        assert installed_matches_lockfile(directory), (
            "npm ci did not install what the lockfile pins"
        )
    return node
