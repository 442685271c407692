"""The ``graftql`` command: serve | demo | check | status | token | graphiql-assets.

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
    InboundAuthConfig,
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
    # server.auth holds Secrets (dumped as '***'): it is kept as it is, not validated again.
    data = {**config.server.model_dump(exclude={"auth"}), **changes}
    try:
        server = ServerConfig.model_validate(data).model_copy(update={"auth": config.server.auth})
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

    def load() -> GatewayConfig:  # at start, and again on SIGHUP
        return _with_overrides(load_config(args.config), args)

    try:
        config = load()
        # With several workers, only to find problems before they start.
        app = create_app(config, reload_config=load if args.workers == 1 else None)
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
    from graftql.server.reload import WorkerSupervisor

    server_config = uvicorn.Config(
        "graftql.server.process:factory", factory=True, workers=args.workers, **options
    )
    # uvicorn.run's multiprocess mode, with a supervisor that checks the file before SIGHUP
    # replaces the workers.
    WorkerSupervisor(
        server_config, sockets=[server_config.bind_socket()], load=load, source=args.config
    ).run()
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


def _describe_inbound_auth(auth: InboundAuthConfig) -> str:
    source = next(
        f"{key}={'***' if isinstance(value, Secret) else value}"
        for key in ("secret", "public_key", "jwks_url", "jwks_file")
        if (value := getattr(auth, key)) is not None
    )
    parts = [",".join(auth.algorithms), source]
    if auth.issuer is not None:
        parts.append(f"issuer {auth.issuer}")
    if auth.audience:
        parts.append(f"audience {','.join(auth.audience)}")
    parts.append("anonymous allowed" if auth.anonymous else "token required")
    return "  ".join(parts)


def _check(args: argparse.Namespace) -> int:
    from graftql.schema import load_schema
    from graftql.server.persisted import PersistedOperations

    _importable_cwd()
    try:
        config = load_config(args.config)
        persisted = PersistedOperations(config.server.persisted_operations)  # reads the manifest
        load_schema(config.schema_).build(config.server, trusted=persisted.trusted_hashes)
        if config.server.graphiql_enabled and config.server.graphiql_assets is not None:
            from graftql.server.graphiql import OfflineGraphiQL

            OfflineGraphiQL(config.server.graphiql_assets)  # every file there, unchanged
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
    if server.auth is not None:
        print(f"auth       {_describe_inbound_auth(server.auth)}")
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


def _token(args: argparse.Namespace) -> int:
    from graftql.server.identity import mint_token

    claims: dict[str, str] = {"sub": args.sub}
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"graftql: --claim {item!r}: expected NAME=VALUE", file=sys.stderr)
            return EXIT_CONFIG
        claims[name] = value
    source = "the demo's gateway.yaml" if args.demo else args.config
    try:
        if args.demo:
            from graftql.demo.runner import demo_config

            config = demo_config({})
        else:
            config = load_config(args.config)
    except ConfigError as exc:
        _fail(source, exc)
    if config.server.auth is None:
        print(f"graftql: {source}: server.auth: not set; no token is needed", file=sys.stderr)
        return EXIT_CONFIG
    try:
        print(mint_token(config.server.auth, claims, ttl=args.ttl))
    except ValueError as exc:
        print(f"graftql: {source}: server.auth: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _ttl(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 366 * 86400:
        raise argparse.ArgumentTypeError(f"must be whole seconds from 1 to 31622400, not {value!r}")
    return seconds


def _status(args: argparse.Namespace) -> int:
    from graftql.status import EXIT_NO_ANSWER, EXIT_NOT_READY, fetch_status, render_status

    try:
        code, body = fetch_status(args.url, timeout=args.timeout)
    except ValueError as exc:
        print(f"graftql: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    return 0 if render_status(args.url, code, body, sys.stdout) else EXIT_NOT_READY


def _demo(args: argparse.Namespace) -> int:
    from graftql.demo.runner import run_demo

    return run_demo(host=args.host, port=args.port, graphiql_assets=args.graphiql_assets)


def _graphiql_assets(args: argparse.Namespace) -> int:
    from graftql.server.graphiql.install import AssetInstallError, install_assets

    try:
        written = install_assets(args.dir, npm=args.npm)
    except AssetInstallError as exc:
        print(f"graftql: graphiql-assets: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the directory cannot be written
        print(f"graftql: graphiql-assets: {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    print(f"GraphiQL's files are in {args.dir}; serve them with server.graphiql_assets: {args.dir}")
    return 0


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
    demo.add_argument(
        "--graphiql-assets",
        metavar="DIR",
        help="serve GraphiQL's files from DIR (see graphiql-assets) instead of a CDN",
    )
    demo.set_defaults(run=_demo)

    assets = commands.add_parser(
        "graphiql-assets",
        help="install GraphiQL's browser files from npm into a directory "
        "(for server.graphiql_assets: GraphiQL without a CDN)",
    )
    assets.add_argument("--dir", required=True, help="where to put them (created if needed)")
    assets.add_argument("--npm", help="the npm executable (default: npm on PATH)")
    assets.set_defaults(run=_graphiql_assets)

    check = commands.add_parser("check", help="validate a gateway.yaml without starting anything")
    check.add_argument("config", help="path to gateway.yaml")
    check.set_defaults(run=_check)

    token = commands.add_parser(
        "token",
        help="mint a token a gateway with a shared server.auth secret accepts (development)",
    )
    source = token.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--config", help="path to gateway.yaml")
    source.add_argument("--demo", action="store_true", help="for `graftql demo`")
    token.add_argument("--sub", required=True, help="the subject: who the token is for")
    token.add_argument(
        "--claim", action="append", default=[], metavar="NAME=VALUE", help="another claim"
    )
    token.add_argument("--ttl", type=_ttl, default=3600, help="seconds until it expires")
    token.set_defaults(run=_token)
    status = commands.add_parser(
        "status",
        help="a running gateway's readiness as a table (exit 1: not ready, 3: no answer)",
    )
    status.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway's base URL")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for /readyz")
    status.set_defaults(run=_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
