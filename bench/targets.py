"""The targets of the peers workload, their expected answers, and the processes behind them.

A target is one HTTP endpoint that wrk drives with one fixed request. To add one, append a
:class:`Target` to ``TARGETS`` (see bench/README.md): give it a port, the request, the check of
its answer, the upstream calls it should cost, and how its process is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from procs import HarnessError, Managed, pidfile, start_managed

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
USERS_PORT, POSTS_PORT = 4001, 4002
QUERY = "{ posts(limit: 50) { id title author { id name } } }"
# exactly what the peers send upstream for one gateway query (see the peers' run_bench.py)
POSTS_DIRECT = "query($limit:Int){posts(limit:$limit){id title authorId}}"
USERS_BATCH_PATH = "/users?ids=" + "%2C".join(str(i) for i in range(1, 11))

Kind = Literal["reference", "peer", "graftql"]
Check = Callable[[Any], str | None]


def first_difference(got: Any, want: Any, path: str = "$") -> str | None:
    """The first place where ``got`` differs from ``want``, or None if they are equal."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object, got {type(got).__name__}"
        for key in want:
            if key not in got:
                return f"{path}.{key}: missing"
        for key in got:
            if key not in want:
                return f"{path}.{key}: unexpected field ({json.dumps(got[key])[:200]})"
        for key, value in want.items():
            diff = first_difference(got[key], value, f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{path}: expected a list, got {type(got).__name__}"
        if len(got) != len(want):
            return f"{path}: expected {len(want)} items, got {len(got)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff = first_difference(g, w, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if got != want or type(got) is not type(want):
        return f"{path}: expected {json.dumps(want)}, got {json.dumps(got)[:200]}"
    return None


def _author(i: int) -> str:
    return str(((i - 1) % 10) + 1)


GATEWAY_ANSWER = {
    "data": {
        "posts": [
            {
                "id": str(i),
                "title": f"Post {i}",
                "author": {"id": _author(i), "name": f"User {_author(i)}"},
            }
            for i in range(1, 51)
        ]
    }
}
POSTS_ANSWER = {
    "data": {
        "posts": [
            {"id": str(i), "title": f"Post {i}", "authorId": _author(i)} for i in range(1, 51)
        ]
    }
}
USERS_ANSWER = [
    {"id": str(i), "name": f"User {i}", "email": f"user{i}@example.com"} for i in range(1, 11)
]


def expect(answer: Any) -> Check:
    def check(body: Any) -> str | None:
        if isinstance(body, dict) and "errors" in body:
            return f"GraphQL errors: {json.dumps(body['errors'])[:300]}"
        return first_difference(body, answer)

    return check


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    kind: Kind
    port: int
    method: str = "POST"
    path: str = "/graphql"
    body: Mapping[str, Any] | None = field(default_factory=lambda: {"query": QUERY})
    check: Check = field(default=expect(GATEWAY_ANSWER))
    process: str = ""  # the name of its PID file (peers) or managed process (graftql)
    dedup: str = "n/a"  # in-flight de-duplication of identical upstream queries, as configured
    script: str = ""  # peers: the start script under scripts/, with script_env
    script_env: Mapping[str, str] = field(default_factory=dict)
    needs: str = ""  # peers: a file that must exist in the peers folder (node_modules)
    schema: str = ""  # graftql: BENCH_SCHEMA for bench/posts.yaml
    env: Mapping[str, str] = field(default_factory=dict)  # graftql: more environment
    config: str = "posts.yaml"  # graftql: the gateway.yaml in bench/

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def body_bytes(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()


HIVE_BIN = "mesh-compose/node_modules/@graphql-hive/gateway/dist/bin.js"
MESH_BIN = "mesh-legacy/node_modules/@graphql-mesh/cli/cjs/bin.js"

TARGETS: tuple[Target, ...] = (
    Target(
        "posts-direct",
        "posts upstream direct (the query a gateway sends)",
        "reference",
        POSTS_PORT,
        body={"query": POSTS_DIRECT, "variables": {"limit": 50}},
        check=expect(POSTS_ANSWER),
        process="posts",
    ),
    Target(
        "users-batch-direct",
        "users upstream direct, GET /users?ids=1..10",
        "reference",
        USERS_PORT,
        method="GET",
        path=USERS_BATCH_PATH,
        body=None,
        check=expect(USERS_ANSWER),
        process="users",
    ),
    Target(
        "hive",
        "Hive Gateway + Mesh compose supergraph (defaults)",
        "peer",
        4000,
        process="hive",
        dedup="on",
        script="start_hive.sh",
        script_env={"HIVE_NAME": "hive", "HIVE_PORT": "4000"},
        needs=HIVE_BIN,
    ),
    Target(
        "hive-nodedup",
        "Hive Gateway, in-flight dedup off",
        "peer",
        4004,
        process="hive-nodedup",
        dedup="off",
        script="start_hive.sh",
        script_env={
            "HIVE_NAME": "hive-nodedup",
            "HIVE_PORT": "4004",
            "HIVE_CONFIG": "gateway.nodedup.config.ts",
        },
        needs=HIVE_BIN,
    ),
    Target(
        "mesh-legacy",
        "GraphQL Mesh v0 `mesh start`",
        "peer",
        4003,
        process="mesh-legacy",
        dedup="on",
        script="start_mesh_legacy.sh",
        needs=MESH_BIN,
    ),
    Target(
        "graftql",
        "graftql (bench/posts_schema.py, batched loader)",
        "graftql",
        4010,
        process="graftql",
        dedup="on",
        schema="posts_schema:schema",
    ),
    Target(
        "graftql-nodedup",
        "graftql, in-flight dedup off (bench/posts-nodedup.yaml)",
        "graftql",
        4012,
        process="graftql-nodedup",
        dedup="off",
        schema="posts_schema:schema",
        config="posts-nodedup.yaml",
    ),
    Target(
        "graftql-naive",
        "graftql naive (no loaders: GET /users/{id} per post)",
        "graftql",
        4011,
        process="graftql-naive",
        dedup="off",
        schema="naive_schema:schema",
        config="posts-nodedup.yaml",  # with dedup on, concurrent GET /users/{id} would be shared
    ),
)
TARGETS_BY_NAME = {t.name: t for t in TARGETS}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: no proxies (loopback only), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def graftql_argv(config: str, port: int, *more: str) -> list[str]:
    exe = Path(sys.executable).with_name("graftql")
    head = (
        [str(exe)] if exe.exists() else [sys.executable, "-c", "import graftql.cli as c; c.main()"]
    )
    return [*head, "serve", "-c", config, "--port", str(port), "--log-level", "warning", *more]


class Fleet:
    """Every process of a benchmark run; :meth:`stop_all` stops exactly those, by PID."""

    def __init__(self, peers: Path, log_dir: Path) -> None:
        self.peers = peers
        self.log_dir = log_dir
        self.managed: dict[str, Managed] = {}
        self.peer_scripts_used = False
        self.composed = False

    # -- peers ---------------------------------------------------------------------------

    def missing(self, target: Target) -> str | None:
        """Why ``target`` cannot run here, or None."""
        if target.kind == "peer" and not (self.peers / target.needs).exists():
            folder = self.peers / target.needs.split("/")[0]
            return f"peer not installed: no {target.needs} (run `npm ci` in {folder})"
        return None

    def _script(
        self, name: str, extra: Mapping[str, str] | None = None, timeout: float = 180
    ) -> None:
        self.peer_scripts_used = True
        env = clean_env({"PEERS": str(self.peers), **(extra or {})})
        tag = "-".join([name.removesuffix(".sh"), *(extra or {}).values()][:2])
        log = self.log_dir / f"script-{tag}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            # its own process group: if we are interrupted, the script and whatever it runs in
            # the foreground (e.g. `mesh build`) are stopped with it
            proc = subprocess.Popen(  # noqa: S603
                ["/bin/bash", str(self.peers / "scripts" / name)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
                raise
        tail = log.read_text(errors="replace").strip().splitlines()[-2:]
        print(
            f"  peers: scripts/{name} {dict(extra or {})} -> rc {rc}: {' | '.join(tail)}",
            flush=True,
        )
        if rc != 0:
            raise HarnessError(f"scripts/{name} failed with status {rc} (see {log})")

    def start_upstreams(self) -> None:
        """users :4001 and posts :4002, with the peers' script if the peers' venv exists."""
        if not (self.peers / "upstreams" / "users_rest.py").exists():
            raise HarnessError(
                f"no peers folder with upstreams/ at {self.peers} (see bench/README.md)"
            )
        if (self.peers / "venv" / "bin" / "python").exists():
            self._script("start_upstreams.sh")
            return
        print(f"  {self.peers}/venv missing: running the upstreams with {sys.executable}")
        for name, port, module in (
            ("users", USERS_PORT, "users_rest"),
            ("posts", POSTS_PORT, "posts_graphql"),
        ):
            argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(self.peers / "upstreams")]
            argv += [f"{module}:app", "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--no-access-log", "--log-level", "warning"]
            self.managed[name] = start_managed(
                name, argv, port=port, cwd=self.peers, env=clean_env(), log_dir=self.log_dir
            )

    def start(self, target: Target) -> None:
        if target.kind == "reference":
            return
        if target.kind == "peer":
            if target.script == "start_hive.sh" and not self.composed:
                self.composed = True
                try:
                    self._script("compose_supergraph.sh")
                except HarnessError as exc:
                    print(f"  warning: {exc}; using the existing supergraph.graphql", flush=True)
            self._script(target.script, target.script_env)
            return
        env = clean_env(
            {
                "BENCH_SCHEMA": target.schema,
                "BENCH_USERS_URL": f"http://127.0.0.1:{USERS_PORT}",
                "BENCH_POSTS_URL": f"http://127.0.0.1:{POSTS_PORT}",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p
                ),
                **target.env,
            }
        )
        self.start_process(
            target.process, graftql_argv(target.config, target.port), target.port, env
        )

    def start_process(self, name: str, argv: list[str], port: int, env: Mapping[str, str]) -> None:
        self.managed[name] = start_managed(
            name, argv, port=port, cwd=BENCH, env=env, log_dir=self.log_dir
        )

    def pid(self, name: str) -> int | None:
        """The PID of a managed process or of a peers' PID file; None if it is not running."""
        if name in self.managed:
            return self.managed[name].pid if self.managed[name].alive() else None
        return pidfile(self.peers / "run" / f"{name}.pid")

    def stop_all(self) -> None:
        for name in reversed(list(self.managed)):
            try:
                self.managed[name].stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {name}: {exc}", file=sys.stderr)
        if self.peer_scripts_used:
            subprocess.run(  # noqa: S603
                ["/bin/bash", str(self.peers / "scripts" / "stop_all.sh")],
                env=clean_env({"PEERS": str(self.peers)}),
                timeout=120,
                check=False,
            )
