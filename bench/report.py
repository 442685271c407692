"""The machine and versions of a run, and the markdown report (re-runnable from the JSON)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY_PACKAGES = ("graftql", "strawberry-graphql", "graphql-core", "httpx", "starlette", "uvicorn")
PY_OPTIONAL = ("uvloop", "httptools", "orjson")
NODE_PACKAGES = {
    "Hive Gateway": "mesh-compose/node_modules/@graphql-hive/gateway",
    "Hive Gateway runtime": "mesh-compose/node_modules/@graphql-hive/gateway-runtime",
    "Mesh compose CLI": "mesh-compose/node_modules/@graphql-mesh/compose-cli",
    "Mesh v0 CLI": "mesh-legacy/node_modules/@graphql-mesh/cli",
}
HIVE = "hive"
RSS_LIMIT_MB = 150
WORKLOADS = ("posts", "storefront", "resilience")


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)  # noqa: S603
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def environment(peers: Path) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str] = {"python": platform.python_version()}
    for pkg in PY_PACKAGES + PY_OPTIONAL:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    versions["node"] = _cmd(["node", "--version"])
    versions["wrk"] = _cmd(["/usr/bin/wrk", "-v"]).split(" [")[0]
    for label, rel in NODE_PACKAGES.items():
        try:
            versions[label] = json.loads((peers / rel / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            versions[label] = "not installed"
    commit = _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "graftql_commit": commit + (" + uncommitted changes in src/" if dirty else ""),
        "versions": versions,
    }


def to_json(value: Any, indent: str = "") -> str:
    """JSON with one line per list item (e.g. per run) or short object: small and diffable."""
    compact = json.dumps(value, separators=(",", ":"))
    if isinstance(value, dict) and len(compact) > 100:
        inner = indent + " "
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        inner = indent + " "
        items = [inner + json.dumps(v, separators=(",", ":")) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return compact


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> str:
    return (
        f"{a / b:.2f}x" if isinstance(a, int | float) and isinstance(b, int | float) and b else "-"
    )


def _calls(cpq: dict[str, Any] | None) -> str:
    if not cpq:
        return "-"
    return " / ".join(f"{k} {v:.3f}" for k, v in cpq.items())


def problems(data: dict[str, Any]) -> list[str]:
    posts = data.get("posts", {})
    out = [f"peers workload: {posts['failed']}"] if "failed" in posts else []
    for name, t in data.get("posts", {}).get("targets", {}).items():
        if "failed" in t:
            out.append(f"{name}: {t['failed']}")
        for r in t.get("runs", []):
            if not r["valid"]:
                out.append(f"{name} round {r['round']} c={r['conc']}: {'; '.join(r['problems'])}")
    sf = data.get("storefront", {})
    if "failed" in sf:
        out.append(f"storefront: {sf['failed']}")
    for r in sf.get("runs", []):
        if not r["valid"]:
            out.append(f"storefront round {r['round']} c={r['conc']}: {'; '.join(r['problems'])}")
    rs = data.get("resilience", {})
    if "failed" in rs:
        out.append(f"resilience: {rs['failed']}")
    for r in rs.get("segments", []):
        if r["config"] == "healthy" and r["ok"] != r["queries"]:
            out.append(
                f"resilience round {r['round']} healthy: {r['queries'] - r['ok']} failed queries "
                f"without any chaos ({r.get('first_failure')})"
            )
    return out


def _posts_table(targets: dict[str, Any]) -> list[str]:
    hive = targets.get(HIVE, {}).get("summary", {})
    rows = [
        "| target | conc | req/s | p50 ms | p99 ms | CPU ms/query | peak RSS MB "
        "| users calls/q | posts calls/q | req/s vs Hive | p50 vs Hive | CPU vs Hive "
        "| valid runs | req/s per round |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, t in targets.items():
        for conc, s in t.get("summary", {}).items():
            h = hive.get(conc, {}) if t["kind"] != "reference" else {}
            cpq = s.get("calls_per_query", {})
            rounds = ", ".join(f"{x:.0f}" for x in s["rps_per_round"])
            shown = f"~~{name}~~ FAILED" if "failed" in t else name
            rows.append(
                f"| {shown} | {conc} | {_f(s.get('rps'), 0)} | {_f(s.get('p50_ms'), 2)} "
                f"| {_f(s.get('p99_ms'), 2)} | {_f(s.get('cpu_ms_per_query'), 2)} "
                f"| {_f(s.get('peak_rss_mb'), 0)} | {_f(cpq.get('users'), 3)} "
                f"| {_f(cpq.get('posts'), 3)} | {_ratio(s.get('rps'), h.get('rps'))} "
                f"| {_ratio(s.get('p50_ms'), h.get('p50_ms'))} "
                f"| {_ratio(s.get('cpu_ms_per_query'), h.get('cpu_ms_per_query'))} "
                f"| {s['valid_runs']}/{s['runs']} | {rounds} |"
            )
    return rows


def _exact_table(targets: dict[str, Any]) -> list[str]:
    rows = [
        "| target | dedup (configured) | 1 query | 100 sequential | 10 x 32 concurrent "
        "| in-flight dedup seen |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in targets.items():
        calls = t.get("exact_calls")
        if not calls:
            continue
        cells = [", ".join(f"{k} {v}" for k, v in sc["calls"].items()) for sc in calls.values()]
        burst = list(calls.values())[-1]
        seen = any(v < burst["queries"] for v in burst["calls"].values())
        rows.append(f"| {name} | {t['dedup']} | {' | '.join(cells)} | {'yes' if seen else 'no'} |")
    return rows


def _goals(data: dict[str, Any]) -> list[str]:
    targets = data.get("posts", {}).get("targets", {})
    g = targets.get("graftql", {}).get("summary", {})
    h = targets.get(HIVE, {}).get("summary", {})
    sf = data.get("storefront", {}).get("summary", {}).get("1", {})

    def get(s: dict[str, Any], conc: str, key: str) -> Any:
        return s.get(conc, {}).get(key)

    def calls1(name: str) -> int | None:
        ex = targets.get(name, {}).get("exact_calls", {}).get("1 query")
        return sum(ex["calls"].values()) if ex else None

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    def cmp(a: Any, b: Any, better: str) -> bool | None:
        if a is None or b is None:
            return None
        return bool(a >= b) if better == "higher" else bool(a <= b)

    g_rps, h_rps = get(g, "32", "rps"), get(h, "32", "rps")
    g_cpu, h_cpu = get(g, "32", "cpu_ms_per_query"), get(h, "32", "cpu_ms_per_query")
    g_p50, h_p50 = get(g, "1", "p50_ms"), get(h, "1", "p50_ms")
    peak = max((s.get("peak_rss_mb") or 0 for s in g.values()), default=None) or None
    ratio = sf.get("p50_over_critical_path")
    if "failed" in targets.get("graftql", {}):
        g = {}  # figures of a failed target do not count
    rows = [
        "| target (issue 3) | graftql | Hive Gateway (defaults) | met |",
        "|---|--:|--:|---|",
        f"| upstream calls for 1 query (users + posts) | {_f(calls1('graftql'), 0)} "
        f"| {_f(calls1(HIVE), 0)} | {verdict(cmp(calls1('graftql'), calls1(HIVE), 'lower'))} |",
        f"| req/s at c=32 (>= Hive, aim 1.5x) | {_f(g_rps, 0)} ({_ratio(g_rps, h_rps)}) "
        f"| {_f(h_rps, 0)} | {verdict(cmp(g_rps, h_rps, 'higher'))} |",
        f"| CPU ms/query at c=32 (<= Hive) | {_f(g_cpu, 2)} | {_f(h_cpu, 2)} "
        f"| {verdict(cmp(g_cpu, h_cpu, 'lower'))} |",
        f"| p50 ms at c=1 (< Hive) | {_f(g_p50, 2)} | {_f(h_p50, 2)} "
        f"| {verdict(None if g_p50 is None or h_p50 is None else g_p50 < h_p50)} |",
        f"| peak RSS MB under load (< {RSS_LIMIT_MB}) | {_f(peak, 0)} "
        f"| {_f(max((s.get('peak_rss_mb') or 0 for s in h.values()), default=None), 0)} "
        f"| {verdict(None if peak is None else peak < RSS_LIMIT_MB)} |",
        f"| storefront p50 at c=1 / critical path (<= 1.5) | {_f(ratio, 2)} | n/a "
        f"| {verdict(None if ratio is None else ratio <= 1.5)} |",
    ]
    return rows


def _storefront(sf: dict[str, Any]) -> list[str]:
    if "failed" in sf and "summary" not in sf:
        return [f"**FAILED:** {sf['failed']}"]
    lat, crit = sf["latency_ms"], sf["critical_path_ms"]
    rows = [
        f"The README's example query (`graftql.demo.runner.EXAMPLE_QUERY`) through one `graftql "
        f"serve` process (the demo's gateway.yaml, `--env production`) in front of the four demo "
        f"services (one process, {lat} ms fixed latency per upstream call). Critical path: "
        f"{sf['levels']} dependent levels x {lat} ms = {crit} ms.",
        "",
        "| conc | req/s | p50 ms | p99 ms | CPU ms/query | peak RSS MB "
        "| upstream calls/query | p50 / critical path | valid runs |",
        "|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for conc, s in sf.get("summary", {}).items():
        rows.append(
            f"| {conc} | {_f(s.get('rps'), 0)} | {_f(s.get('p50_ms'), 2)} "
            f"| {_f(s.get('p99_ms'), 2)} | {_f(s.get('cpu_ms_per_query'), 2)} "
            f"| {_f(s.get('peak_rss_mb'), 0)} | {_calls(s.get('calls_per_query'))} "
            f"| {_f(s.get('p50_over_critical_path'), 2)} | {s['valid_runs']}/{s['runs']} |"
        )
    rows += ["", "Exact upstream calls (per service, by route):", ""]
    for name, sc in sf.get("exact_calls", {}).items():
        detail = "; ".join(
            f"{svc} " + ", ".join(f"`{route}` {n}" for route, n in st.get("requests", {}).items())
            for svc, st in sc["detail"].items()
        )
        rows.append(f"- {name}: {detail}")
    if "failed" in sf:
        rows.append(f"\n**FAILED:** {sf['failed']}")
    return rows


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _pass(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "**FAIL**")


def _resilience(rs: dict[str, Any]) -> list[str]:
    if "failed" in rs and "summary" not in rs:
        return [f"**FAILED:** {rs['failed']}"]
    ch = rs["chaos"]
    fl, sl = ch["failing"], ch["slow"]
    summary: dict[str, Any] = rs["summary"]
    ov = rs["overrides"]
    rows = [
        f"The storefront query (`{rs['query']}`) against the four demo services (one process, "
        f"{rs['latency_ms']} ms fixed latency per upstream call, as in the storefront workload), "
        f"{rs['queries_per_config']:,} client queries per configuration in {rs['rounds']} "
        f"interleaved round(s), {rs['concurrency']} at a time from one asyncio httpx client "
        f"(closed loop), after {rs['warmup_queries']} healthy warm-up queries per gateway. A query "
        "**succeeds** when it is HTTP 200, has no `errors` and its `data` equal the healthy "
        "answer; every answer is checked. Latency is the client's, from send to the whole "
        "answer, for every query (failed ones included).",
        "",
        f"- **Chaos** (the services' `/__chaos`, seeded: round r uses seed {rs['seed']} + r for "
        f"{fl['upstream']} and {rs['seed']} + 100 + r for {sl['upstream']}): **{fl['upstream']}** "
        f"answers {fl['status']} to {_pct(fl['rate'], 0)} of its requests at random; "
        f"**{sl['upstream']}** adds {sl['extra_ms']} ms to {_pct(sl['rate'], 0)} of its requests.",
        "- **Gateways** (three `graftql serve` processes, the demo's gateway.yaml, "
        "`--env production`): "
        + "; ".join(f"`{gw}`: {_overrides(o)}" for gw, o in ov.items())
        + ". In-flight de-duplication is on in all of them (the default), so concurrent "
        "identical queries share their upstream calls: attempts per query are below the "
        f"{sum(rs['calls_one_query'].values())} calls of one query alone "
        f"({', '.join(f'{k} {v}' for k, v in rs['calls_one_query'].items())}), and one failed "
        "shared call fails every query that shares it.",
        "- Attempts: the services' own request counters (`/__stats`); retries and breaker "
        "changes: the gateways' events (`graftql.upstreams.events`). Injected: the services' "
        "draws, replayed from their seeds for the requests they counted.",
        "",
        "| configuration | queries | success rate (95 % CI) | failed | p50 ms | p99 ms | max ms "
        "| upstream attempts/query | retries/query | breaker opened "
        "| success per round | p99 per round |",
        "|---|--:|---|--:|--:|--:|--:|---|--:|--:|---|---|",
    ]
    for name, s in summary.items():
        lo, hi = s["success_95ci"]
        by = " / ".join(f"{k} {v:.3f}" for k, v in s["attempts_per_query_by_upstream"].items())
        rows.append(
            f"| **{name}**: {s['label']} | {s['queries']:,} | {_pct(s['success_rate'])} "
            f"({_pct(lo)} - {_pct(hi)}) | {s['queries'] - s['ok']:,} | {_f(s['p50_ms'], 1)} "
            f"| {_f(s['p99_ms'], 1)} | {_f(s['max_ms'], 0)} "
            f"| {_f(s['attempts_per_query'], 3)} ({by}) | {_f(s['retries_per_query'], 3)} "
            f"({s['retries']:,}) | {s['breaker_opened']} "
            f"| {', '.join(_pct(x, 1) for x in s['success_per_round'])} "
            f"| {', '.join(_f(x, 0) for x in s['p99_per_round'])} |"
        )
    rows += ["", "What the chaos did and what the clients saw:", ""]
    for name, s in summary.items():
        inj = "; ".join(_injected(svc, i) for svc, i in s["injected"].items())
        fails = ", ".join(f"`{k}` {v:,}" for k, v in s["failures"].items()) or "none"
        events = ", ".join(f"`{k}` {v:,}" for k, v in s["events"].items()) or "none"
        fu = s.get("failing_upstream")
        calls = ""
        if fu:
            calls = (
                f" {fu['upstream']}: {fu['calls']:,} calls after de-duplication, serving "
                f"{_f(fu['queries_per_call'], 1)} queries each on average; "
                f"{fu['failed_calls']:,} of them failed after their retries "
                f"({_pct(fu['call_failure_rate'])})"
            )
            if fu["failed_calls"]:
                calls += (
                    f", and each of those failed {_f(fu['queries_failed_per_failed_call'], 1)} "
                    "queries"
                )
            calls += "."
        rows.append(
            f"- **{name}**: injected: {inj or 'nothing'}. Failed queries: {fails}. "
            f"Gateway events: {events}.{calls}"
        )
    healthy = summary.get("healthy", {})
    rows += [
        "",
        f"### Against the goal (issue: >= {_pct(rs['goal']['success_rate'], 1)} success with the "
        f"policies, p99 <= {rs['goal']['p99']})",
        "",
        "| configuration | goal | measured | limit | result |",
        "|---|---|--:|--:|---|",
    ]
    for g in rs.get("goals", []):
        pct = "success" in g["goal"]
        value = _pct(g["value"]) if pct else f"{_f(g['value'], 1)} ms"
        limit = _pct(g["limit"], 1) if pct else f"{_f(g['limit'], 1)} ms"
        rows.append(f"| {g['config']} | {g['goal']} | {value} | {limit} | {_pass(g['passed'])} |")
    exp = rs.get("expected_success_if_independent", {})
    n_calls = rs["calls_one_query"].get(fl["upstream"])
    rows += [
        "",
        f"Healthy p99: {_f(healthy.get('p99_ms'), 1)} ms. If every {fl['upstream']} call failed "
        f"independently with probability {fl['rate']:g} and a query depended on {n_calls} of "
        f"them (one query alone makes {n_calls}), the best success rate a retry policy with A "
        "attempts could reach is (1 - rate^A)^calls: "
        + ", ".join(f"{k}: {_pct(v)}" for k, v in exp.items())
        + ". Figures are from a shared 2-core machine (client, gateways and services on the same "
        "CPUs): latencies are noisy, the success rates are what counts. The 95 % intervals "
        "assume independent queries; shared calls make failures come in small bursts, so the "
        "real uncertainty is somewhat wider.",
    ]
    rows += _reading(rs)
    if "failed" in rs:
        rows.append(f"\n**FAILED:** {rs['failed']}")
    return rows


def _reading(rs: dict[str, Any]) -> list[str]:
    """How the default policies did, in figures of this run."""
    pol = rs["summary"].get("policies", {})
    fu = pol.get("failing_upstream")
    d = rs.get("policy_defaults")
    if not fu or not d:
        return []
    r, b = d["retry"], d["breaker"]
    rows = [
        "",
        "Reading the default policies' figures:",
        "",
        f"- **Retries**: {fu['retries']:,} of {fu['calls']:,} {fu['upstream']} calls were "
        f"retried ({_pct(fu['retry_share'], 1)}); the retry budget allows "
        f"{_pct(r['budget'], 0)} of the calls + 3 per {r['budget_window']:g} s. With "
        f"{r['attempts']} attempts a call fails only when all of them fail: "
        f"{_pct(fu['call_failure_rate'])} of the calls here.",
        f"- **Breaker**: opened {pol['breaker_opened']} time(s); it opens when "
        f"{_pct(b['failure_rate'], 0)} of at least {b['minimum_calls']} calls in {b['window']:g} s "
        "failed.",
    ]
    if fu["failed_calls"]:
        rows.append(
            f"- **Shared calls**: each {fu['upstream']} call that failed after its retries failed "
            f"{_f(fu['queries_failed_per_failed_call'], 1)} client queries, while an average "
            f"call served {_f(fu['queries_per_call'], 1)}: a call whose first attempt failed "
            f"waits for its retry (backoff up to {r['base_delay']:g} s), and the identical "
            "queries that arrive meanwhile join it and share its outcome."
        )
    return rows


def _injected(service: str, inj: dict[str, int]) -> str:
    n = inj["requests"]
    parts = [
        f"{inj[k]:,} of {n:,} requests {k} ({_pct(inj[k] / n if n else None, 1)})"
        for k in ("failed", "slowed")
        if inj.get(k)
    ]
    return f"{service} " + (" and ".join(parts) or f"nothing in {n:,} requests")


def _flow(value: Any) -> str:
    """A value as YAML flow style: {attempts: 1}, false."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _overrides(o: dict[str, Any]) -> str:
    if not o:
        return "gateway.yaml as it is (default policies)"
    return " and ".join(f"`{k}: {_flow(v)}`" for k, v in o.items()) + " for every upstream"


def _settings(data: dict[str, Any]) -> str:
    st = data["settings"]
    parts = []
    if "posts" in data or "storefront" in data:
        parts.append(
            f"{st['rounds']} round(s) x {st['duration_s']:g} s per wrk run, concurrency "
            f"{' and '.join(str(c) for c in st['concurrency'])}, warm-up {st['warmup_s']:g} s "
            "at c=8 per target"
        )
    rs = data.get("resilience")
    if rs and "queries_per_config" in rs:
        parts.append(
            f"resilience: {rs['queries_per_config']:,} queries per configuration in "
            f"{rs['rounds']} round(s) at c={rs['concurrency']}"
        )
    return "; ".join(parts)


def _rel(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def earlier_results(folder: Path, exclude: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The result files in ``folder`` (not ``exclude``, not interrupted runs), newest first."""
    out = []
    for path in folder.glob("*.json"):
        if path.resolve() == exclude.resolve():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "date_utc" in data and not data.get("interrupted"):
            out.append((path, data))
    return sorted(out, key=lambda pd: str(pd[1]["date_utc"]), reverse=True)


def markdown_merged(runs: Sequence[tuple[Path, dict[str, Any]]]) -> str:
    """The page from several result files: each workload from the newest file that has it."""
    newest = sorted(runs, key=lambda pd: str(pd[1]["date_utc"]), reverse=True)
    merged: dict[str, Any] = {}
    sources: dict[Path, list[str]] = {}
    for path, data in newest:
        for workload in WORKLOADS:
            if workload in data and workload not in merged:
                merged[workload] = data[workload]
                sources.setdefault(path, []).append(workload)
    used = [(path, data) for path, data in newest if path in sources] or list(newest[:1])
    return markdown({**used[0][1], **merged}, used[0][0], used, sources)


def markdown(
    data: dict[str, Any],
    source: Path,
    used: Sequence[tuple[Path, dict[str, Any]]] = (),
    sources: dict[Path, list[str]] | None = None,
) -> str:
    env = data["environment"]
    v = env["versions"]
    used = list(used) or [(source, data)]
    sources = sources or {source: [w for w in WORKLOADS if w in data]}
    peers_env = next((d["environment"] for p, d in used if "posts" in sources.get(p, [])), env)
    pv = peers_env["versions"]
    files = " ".join(f"--report {_rel(p)}" for p, _ in used)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `bench/run.py` from {', '.join(f'`{_rel(p)}`' for p, _ in used)}; "
        f"re-generate this page with `.venv/bin/python bench/run.py {files}` (each workload "
        "from the newest of these files that has it). How to run and what each figure means: "
        "[bench/README.md](../bench/README.md).",
        "",
    ]
    for path, d in used:
        names = {"posts": "peers", "storefront": "storefront", "resilience": "resilience"}
        wls = ", ".join(names[w] for w in sources.get(path, []))
        lines.append(
            f"- **{wls.capitalize() or 'Run'}** (`{_rel(path)}`): {d['date_utc']} (UTC), run took "
            f"{d.get('elapsed_s', 0):.0f} s"
            + (" (**quick smoke run**)" if d["settings"].get("quick") else "")
            + f"; graftql {d['environment']['versions']['graftql']} at commit "
            f"{d['environment']['graftql_commit']}; {_settings(d)}"
        )
    lines += [
        f"- **Machine** (newest run): {env['nproc']} CPUs ({env['cpu_model']}), "
        f"{env['ram_gb']} GB RAM, Linux {env['kernel']}, 1-min load at start "
        f"{env['load_at_start'][0]}; wrk, the gateways and the upstreams share these CPUs (and "
        "the machine may be shared)",
        f"- **graftql:** Python {v['python']}, "
        f"strawberry-graphql {v['strawberry-graphql']}, graphql-core {v['graphql-core']}, "
        f"httpx {v['httpx']}, starlette {v['starlette']}, uvicorn {v['uvicorn']} "
        f"(uvloop {v['uvloop']}, httptools {v['httptools']}, orjson {v['orjson']})",
        f"- **Peers:** Node {pv['node']}; Hive Gateway {pv['Hive Gateway']} (runtime "
        f"{pv['Hive Gateway runtime']}) over a Mesh compose CLI {pv['Mesh compose CLI']} "
        f"supergraph; GraphQL Mesh v0 CLI {pv['Mesh v0 CLI']}; load generator {pv['wrk']}",
        "",
        "## Method",
        "",
        "- One process per gateway (Hive `--fork 1`, Mesh v0 `serve.fork: 1`, one `graftql serve` "
        "uvicorn worker), `NODE_ENV=production` / graftql `env: production`. No response caching "
        "anywhere; every client request reaches the upstreams. In-flight de-duplication of "
        "identical upstream GraphQL queries: on in Hive (defaults) and Mesh v0, off in "
        "`hive-nodedup`; for graftql the exact-calls table shows whether it happens.",
        "- Interleaved: in each round every target runs once at each concurrency, round-robin, so "
        "slow drifts in machine noise hit all targets alike; figures are medians over rounds "
        "(peak RSS: the maximum).",
        "- wrk 4.1 closed loop, `-t1 -cN`, keep-alive, `--timeout 10s`, one fixed POST (GET for "
        "`users-batch-direct`); latency from wrk's histogram.",
        "- Every answer is checked field by field (raw HTTP, as wrk sends it) before the runs and "
        "after them. A run counts only with zero wrk socket errors, every response 2xx with the "
        'verified body length and no `"errors"` in it (checked per response in wrk\'s Lua '
        "`response()`, for every target alike), and `bytes / requests` equal to the verified "
        "response size on the wire.",
        "- CPU ms/query: utime+stime of the process and its descendants (all threads, from "
        "`/proc/PID/stat`) over the run / requests completed. Peak RSS: VmHWM summed over the "
        "process tree, reset before each run (`/proc/PID/clear_refs`), read after it. For the "
        "`*-direct` references these describe the upstream itself.",
        "- Upstream calls/query in the wrk runs: the upstreams' own counters / requests completed "
        "(wrk does not count the <= conc requests in flight at the end, hence e.g. 1.004). The "
        "exact-calls tables have no such tail.",
        "",
        "## Peers workload",
        "",
        f"Query `{data.get('posts', {}).get('query', {}).get('query', '')}` (50 posts, 10 distinct "
        "authors): posts from the GraphQL upstream (:4002), authors from the REST batch endpoint "
        "`GET /users?ids=...` (:4001). Ratios are against Hive Gateway (defaults) at the same "
        "concurrency.",
        "",
    ]
    targets = data.get("posts", {}).get("targets", {})
    if targets:
        lines += _posts_table(targets)
        for name, t in targets.items():
            if "skipped" in t:
                lines.append(f"\n- **{name} skipped:** {t['skipped']}")
            elif "failed" in t:
                lines.append(f"\n- **{name} FAILED:** {t['failed']}")
        lines += ["", "### Exact upstream calls", "", *_exact_table(targets)]
        labels = "; ".join(f"`{n}` = {t['label']}" for n, t in targets.items())
        lines += ["", f"Targets: {labels}."]
    else:
        lines.append("(not run)")
    lines += ["", "## Storefront workload", ""]
    lines += _storefront(data["storefront"]) if "storefront" in data else ["(not run)"]
    lines += ["", "## Resilience workload", ""]
    lines += _resilience(data["resilience"]) if "resilience" in data else ["(not run)"]
    lines += ["", "## Against the targets of issue 3", "", *_goals(data)]
    found = problems(data)
    lines += ["", "## Problems", ""]
    lines += [f"- {p}" for p in found] if found else ["None: every run counted."]
    return "\n".join(lines) + "\n"


def console_summary(data: dict[str, Any]) -> str:
    out = ["", "MEDIANS"]
    for name, t in data.get("posts", {}).get("targets", {}).items():
        for conc, s in t.get("summary", {}).items():
            out.append(
                f"{name:18s} c={conc:<3s} {_f(s.get('rps'), 0):>7s} req/s  p50 "
                f"{_f(s.get('p50_ms'), 2):>7s}  p99 {_f(s.get('p99_ms'), 2):>7s}  cpu "
                f"{_f(s.get('cpu_ms_per_query'), 2)} ms/q  rss {_f(s.get('peak_rss_mb'), 0)} MB  "
                f"calls/q {_calls(s.get('calls_per_query'))}  valid {s['valid_runs']}/{s['runs']}"
            )
    for conc, s in data.get("storefront", {}).get("summary", {}).items():
        out.append(
            f"storefront         c={conc:<3s} {_f(s.get('rps'), 0):>7s} req/s  p50 "
            f"{_f(s.get('p50_ms'), 2):>7s}  p99 {_f(s.get('p99_ms'), 2):>7s}  cpu "
            f"{_f(s.get('cpu_ms_per_query'), 2)} ms/q  p50/critical path "
            f"{_f(s.get('p50_over_critical_path'), 2)}"
        )
    for name, s in data.get("resilience", {}).get("summary", {}).items():
        out.append(
            f"resilience {name:12s} {s['ok']:>6,}/{s['queries']:<6,} ok "
            f"{_pct(s['success_rate']):>9s}  p50 {_f(s['p50_ms'], 1):>6s}  p99 "
            f"{_f(s['p99_ms'], 1):>6s}  max {_f(s['max_ms'], 0):>5s} ms  attempts/q "
            f"{_f(s['attempts_per_query'], 3)}  retries {s['retries']}  "
            f"breaker opened {s['breaker_opened']}"
        )
    for g in data.get("resilience", {}).get("goals", []):
        out.append(
            f"resilience goal [{g['config']}] {g['goal']}: {g['value']} vs {g['limit']} -> "
            f"{'n/a' if g['passed'] is None else 'PASS' if g['passed'] else 'FAIL'}"
        )
    found = problems(data)
    out += ["", "PROBLEMS:" if found else "no problems: every run counted", *found]
    return "\n".join(out)
