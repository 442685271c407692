"""The resilience workload: the storefront query while upstreams fail and stall, with and without
the policies.

The four demo services run in one process (``bench/storefront.py`` as a script, 5 ms fixed
latency per counted request, as in the storefront workload). Three ``graftql serve`` processes run
the demo's gateway.yaml in front of them, differing only in their upstream policies:

- ``policies``: the defaults (retries on with 3 attempts, breaker on), exactly as gateway.yaml has
  them; it also serves the ``healthy`` configuration (no chaos);
- ``no-policies``: ``retry: {attempts: 1}`` and ``breaker: {enabled: false}`` for every upstream;
- ``two-attempts``: the defaults but ``retry: {attempts: 2}`` (the default until 2026-11-27, when
  this workload showed it misses the success goal) for every upstream.

Chaos (the services' ``/__chaos``, seeded per round): crm answers 503 to 10 % of its requests at
random, catalog adds 200 ms to 5 % of its requests. In-flight de-duplication stays on everywhere
(it is not a failure policy), so concurrent identical queries share their upstream calls.

Every configuration gets the same fixed number of client queries, at a fixed concurrency, from
an asyncio httpx client that checks every answer: a query succeeds when it is HTTP 200, has no
``errors`` and its data equal the healthy answer. Configurations are interleaved round by round.
Attempts per query come from the services' ``/__stats``; retries and breaker changes from the
gateways' own events (``graftql.upstreams.events``), counted by this module when a gateway
imports it as its schema module (``schema: resilience:schema``) and written to a JSON file.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets import Fleet

BASE_PORT = 8110  # the services on 8111..8114
GATEWAY_PORTS = {"policies": 8120, "no-policies": 8121, "two-attempts": 8122}
LATENCY_MS = 5  # as the storefront workload
CONCURRENCY = 8
QUERIES = 3000  # client queries per configuration, over all rounds (--resilience-queries)
QUICK_QUERIES = 200
WARMUP_QUERIES = 200  # per gateway, healthy, not counted (--quick: 50)
QUICK_WARMUP_QUERIES = 50
SEED = 20261127  # round r: crm seed SEED + r, catalog seed SEED + 100 + r

FAILING, FAILURE_RATE, FAILURE_STATUS = "crm", 0.10, 503
SLOW, SLOW_RATE, SLOW_MS = "catalog", 0.05, 200

GOAL_SUCCESS = 0.995  # with policies
GOAL_P99_FACTOR = 2.0  # p99 with policies <= 2 x healthy p99 + SLOW_MS

EVENTS_ENV = "BENCH_EVENTS_FILE"


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    gateway: str  # a key of GATEWAY_PORTS
    chaos: bool


CONFIGS: tuple[Config, ...] = (
    Config("healthy", "no chaos, default policies", "policies", chaos=False),
    Config(
        "policies",
        "chaos, default policies (retry attempts 3, budget 0.2; breaker on)",
        "policies",
        chaos=True,
    ),
    Config(
        "no-policies",
        "chaos, no policies (retry attempts 1, breaker off)",
        "no-policies",
        chaos=True,
    ),
    Config(
        "two-attempts",
        "chaos, retry attempts 2 (the previous default) for every upstream",
        "two-attempts",
        chaos=True,
    ),
)
# The upstream policy overrides of each gateway, applied to every upstream of gateway.yaml.
OVERRIDES: dict[str, dict[str, Any]] = {
    "policies": {},
    "no-policies": {"retry": {"attempts": 1}, "breaker": {"enabled": False}},
    "two-attempts": {"retry": {"attempts": 2}},
}


def chaos_settings(rnd: int) -> dict[str, dict[str, Any]]:
    """The ``/__chaos`` changes of a chaos segment in round ``rnd`` (0-based), per service."""
    failing = {"failure_rate": FAILURE_RATE, "failure_status": FAILURE_STATUS, "seed": SEED + rnd}
    return {
        FAILING: failing,
        SLOW: {"slow_rate": SLOW_RATE, "slow_ms": SLOW_MS, "seed": SEED + 100 + rnd},
    }


# --- inside the gateway process: `schema: resilience:schema` -------------------------------


class EventCounts:
    """Counts the policies' events by ``"event upstream detail"``; a thread writes them to a file
    (atomically, at most every 0.1 s) for the harness to read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.version = 0

    def __call__(self, event: str, upstream: str, fields: dict[str, Any]) -> None:
        detail = fields.get("reason") or fields.get("state") or fields.get("by") or ""
        with self.lock:
            self.counts[f"{event} {upstream} {detail}".strip()] += 1
            self.version += 1

    def write(self) -> None:
        with self.lock:
            snapshot = dict(self.counts)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, sort_keys=True))
        os.replace(tmp, self.path)

    def run(self) -> None:
        written = -1
        while True:
            with self.lock:
                version = self.version
            if version != written:
                self.write()
                written = version
            time.sleep(0.1)


_counts: EventCounts | None = None


def _gateway_schema() -> Any:
    """The demo's schema; with ``BENCH_EVENTS_FILE`` set, the policies' events are counted."""
    global _counts
    from graftql.demo.schema import schema
    from graftql.upstreams import events

    path = os.environ.get(EVENTS_ENV)
    if path and _counts is None:
        _counts = EventCounts(Path(path))
        _counts.write()
        events.listen(_counts)
        threading.Thread(target=_counts.run, name="bench-events", daemon=True).start()
    return schema


def __getattr__(name: str) -> Any:
    if name == "schema":  # imported lazily: the harness never loads the demo schema
        return _gateway_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the harness ---------------------------------------------------------------------------


def read_events(path: Path) -> dict[str, int]:
    try:
        counts: dict[str, int] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return counts


def gateway_yaml(gateway: str, out_dir: Path) -> Path:
    """The demo's gateway.yaml with this module as the schema and ``OVERRIDES[gateway]``."""
    import yaml

    config = yaml.safe_load((files("graftql.demo") / "gateway.yaml").read_text())
    config["schema"] = "resilience:schema"
    for upstream in config["upstreams"].values():
        for key, value in OVERRIDES[gateway].items():
            merge = isinstance(value, dict)
            upstream[key] = {**upstream.get(key, {}), **value} if merge else value
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"resilience-{gateway}.yaml"
    head = f"# generated by bench/resilience.py: the demo's gateway.yaml, {gateway}\n"
    path.write_text(head + yaml.safe_dump(config, sort_keys=False))
    return path


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (p in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def wilson(ok: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (assumes independent queries)."""
    if n == 0:
        return (math.nan, math.nan)
    p = ok / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(percentile(ordered, 50), 2),
        "p90_ms": round(percentile(ordered, 90), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "p999_ms": round(percentile(ordered, 99.9), 2),
        "max_ms": round(ordered[-1], 2) if ordered else math.nan,
        "mean_ms": round(statistics.fmean(ordered), 2) if ordered else math.nan,
    }


def classify(status: int, content: bytes, want: Any) -> str | None:
    """None when the answer is right; otherwise a short reason used to count failures."""
    if status != 200:
        return f"HTTP {status}"
    try:
        body = json.loads(content)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict):
        return "not a JSON object"
    errors = body.get("errors")
    if errors:
        codes = sorted(
            {
                f"{(e.get('extensions') or {}).get('code', '?')} "
                f"{(e.get('extensions') or {}).get('upstream', '-')}"
                for e in errors
                if isinstance(e, dict)
            }
        )
        return "errors: " + ", ".join(codes)
    if body.get("data") != want:
        return "wrong data"
    return None


@dataclass
class Drive:
    """What the client saw over one segment."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: str | None = None
    wall_s: float = 0.0

    @property
    def queries(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return self.queries - sum(self.failures.values())


async def _drive(url: str, body: bytes, want: Any, queries: int, concurrency: int) -> Drive:
    import httpx
    import storefront

    out = Drive()
    left = queries
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json", "authorization": storefront.authorization()}
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    reason = classify(response.status_code, response.content, want)
                    detail = response.text[:300]
                except httpx.HTTPError as exc:
                    reason, detail = f"client: {type(exc).__name__}", repr(exc)
                out.latencies_ms.append((time.perf_counter() - started) * 1000)
                if reason is not None:
                    out.failures[reason] += 1
                    out.first_failure = out.first_failure or f"{reason}: {detail}"

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        out.wall_s = time.perf_counter() - t0
    return out


def drive(url: str, body: bytes, want: Any, queries: int, concurrency: int = CONCURRENCY) -> Drive:
    return asyncio.run(_drive(url, body, want, queries, concurrency))


def replay_chaos(settings: Mapping[str, Any], requests: int) -> dict[str, int]:
    """What the seeded chaos did to a service's first ``requests`` requests after it was set:
    the same draws, from the same seed, as the service made (one set of draws per request)."""
    from graftql.demo.services.common import ChaosSettings, draw_chaos

    chaos = ChaosSettings().updated(settings)
    rng = random.Random(chaos.seed)  # noqa: S311 - the services' own generator
    draws = [draw_chaos(chaos, rng) for _ in range(requests)]
    return {
        "requests": requests,
        "failed": sum(d.failure_status is not None for d in draws),
        "slowed": sum(d.slow for d in draws),
    }


class Services:
    """The services' admin routes: reset (counters, chaos back to the fixed latency), chaos."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        import measure

        self.urls = dict(urls)
        self.counters = measure.StatsCounters(urls)

    def prepare(self, chaos: Mapping[str, Mapping[str, Any]]) -> None:
        """Reset everything (re-seeding), then set ``chaos``; check every service's settings."""
        import httpx

        self.counters.reset()
        with httpx.Client(timeout=10, trust_env=False) as client:
            for name, changes in chaos.items():
                client.post(self.urls[name] + "/__chaos", json=dict(changes)).raise_for_status()
            for name, url in self.urls.items():
                got = client.get(url + "/__chaos").json()
                want = {"latency_ms": LATENCY_MS, **chaos.get(name, {})}
                if any(got.get(k) != v for k, v in want.items()) or (
                    name not in chaos and (got["failure_rate"] or got["slow_rate"])
                ):
                    raise RuntimeError(f"{name}: chaos is {got}, wanted {want}")

    def settled_counts(self) -> dict[str, dict[str, Any]]:
        import measure

        return measure.settle(self.counters)


def segment(
    cfg: Config,
    rnd: int,
    queries: int,
    services: Services,
    events_file: Path,
    url: str,
    body: bytes,
    want: Any,
) -> tuple[dict[str, Any], Drive]:
    """One configuration for ``queries`` client queries: chaos on, drive, count, chaos off."""
    import procs

    chaos = chaos_settings(rnd) if cfg.chaos else {}
    services.prepare(chaos)
    before = read_events(events_file)
    run = drive(url, body, want, queries)
    stats = services.settled_counts()
    time.sleep(0.3)  # the event file is rewritten at most every 0.1 s
    after = read_events(events_file)
    services.prepare({})
    events = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    attempts = {name: s["total"] for name, s in stats.items()}
    n = run.queries
    rec: dict[str, Any] = {
        "config": cfg.name,
        "round": rnd + 1,
        "queries": n,
        "ok": run.ok,
        "success_rate": round(run.ok / n, 5) if n else None,
        "failures": dict(run.failures.most_common()),
        "qps": round(n / run.wall_s, 1) if run.wall_s else None,
        **latency_summary(run.latencies_ms),
        "attempts": attempts,
        "attempts_per_query": round(sum(attempts.values()) / n, 4) if n else None,
        "retries": sum(v for k, v in events.items() if k.startswith("retry ")),
        "events": events,
        "injected": {name: replay_chaos(ch, attempts[name]) for name, ch in chaos.items()},
        "load1": procs.loadavg(),
    }
    if run.first_failure:
        rec["first_failure"] = run.first_failure[:400]
    return rec, run


def failing_calls(
    n: int,
    attempts: Mapping[str, int],
    events: Mapping[str, int],
    injected: Mapping[str, Mapping[str, int]],
    failures: Mapping[str, int],
    calls_per_query: int,
) -> dict[str, Any]:
    """The failing upstream's calls as the gateway made them (after de-duplication).

    Every failed attempt is either retried (one ``retry`` event) or its call's last one, so
    calls = attempts - retries and failed calls = failed attempts - retries.
    """
    retried = sum(v for k, v in events.items() if k.startswith(f"retry {FAILING} "))
    calls = attempts.get(FAILING, 0) - retried
    failed = injected.get(FAILING, {}).get("failed", 0) - retried
    lost = sum(v for k, v in failures.items() if k.endswith(f" {FAILING}") or f" {FAILING}," in k)
    return {
        "upstream": FAILING,
        "calls": calls,
        "retries": retried,
        "retry_share": round(retried / calls, 4) if calls else None,
        "failed_calls": failed,
        "call_failure_rate": round(failed / calls, 5) if calls else None,
        "queries_failed": lost,
        "queries_failed_per_failed_call": round(lost / failed, 2) if failed else None,
        # each query depends on calls_per_query calls; shared calls serve several queries
        "queries_per_call": round(n * calls_per_query / calls, 2) if calls else None,
    }


def summarize(
    cfg: Config, recs: list[dict[str, Any]], latencies: list[float], calls_per_query: int
) -> dict[str, Any]:
    n = sum(r["queries"] for r in recs)
    ok = sum(r["ok"] for r in recs)
    attempts: Counter[str] = Counter()
    events: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    injected: dict[str, Counter[str]] = {}
    for r in recs:
        attempts.update(r["attempts"])
        events.update(r["events"])
        failures.update(r["failures"])
        for name, inj in r["injected"].items():
            injected.setdefault(name, Counter()).update(inj)
    low, high = wilson(ok, n)
    retries = sum(v for k, v in events.items() if k.startswith("retry "))
    return {
        "label": cfg.label,
        "gateway": cfg.gateway,
        "chaos": cfg.chaos,
        "queries": n,
        "ok": ok,
        "success_rate": round(ok / n, 5) if n else None,
        "success_95ci": [round(low, 5), round(high, 5)],
        "success_per_round": [r["success_rate"] for r in recs],
        **latency_summary(latencies),
        "p99_per_round": [r["p99_ms"] for r in recs],
        "qps_per_round": [r["qps"] for r in recs],
        "attempts_per_query": round(sum(attempts.values()) / n, 4) if n else None,
        "attempts_per_query_by_upstream": {k: round(v / n, 4) for k, v in attempts.items()},
        "retries": retries,
        "retries_per_query": round(retries / n, 4) if n else None,
        "breaker_opened": sum(
            v for k, v in events.items() if k.startswith("breaker ") and k.endswith(" open")
        ),
        "events": dict(events.most_common()),
        "failures": dict(failures.most_common()),
        "injected": {k: dict(v) for k, v in injected.items()},
        "failing_upstream": (
            failing_calls(n, attempts, events, injected, failures, calls_per_query)
            if cfg.chaos
            else None
        ),
    }


def goals(summary: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals against the ``policies`` configuration (the defaults)."""
    healthy_p99 = summary.get("healthy", {}).get("p99_ms")
    bound = None if healthy_p99 is None else GOAL_P99_FACTOR * healthy_p99 + SLOW_MS
    out = []
    for name in ("policies",):
        s = summary.get(name)
        if not s:
            continue
        rate, p99 = s.get("success_rate"), s.get("p99_ms")
        out.append(
            {
                "config": name,
                "goal": f"success rate >= {100 * GOAL_SUCCESS:g} %",
                "value": rate,
                "limit": GOAL_SUCCESS,
                "passed": None if rate is None else rate >= GOAL_SUCCESS,
            }
        )
        out.append(
            {
                "config": name,
                "goal": f"p99 <= {GOAL_P99_FACTOR:g} x healthy p99 + {SLOW_MS} ms",
                "value": p99,
                "limit": None if bound is None else round(bound, 2),
                "passed": None if bound is None or p99 is None else p99 <= bound,
            }
        )
    return out


def expected_success(calls: int) -> dict[str, float]:
    """Success rate if every call to the failing upstream failed independently at the injected
    rate and ``calls`` of them lie under each query: (1 - rate ** attempts) ** calls."""
    return {f"attempts {a}": round((1 - FAILURE_RATE**a) ** calls, 5) for a in (1, 2, 3)}


def policy_defaults() -> dict[str, Any]:
    """graftql's defaults for the knobs that matter here (gateway.yaml sets none of them)."""
    from graftql.config import BreakerConfig, RetryConfig

    retry, breaker = RetryConfig(), BreakerConfig()
    return {
        "retry": {
            k: getattr(retry, k) for k in ("attempts", "base_delay", "budget", "budget_window")
        },
        "breaker": {
            k: getattr(breaker, k) for k in ("failure_rate", "minimum_calls", "window", "open_for")
        },
    }


def run_workload(fleet: Fleet, rounds: int, queries: int, warmup_queries: int) -> dict[str, Any]:
    """Start services and gateways, verify, warm up, interleaved segments, verify again."""
    import measure
    import procs
    import storefront
    import targets

    from graftql.demo.runner import EXAMPLE_QUERY

    urls = storefront.service_urls(BASE_PORT)
    argv = [sys.executable, str(Path(storefront.__file__).resolve())]
    argv += ["--base-port", str(BASE_PORT), "--latency-ms", str(LATENCY_MS)]
    fleet.start_process("resilience-services", argv, BASE_PORT + len(urls), targets.clean_env())
    for port in range(BASE_PORT + 1, BASE_PORT + len(urls)):
        procs.wait_port(port, 10)
    tmp = targets.BENCH / "results" / "tmp"
    events_files: dict[str, Path] = {}
    for gw, port in GATEWAY_PORTS.items():
        events_files[gw] = tmp / f"resilience-events-{gw}.json"
        events_files[gw].unlink(missing_ok=True)
        env = storefront.gateway_env(BASE_PORT)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(targets.BENCH), os.environ.get("PYTHONPATH", "")) if p
        )
        env[EVENTS_ENV] = str(events_files[gw])
        config = str(gateway_yaml(gw, tmp))
        argv = targets.graftql_argv(config, port, "--env", "production")
        fleet.start_process(f"graftql-resilience-{gw}", argv, port, targets.clean_env(env))
    services = Services(urls)
    services.prepare({})
    answer = storefront.expected_answer()
    body = json.dumps({"query": EXAMPLE_QUERY}).encode()
    result: dict[str, Any] = {
        "query": "graftql.demo.runner.EXAMPLE_QUERY",
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "queries_per_config": queries,
        "rounds": rounds,
        "warmup_queries": warmup_queries,
        "seed": SEED,
        "chaos": {
            "failing": {"upstream": FAILING, "rate": FAILURE_RATE, "status": FAILURE_STATUS},
            "slow": {"upstream": SLOW, "rate": SLOW_RATE, "extra_ms": SLOW_MS},
            "per_round": [chaos_settings(r) for r in range(rounds)],
        },
        "configs": {c.name: {"label": c.label, "gateway": c.gateway} for c in CONFIGS},
        "overrides": OVERRIDES,
        "policy_defaults": policy_defaults(),
        "ports": {"services": BASE_PORT + 1, **GATEWAY_PORTS},
        "goal": {
            "success_rate": GOAL_SUCCESS,
            "p99": f"{GOAL_P99_FACTOR:g} x healthy p99 + {SLOW_MS} ms",
        },
    }
    probes = {
        gw: measure.Probe(
            port, "POST", "/graphql", body, targets.expect(answer), storefront.authorization()
        )
        for gw, port in GATEWAY_PORTS.items()
    }
    result["verify_before"] = {}
    for gw, probe in probes.items():
        verdict = measure.verify(probe)  # also fetches the payments OAuth2 token once
        result["verify_before"][gw] = verdict.__dict__
        print(f"resilience verify {gw}: {'OK' if verdict.ok else 'FAILED ' + verdict.reason}")
        if not verdict.ok:
            result["failed"] = f"{gw}: wrong answer before the runs: {verdict.reason}"
            return result
    # upstream calls under one query, alone: how many crm calls a query depends on
    services.prepare({})
    one = drive(probes["policies"].url, body, answer["data"], 1, 1)
    single = {k: v["total"] for k, v in services.settled_counts().items()}
    result["calls_one_query"] = single
    result["expected_success_if_independent"] = expected_success(single[FAILING])
    if one.ok != 1:
        result["failed"] = f"a single healthy query failed: {one.first_failure}"
        return result
    for gw, probe in probes.items():  # warm-up, healthy, not counted
        warm = drive(probe.url, body, answer["data"], warmup_queries)
        print(f"resilience warm-up {gw}: {warm.ok}/{warm.queries} ok", flush=True)
    per_round = max(1, queries // rounds)
    recs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in CONFIGS}
    latencies: dict[str, list[float]] = {c.name: [] for c in CONFIGS}
    segments: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for cfg in CONFIGS:
            pid = fleet.pid(f"graftql-resilience-{cfg.gateway}")
            if pid is None:
                raise procs.HarnessError(f"the {cfg.gateway} gateway is not running")
            rec, run = segment(
                cfg,
                rnd,
                per_round,
                services,
                events_files[cfg.gateway],
                probes[cfg.gateway].url,
                body,
                answer["data"],
            )
            recs[cfg.name].append(rec)
            latencies[cfg.name].extend(run.latencies_ms)
            segments.append(rec)
            fails = ", ".join(f"{k} {v}" for k, v in rec["failures"].items()) or "-"
            print(
                f"round {rnd + 1} resilience {cfg.name:12s} {rec['ok']}/{rec['queries']} ok "
                f"({100 * rec['success_rate']:.2f} %) p50={rec['p50_ms']:.1f}ms "
                f"p99={rec['p99_ms']:.1f}ms max={rec['max_ms']:.0f}ms {rec['qps']} q/s "
                f"attempts/q={rec['attempts_per_query']} retries={rec['retries']} "
                f"failures: {fails}",
                flush=True,
            )
    result["verify_after"] = {}
    for gw, probe in probes.items():
        verdict = measure.verify(probe)
        result["verify_after"][gw] = verdict.__dict__
        if not verdict.ok:
            result["failed"] = f"{gw}: wrong answer after the runs: {verdict.reason}"
    result["segments"] = segments
    result["summary"] = {
        c.name: summarize(c, recs[c.name], latencies[c.name], single[FAILING]) for c in CONFIGS
    }
    result["goals"] = goals(result["summary"])
    return result
