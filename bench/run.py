"""graftql beside GraphQL Mesh / Hive Gateway on the same upstreams, plus the storefront and
resilience workloads.

usage: .venv/bin/python bench/run.py [--rounds 3] [--duration 10] [--peers /work/peers]
                                     [--targets a,b,...] [--workloads posts,storefront,resilience]
                                     [--resilience-queries 3000] [--quick]
       .venv/bin/python bench/run.py --report bench/results/X.json [--report Y.json ...]
                                     (re-write the markdown; each workload from the newest file)

Starts every process it measures (the peers' through their own scripts), verifies every answer
field by field before and after, counts upstream calls, runs wrk round-robin over the targets,
stops everything it started (also on Ctrl-C), writes bench/results/<UTC>.json and
docs/benchmarks.md (with the workloads this run did not include taken from the newest earlier
result in bench/results/ that has them). Exit status 1 if any target failed or any run did not
count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import measure
import report
import resilience
import storefront
from procs import HarnessError, port_open
from targets import (
    BENCH,
    POSTS_PORT,
    QUERY,
    REPO,
    TARGETS,
    TARGETS_BY_NAME,
    USERS_PORT,
    Fleet,
    Target,
)

CONCS = [1, 32]
WORKLOADS = ("posts", "storefront", "resilience")
RUN_ERRORS = (HarnessError, OSError, ValueError, httpx.HTTPError, subprocess.SubprocessError)


def probe_of(t: Target) -> measure.Probe:
    return measure.Probe(t.port, t.method, t.path, t.body_bytes, t.check)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the valid runs of one (target, concurrency); peak RSS is the maximum."""
    valid = [r for r in runs if r["valid"]]
    out: dict[str, Any] = {
        "runs": len(runs),
        "valid_runs": len(valid),
        "rps_per_round": [r["rps"] for r in runs],
    }
    if not valid:
        return out
    for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_query", "cpu_cores", "rss_mb"):
        out[key] = statistics.median(r[key] for r in valid)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in valid)
    out["calls_per_query"] = {
        k: statistics.median(r["calls_per_query"][k] for r in valid)
        for k in valid[0]["calls_per_query"]
    }
    return out


def fail(entry: dict[str, Any], name: str, why: str) -> None:
    entry.setdefault("failed", why)
    print(f"FAILED {name}: {why}", flush=True)


def exact_calls(t: Target, entry: dict[str, Any], counters: measure.Counters) -> None:
    """Exact upstream calls per query; a wrong answer on the way fails the target."""
    calls = measure.count_calls(probe_of(t), counters)
    for sc in calls.values():
        for stats in sc["detail"].values():
            stats.pop("by_op", None)
    entry["exact_calls"] = calls
    print(f"exact upstream calls, {t.name}: { {k: v['calls'] for k, v in calls.items()} }")
    bad = sum(v["bad_answers"] for v in calls.values())
    if bad:
        first = next(v["first_bad"] for v in calls.values() if v["bad_answers"])
        fail(entry, t.name, f"{bad} wrong answers while counting calls: {first}")


def one_run(
    t: Target,
    pid: int,
    conc: int,
    rnd: int,
    duration: float,
    counters: measure.Counters,
    status: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    verdict = measure.Verdict(**status[t.name]["verify_before"])
    rec = measure.measure_run(probe_of(t), pid, conc, duration, counters, verdict)
    rec["round"] = rnd + 1
    users = rec.pop("calls_detail").get("users", {})
    if users.get("total"):
        rec["users_ids_per_call"] = round(users.get("ids_requested", 0) / users["total"], 2)
    flag = "" if rec["valid"] else "  INVALID: " + "; ".join(rec["problems"])
    print(
        f"round {rnd + 1} {t.name:18s} c={conc:<3d} {rec['rps']:8.1f} req/s "
        f"p50={rec['p50_ms']:7.2f}ms p99={rec['p99_ms']:7.2f}ms "
        f"cpu={rec['cpu_ms_per_query']}ms/q rss={rec['peak_rss_mb']}MB "
        f"calls/q={rec['calls_per_query']} load1={rec['load1']}{flag}",
        flush=True,
    )
    return rec


def run_posts(fleet: Fleet, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The peers workload: start, verify, count calls, interleaved wrk rounds, verify again."""
    res: dict[str, Any] = {"query": {"query": QUERY}, "targets": {}}
    status: dict[str, dict[str, Any]] = res["targets"]
    for name in names:
        t = TARGETS_BY_NAME[name]
        status[name] = {"label": t.label, "kind": t.kind, "port": t.port, "dedup": t.dedup}
    fleet.start_upstreams()
    counters = measure.StatsCounters(
        {"users": f"http://127.0.0.1:{USERS_PORT}", "posts": f"http://127.0.0.1:{POSTS_PORT}"}
    )
    live: list[Target] = []
    for name in names:
        t = TARGETS_BY_NAME[name]
        why = fleet.missing(t)
        if why:
            status[name]["skipped"] = why
            print(f"SKIPPED {name}: {why}", flush=True)
            continue
        try:
            fleet.start(t)
        except RUN_ERRORS as exc:
            fail(status[name], name, f"could not start: {exc}")
            continue
        verdict = measure.verify(probe_of(t))
        status[name]["verify_before"] = verdict.__dict__
        if not verdict.ok:
            fail(status[name], name, f"wrong answer before the runs: {verdict.reason}")
            continue
        print(
            f"verified {name}: {verdict.body_bytes} B body, {verdict.response_bytes} B on the wire"
        )
        live.append(t)

    for t in live:
        if t.kind != "reference":
            try:
                exact_calls(t, status[t.name], counters)
            except RUN_ERRORS as exc:
                fail(status[t.name], t.name, f"counting upstream calls: {exc!r}")

    live = [t for t in live if "failed" not in status[t.name]]
    for t in live:  # warm-up: JIT, connection pools, caches
        try:
            verdict = measure.Verdict(**status[t.name]["verify_before"])
            warm = measure.run_wrk(probe_of(t), 8, args.warmup, verdict.body_bytes)
            wrong = {k: v for k, v in warm.items() if k.startswith(("bad_", "err_")) and v}
            if wrong:
                fail(status[t.name], t.name, f"wrong responses during the warm-up: {wrong}")
        except RUN_ERRORS as exc:
            fail(status[t.name], t.name, f"warm-up: {exc!r}")
    measure.settle(counters)
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in live}
    for rnd in range(args.rounds):
        for t in live:
            if "failed" in status[t.name]:
                continue
            pid = fleet.pid(t.process)
            if pid is None:
                fail(status[t.name], t.name, f"process gone before round {rnd + 1}")
                continue
            for conc in CONCS:
                try:
                    runs[t.name].append(one_run(t, pid, conc, rnd, args.duration, counters, status))
                except RUN_ERRORS as exc:
                    fail(status[t.name], t.name, f"round {rnd + 1} c={conc}: {exc!r}")
                    break

    for t in live:
        verdict = measure.verify(probe_of(t))
        status[t.name]["verify_after"] = verdict.__dict__
        if not verdict.ok:
            fail(status[t.name], t.name, f"wrong answer after the runs: {verdict.reason}")
        status[t.name]["runs"] = runs[t.name]
        status[t.name]["summary"] = {
            str(c): summarize([r for r in runs[t.name] if r["conc"] == c]) for c in CONCS
        }
    return res


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--warmup", type=float, help="seconds of wrk c=8 per target first (3; quick 2)")
    p.add_argument("--peers", type=Path, default=Path("/work/peers"), help="the peers folder")
    p.add_argument("--targets", default=",".join(t.name for t in TARGETS), help="peers workload")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=", ".join(WORKLOADS))
    p.add_argument(
        "--resilience-queries",
        type=int,
        help=f"client queries per resilience configuration, over all rounds "
        f"({resilience.QUERIES}; quick {resilience.QUICK_QUERIES})",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round x 3 s")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/<UTC>.json)")
    p.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument(
        "--report",
        type=Path,
        action="append",
        help="only re-write the markdown from this JSON file (repeat it: each workload from the "
        "newest file that has it)",
    )
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.warmup is None:
        args.warmup = 2 if args.quick else 3
    if args.resilience_queries is None:
        args.resilience_queries = resilience.QUICK_QUERIES if args.quick else resilience.QUERIES
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 300:
        p.error("--rounds must be 1..20 and --duration 1..300 s")
    if not args.rounds <= args.resilience_queries <= 100_000:
        p.error("--resilience-queries must be at least --rounds and at most 100000")
    bad = [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workloads {bad}; known: {', '.join(WORKLOADS)}")
    unknown = [n for n in args.targets.split(",") if n not in TARGETS_BY_NAME]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {', '.join(TARGETS_BY_NAME)}")
    return args


def main() -> int:
    args = parse_args()
    if args.report:
        runs = [(path, json.loads(path.read_text())) for path in args.report]
        args.markdown.write_text(report.markdown_merged(runs))
        print(f"wrote {args.markdown}")
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    stamp = dt.datetime.now(dt.UTC)
    out = args.out or BENCH / "results" / f"{stamp:%Y%m%dT%H%M%SZ}.json"
    workloads = args.workloads.split(",")
    names = [n for n in args.targets.split(",") if n]
    data: dict[str, Any] = {
        "date_utc": stamp.isoformat(timespec="seconds"),
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": CONCS,
            "quick": args.quick,
            "workloads": workloads,
            "peers": str(args.peers),
        },
        "environment": report.environment(args.peers),
    }
    logs = BENCH / "results" / "tmp" / "logs"
    for old in logs.glob("*.log"):
        old.unlink()
    fleet = Fleet(args.peers.resolve(), logs)
    started = time.monotonic()
    interrupted = False
    try:
        if "posts" in workloads:
            try:
                data["posts"] = run_posts(fleet, names, args)
            except RUN_ERRORS as exc:
                traceback.print_exc()
                data["posts"] = {"failed": f"could not run: {exc!r}"}
                print(f"FAILED peers workload: {exc!r}", flush=True)
        if "storefront" in workloads:
            try:
                data["storefront"] = storefront.run_workload(
                    fleet, args.rounds, args.duration, args.warmup, CONCS
                )
            except RUN_ERRORS as exc:
                traceback.print_exc()
                data["storefront"] = {"failed": f"could not run: {exc!r}"}
                print(f"FAILED storefront: {exc!r}", flush=True)
        if "resilience" in workloads:
            data["settings"]["resilience_queries"] = args.resilience_queries
            try:
                data["resilience"] = resilience.run_workload(
                    fleet,
                    args.rounds,
                    args.resilience_queries,
                    resilience.QUICK_WARMUP_QUERIES if args.quick else resilience.WARMUP_QUERIES,
                )
            except (*RUN_ERRORS, RuntimeError) as exc:
                traceback.print_exc()
                data["resilience"] = {"failed": f"could not run: {exc!r}"}
                print(f"FAILED resilience: {exc!r}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping everything", file=sys.stderr, flush=True)
    finally:
        fleet.stop_all()
    data["elapsed_s"] = round(time.monotonic() - started, 1)
    data["interrupted"] = interrupted
    ports = {t.port for t in TARGETS} | set(range(storefront.BASE_PORT, storefront.BASE_PORT + 5))
    ports |= set(range(resilience.BASE_PORT + 1, resilience.BASE_PORT + 5))
    ports |= set(resilience.GATEWAY_PORTS.values())
    left = sorted(p for p in ports if port_open(p))
    if left:
        print(f"WARNING: still listening after the run: ports {left}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json(data) + "\n")
    print(f"wrote {out} ({data['elapsed_s']:.0f} s)")
    if interrupted:
        return 130
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    earlier = report.earlier_results(BENCH / "results", exclude=out)
    args.markdown.write_text(report.markdown_merged([(out, data), *earlier]))
    print(f"wrote {args.markdown}")
    print(report.console_summary(data))
    return 1 if report.problems(data) else 0


if __name__ == "__main__":
    sys.exit(main())
