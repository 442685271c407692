"""The ``graftql`` command: serve | demo | check.

Configuration problems print one line per problem, naming the key, and exit with status 2;
they never print a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from graftql._version import __version__
from graftql.config import (
    GatewayConfig,
    Secret,
    ServerConfig,
    UpstreamConfig,
    errors_of,
    load_config,
)
from graftql.errors import ConfigError

__all__ = ["main"]

EXIT_CONFIG = 2


def _fail(source: str, error: ConfigError) -> NoReturn:
    # One self-contained line per problem: file, key path, reason.
    for path, reason in error.errors:
        print(
            f"graftql: {source}: {path}: {reason}" if path else f"graftql: {reason}",
            file=sys.stderr,
        )
    raise SystemExit(EXIT_CONFIG)


def _with_overrides(config: GatewayConfig, args: argparse.Namespace) -> GatewayConfig:
    """Apply --host/--port/--env as if they were written under ``server:`` (and validate)."""
    changes = {k: v for k in ("host", "port", "env") if (v := getattr(args, k, None)) is not None}
    if not changes:
        return config
    # Only the server block is validated again: a dump of the rest would show secrets revealed
    # as literals, which validation rightly refuses.
    data = {**config.server.model_dump(), **changes}
    try:
        server = ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [(f"--{path.rpartition('.')[2]}", reason) for path, reason in errors_of(exc)]
        ) from None
    return config.model_copy(update={"server": server})


def _importable_cwd() -> None:
    # `schema: mymodule:schema` next to gateway.yaml should import, as with `uvicorn app:app`.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _serve(args: argparse.Namespace) -> int:
    from graftql.server.process import metrics_directory

    # Before anything imports prometheus_client: it picks its mode from the environment once.
    with metrics_directory(args.workers):
        return _run_server(args)


def _run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from graftql.server import create_app
    from graftql.server.logs import configure_logging
    from graftql.server.process import CONFIG_ENV, LOG_LEVEL_ENV, MODE_ENV, tune_gc

    _importable_cwd()
    try:
        config = _with_overrides(load_config(args.config), args)
        app = create_app(config)  # with several workers, only to find problems before they start
    except ConfigError as exc:
        _fail(args.config, exc)
    configure_logging(config, args.log_level)
    options: dict[str, Any] = {
        "host": config.server.host,
        "port": config.server.port,
        "log_level": args.log_level,
        "log_config": None,  # uvicorn's records go through graftql's handler (format, redaction)
        # Off: which proxies are believed is server.rate_limit.trusted_proxies alone. uvicorn's
        # own handling would trust X-Forwarded-For from any local process (docs/security.md).
        "proxy_headers": False,
        # permessage-deflate costs ~40 KB of zlib state per connection and ~25 us per message
        # for subscription events of a few hundred bytes (bench/fanout.py): off unless asked.
        "ws_per_message_deflate": config.server.websocket.compression,
    }
    if args.workers == 1:
        tune_gc()
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal so the
        # process ends the way its supervisor expects (143 for SIGTERM; Ctrl-C ends with 0).
        uvicorn.run(app, **options)
        return 0
    # Each worker is a new process that builds its own app from the same file.
    os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    os.environ[LOG_LEVEL_ENV] = args.log_level
    if args.env:
        os.environ[MODE_ENV] = args.env
    del app
    uvicorn.run("graftql.server.process:factory", factory=True, workers=args.workers, **options)
    return 0


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if not 1 <= workers <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, not {value!r}")
    return workers


def _describe_upstream(cfg: UpstreamConfig) -> str:
    parts = [cfg.kind, cfg.url, f"timeout {cfg.timeout:g}s"]
    if cfg.auth is not None:
        fields = [
            f"{key}=***" if isinstance(value, Secret) else f"{key}={value}"
            for key, value in cfg.auth
            if key != "type" and value not in (None, [], {})
        ]
        parts.append(f"auth {cfg.auth.type} ({', '.join(fields)})")
    if cfg.headers:
        shown = (f"{k}={'***' if isinstance(v, Secret) else v}" for k, v in cfg.headers.items())
        parts.append("headers " + ", ".join(shown))
    if not cfg.required:
        parts.append("optional")
    return "  ".join(parts)


def _check(args: argparse.Namespace) -> int:
    from graftql.schema import load_schema
    from graftql.server.persisted import PersistedOperations

    _importable_cwd()
    try:
        config = load_config(args.config)
        persisted = PersistedOperations(config.server.persisted_operations)  # reads the manifest
        load_schema(config.schema_).build(config.server, trusted=persisted.trusted_hashes)
    except ConfigError as exc:
        _fail(args.config, exc)
    server = config.server
    onoff = {True: "on", False: "off"}
    print(f"{args.config}: OK")
    print(f"schema     {config.schema_}")
    print(
        f"server     {server.host}:{server.port}  {server.env}  "
        f"graphiql {onoff[server.graphiql_enabled]}  "
        f"introspection {onoff[server.introspection_enabled]}"
    )
    print(f"upstreams  {len(config.upstreams)}")
    width = max((len(name) for name in config.upstreams), default=0)
    for name, cfg in config.upstreams.items():
        print(f"  {name.ljust(width)}  {_describe_upstream(cfg)}")
    events = config.events
    if config.webhooks or events.polling or events.bus.backend != "memory":
        inbox = events.inbox
        where = inbox.path if inbox.backend == "sqlite" else inbox.backend
        print(f"events     bus {events.bus.backend}  inbox {inbox.backend} ({where})")
        for name, hook in config.webhooks.items():
            print(f"  POST /webhooks/{name}  {hook.scheme}  {len(hook.secrets)} secret(s)")
        for name, poll in events.polling.items():
            print(f"  poll {name}  {poll.upstream} GET {poll.path} every {poll.interval:g}s")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from graftql.demo.runner import run_demo

    return run_demo(host=args.host, port=args.port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graftql",
        description="graftql: one GraphQL endpoint in front of many upstreams.",
    )
    parser.add_argument("--version", action="version", version=f"graftql {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the gateway for a gateway.yaml")
    serve.add_argument("-c", "--config", default="gateway.yaml", help="path to gateway.yaml")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument(
        "--env", choices=["development", "production"], help="mode (overrides server.env)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes (default 1); metrics are summed over them",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="start the storefront demo services and a gateway in front of them"
    )
    demo.add_argument("--host", default="127.0.0.1", help="gateway listen address")
    demo.add_argument(
        "--port", type=int, default=8000, help="gateway port; the services use the next four"
    )
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check", help="validate a gateway.yaml without starting anything")
    check.add_argument("config", help="path to gateway.yaml")
    check.set_defaults(run=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
