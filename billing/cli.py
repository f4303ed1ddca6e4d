"""The `billing` command: up, serve, worker, migrate, merchants create (SPEC §2), users and keys (SPEC §10)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from billing.config import DEFAULT_PUBLIC_URL, ConfigError, Settings, load_settings


def _configure_logging() -> None:
    from billing.logs import configure_logging

    configure_logging()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from billing.runtime.listen import bind_socket, default_public_url, listening_url
    from billing.runtime.serving import APP_FACTORY, app_from_environment

    settings.require_urls()
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}): pass another --port."
        ) from None
    # Links in hosted pages, PDFs, portal sessions and emails: the address really bound, unless configured.
    default_public_url(listening_url(args.host, sock.getsockname()[1]))
    options: dict[str, Any] = {
        "host": args.host,
        "port": sock.getsockname()[1],
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": args.graceful_timeout,
    }
    if args.workers == 1:
        uvicorn.Server(uvicorn.Config(app_from_environment(), **options)).run(sockets=[sock])
    else:
        # Each worker process imports the factory and builds its own pools; all accept on the one socket.
        config = uvicorn.Config(APP_FACTORY, factory=True, workers=args.workers, **options)
        Multiprocess(config, sockets=[sock]).run()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from billing.worker.settings import run_worker

    settings.require_urls()
    if not settings.public_url:
        logging.getLogger("billing").warning(
            "BILLING_PUBLIC_URL is not set: links in the emails this worker writes point at %s. Set it to the "
            "address people reach `billing serve` at (`billing up` sets it for its worker).",
            DEFAULT_PUBLIC_URL,
        )
    asyncio.run(run_worker(settings, concurrency=args.concurrency, graceful_timeout=args.graceful_timeout))
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from billing.db.migrate import upgrade

    database_url, _ = settings.require_urls() if settings.redis_url else (settings.database_url, None)
    if not database_url:
        raise ConfigError("DATABASE_URL is not set: point it at PostgreSQL, or run `billing up`.")
    upgrade(database_url)
    print("database is at the latest schema", file=sys.stderr)
    return 0


def cmd_merchants_create(settings: Settings, args: argparse.Namespace) -> int:
    from billing.merchants.bootstrap import create_merchant_from_cli

    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set: point it at PostgreSQL, or run `billing up`.")
    merchant = asyncio.run(create_merchant_from_cli(settings, args.name))
    print(
        json.dumps(
            {
                "id": merchant.id,
                "name": merchant.name,
                "secret_key": merchant.secret_key,
                "publishable_key": merchant.publishable_key,
            }
        )
    )
    return 0


def _run_console_admin(work: Any) -> int:
    """Run a `billing users|keys` command; print its JSON result, or its error on stderr (exit 1)."""
    from billing.errors import BillingError

    try:
        result = asyncio.run(work)
    except BillingError as exc:
        print(f"billing: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.create_user(settings, args.merchant, args.email, args.role))


def cmd_users_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.reset_password(settings, args.email, args.merchant))


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.list_keys(settings, args.merchant))


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.create_key(settings, args.merchant, args.kind))


def cmd_keys_roll(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.roll_key(settings, args.merchant, args.key, args.expires_in_hours))


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from billing.console import admin

    return _run_console_admin(admin.revoke_key(settings, args.merchant, args.key))


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from billing.reporting.audit import audit_database

    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set: point it at PostgreSQL, or run `billing up`.")
    report, violations = asyncio.run(audit_database(settings.database_url, args.merchant, as_json=args.json))
    print(report)
    return 1 if violations else 0


def cmd_vault_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from billing.vault.rotation import rotate_with_settings

    report = asyncio.run(rotate_with_settings(settings, batch_size=args.batch_size))
    print(json.dumps(report.__dict__))
    if report.remaining:
        print(
            "some rows were locked by other transactions; run `billing vault rotate` again", file=sys.stderr
        )
        return 1
    return 0


def cmd_vault_generate_key(settings: Settings, args: argparse.Namespace) -> int:
    from billing.vault.keys import generate_key_line

    print(generate_key_line(args.key_id))
    return 0


def cmd_sandbox_gateway(settings: Settings, args: argparse.Namespace) -> int:
    if settings.is_production:
        raise ConfigError("the sandbox gateway is not available when BILLING_ENV=production.")
    if args.channel == "card":
        from billing.gateways.sandbox import run_standalone

        run_standalone(args.host, args.port)
    else:
        from billing.channels.standalone import run_standalone_channel

        run_standalone_channel(args.channel, args.host, args.port)
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from billing.runtime.up import run_up

    return run_up(settings, host=args.host, port=args.port)


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return int(text)

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing", description="Subscription and recurring-billing engine.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up",
        help="start everything for development (embedded PostgreSQL and Redis unless "
        "DATABASE_URL / REDIS_URL are set), print URLs and a demo key",
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.set_defaults(handler=cmd_up)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_whole_number(1, 64),
        default=1,
        help="API processes sharing the port (default 1); each has its own database pool (10 + 10 overflow)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_whole_number(1, 3600),
        default=30,
        help="seconds a stopping process (SIGTERM) gives its requests in flight to finish (default 30)",
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run the background worker and scheduler")
    worker.add_argument(
        "--concurrency",
        type=_whole_number(1, 1000),
        default=10,
        help="jobs this process runs at once (default 10); run more processes to use more cores",
    )
    worker.add_argument(
        "--graceful-timeout",
        type=_whole_number(0, 3600),
        default=30,
        help="seconds a stopping worker (SIGTERM) gives its running jobs to finish before cancelling them "
        "(default 30)",
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=cmd_migrate)

    audit = commands.add_parser(
        "audit",
        help="check the money invariants over every row (invoice totals, numbering, one invoice per period, "
        "refunds, payments, events of state changes, balance ledgers); exit code 1 when any is broken",
    )
    audit.add_argument("--merchant", default=None, help="only this merchant's rows (mer_...)")
    audit.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    audit.set_defaults(handler=cmd_audit)

    merchants = commands.add_parser("merchants", help="manage merchants")
    merchant_commands = merchants.add_subparsers(dest="merchants_command", required=True)
    create = merchant_commands.add_parser("create", help="create a merchant; prints id and keys as JSON")
    create.add_argument("name")
    create.set_defaults(handler=cmd_merchants_create)

    users = commands.add_parser("users", help="manage finance console users (SPEC §10)")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    user_create = user_commands.add_parser(
        "create", help="create a console user; prints id, email, role and the generated password (shown once)"
    )
    user_create.add_argument("--merchant", required=True, help="the merchant id (mer_...)")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--role", required=True, choices=["finance", "admin"])
    user_create.set_defaults(handler=cmd_users_create)
    user_reset = user_commands.add_parser(
        "reset-password",
        help="give a console user a new generated password (printed once); ends its sessions",
    )
    user_reset.add_argument("--email", required=True)
    user_reset.add_argument("--merchant", default=None, help="needed when the email has several merchants")
    user_reset.set_defaults(handler=cmd_users_reset_password)

    api_keys = commands.add_parser("keys", help="manage a merchant's API keys")
    key_commands = api_keys.add_subparsers(dest="keys_command", required=True)
    keys_list = key_commands.add_parser("list", help="list the merchant's keys (redacted) as JSON")
    keys_list.add_argument("--merchant", required=True)
    keys_list.set_defaults(handler=cmd_keys_list)
    keys_create = key_commands.add_parser("create", help="create a key; prints it once")
    keys_create.add_argument("--merchant", required=True)
    keys_create.add_argument("--kind", choices=["secret", "publishable"], default="secret")
    keys_create.set_defaults(handler=cmd_keys_create)
    keys_roll = key_commands.add_parser(
        "roll", help="replace a key: the new one works at once, the old one until its grace period ends"
    )
    keys_roll.add_argument("--merchant", required=True)
    keys_roll.add_argument("--key", required=True, help="the key id (key_...)")
    keys_roll.add_argument(
        "--expires-in-hours",
        type=int,
        default=None,
        help="grace period of the old key (default 24, 0 to 720)",
    )
    keys_roll.set_defaults(handler=cmd_keys_roll)
    keys_revoke = key_commands.add_parser("revoke", help="stop a key at once")
    keys_revoke.add_argument("--merchant", required=True)
    keys_revoke.add_argument("--key", required=True, help="the key id (key_...)")
    keys_revoke.set_defaults(handler=cmd_keys_revoke)

    vault = commands.add_parser("vault", help="manage the card vault's keys")
    vault_commands = vault.add_subparsers(dest="vault_command", required=True)
    rotate = vault_commands.add_parser(
        "rotate",
        help="re-wrap every card's data key under the first key of BILLING_VAULT_KEYS (online, in batches)",
    )
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.set_defaults(handler=cmd_vault_rotate)
    generate = vault_commands.add_parser(
        "generate-key", help="print a new key-encryption key as '<id>:<base64>' for BILLING_VAULT_KEYS"
    )
    generate.add_argument("--key-id", default=None)
    generate.set_defaults(handler=cmd_vault_generate_key)

    sandbox = commands.add_parser(
        "sandbox-gateway",
        help="run the sandbox card processor, or a channel's sandbox (--channel alipay|wechat_pay|unionpay|ecny), over HTTP "
        "(not in production)",
    )
    sandbox.add_argument(
        "--channel", choices=("card", "alipay", "wechat_pay", "unionpay", "ecny"), default="card"
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=9100)
    sandbox.set_defaults(handler=cmd_sandbox_gateway)
    return parser


# Commands that need only PostgreSQL: without DATABASE_URL they use the embedded database of BILLING_DATA_DIR
# (the one `billing up` runs), so `billing users create ...` works beside `./scripts/up` as printed.
DATABASE_COMMANDS = frozenset(
    {
        cmd_migrate,
        cmd_audit,
        cmd_merchants_create,
        cmd_users_create,
        cmd_users_reset_password,
        cmd_keys_list,
        cmd_keys_create,
        cmd_keys_roll,
        cmd_keys_revoke,
        cmd_vault_rotate,
    }
)


@contextmanager
def _embedded_database_if_unset(settings: Settings, needed: bool) -> Iterator[Settings]:
    """The settings, with the embedded PostgreSQL of the data dir when DATABASE_URL is unset and `billing up`
    made one there (attached to while `billing up` runs, else started for this command and stopped after)."""
    if (
        not needed
        or settings.database_url
        or not (settings.data_dir / "postgres" / "data" / "PG_VERSION").is_file()
    ):
        yield settings
        return
    from billing.runtime.embedded import EmbeddedPostgres

    server = EmbeddedPostgres.start(settings.data_dir)
    try:
        yield replace(settings, database_url=server.url)
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        handler: Any = args.handler
        with _embedded_database_if_unset(load_settings(), handler in DATABASE_COMMANDS) as settings:
            return int(handler(settings, args))
    except ConfigError as exc:
        print(f"billing: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        logging.shutdown()
