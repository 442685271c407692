"""What ships for monitoring: the Prometheus alert rules (promtool's own unit tests) and the
Grafana dashboard, both checked against the metric names the gateway really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

from graftql.server.metrics import GatewayMetrics
from integration.helpers import unavailable

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "graftql-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "graftql-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "graftql.json"

# Metric names the rules use that other features export (not server/metrics.py on this
# branch): the name, and who provides it. A name here must not also be in server/metrics.py.
PROVIDED_BY_OTHER_FEATURES: dict[str, str] = {}

_NAME = re.compile(r"\bgraftql_[a-z0-9_]+")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def exported_names() -> set[str]:
    """Every sample name the gateway's registry can expose."""
    metrics = GatewayMetrics({})
    metrics.backlog(0)  # the inbox backlog gauge is made on first use (see server/metrics.py)
    names: set[str] = set()
    family: Metric
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def names_in(text: str) -> set[str]:
    return set(_NAME.findall(text))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable(
            "promtool is not installed (Debian: apt-get install prometheus; "
            ".ci/run installs it in CI)"
        )
    return found


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    tool = promtool()
    checked = subprocess.run(
        [tool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_metric_the_rules_use_is_exported_or_provided_by_another_feature() -> None:
    exported = exported_names()
    assert not exported & set(PROVIDED_BY_OTHER_FEATURES), "move it out of the list"
    used = set().union(*(names_in(rule["expr"]) for rule in rules()))
    assert used - exported - set(PROVIDED_BY_OTHER_FEATURES) == set()
    # The list names nothing the rules no longer use.
    assert set(PROVIDED_BY_OTHER_FEATURES) <= used


def test_every_alert_has_a_severity_and_a_runbook_that_exists() -> None:
    troubleshooting = (ROOT / "docs" / "troubleshooting.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#{2,4} (.+)$", troubleshooting, re.MULTILINE)
    }
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        runbook = rule["annotations"]["runbook"]
        page, _, anchor = runbook.partition("#")
        assert page == "docs/troubleshooting.md" and anchor in anchors, (rule["alert"], anchor)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(variable["definition"])
    return expressions


def test_the_dashboard_parses_and_uses_only_exported_metrics_and_all_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "graftql"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    expressions = dashboard_expressions()
    used = set().union(*(names_in(expression) for expression in expressions))
    exported = exported_names()
    assert used - exported == set()
    # Every metric family is on some panel (the _created series aside).
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in exported}
    shown = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in used}
    assert families - shown == set()


def test_dashboard_panels_fit_the_grid_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
