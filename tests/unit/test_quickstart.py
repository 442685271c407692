"""The README's two commands, CI and the Dockerfile must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README has no quick start block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_commands() -> None:
    demo, test = quickstart()
    assert demo.endswith("graftql demo") and "pip install ." in demo
    assert test.endswith(".venv/bin/pytest") and "pip install -e '.[dev]'" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = quickstart()
    ci = (ROOT / ".ci" / "run").read_text()
    # CI adds only -q to pip; every step of the README's command is there in order.
    steps = [step.strip() for step in test.split("&&")]
    ci_line = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    ci_steps = [step.strip().replace(" -q", "") for step in ci_line.split("&&")]
    assert ci_steps == steps


def test_dockerfile_installs_the_way_the_readme_does() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert "python3 -m venv /opt/graftql" in docker
    # `.` with the image's extras (EXTRAS=otel by default; empty: plain `.`).
    assert '/opt/graftql/bin/pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"' in docker
    assert "USER 10001:10001" in docker and "HEALTHCHECK" in docker and "/healthz" in docker
