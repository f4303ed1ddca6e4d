"""Configuration read from the environment (SPEC §2): one immutable object, built once per process."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Environment = Literal["development", "test", "production"]
ENVIRONMENTS: tuple[Environment, ...] = ("development", "test", "production")
# The base of hosted, portal and email links when BILLING_PUBLIC_URL is unset and no server says where it listens.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and what to set it to."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    data_dir: Path
    env: Environment
    redis_prefix: str = "billing"
    max_body_bytes: int = 1_048_576
    vault_keys: str | None = None
    smtp_url: str | None = None
    # The From address of customer emails (BILLING_MAIL_FROM).
    mail_from: str = "billing@localhost"
    public_url: str | None = None
    # Gateway calls in flight at once in one process (BILLING_GATEWAY_CONCURRENCY); more wait for a slot, holding
    # no database connection.
    gateway_concurrency: int = 16
    # Requests made with one API key in progress at once in one process (BILLING_CONCURRENCY_PER_KEY); more wait
    # for a turn before taking a database connection, so one client cannot take the pool from the others.
    concurrency_per_key: int = 8
    # Origins whose browser pages may call the publishable-key routes (POST /v1/tokens): ("*",) is any origin.
    cors_origins: tuple[str, ...] = ("*",)
    # Rate limits (SPEC §3) as (requests per second, burst): per secret key (BILLING_RATE_LIMIT_PER_KEY), per
    # key on the usage ingestion routes, a budget of its own (BILLING_RATE_LIMIT_USAGE_PER_KEY), and per client
    # IP for requests without a secret key (BILLING_RATE_LIMIT_PER_IP).
    rate_limit_per_key: tuple[int, int] = (100, 200)
    rate_limit_usage_per_key: tuple[int, int] = (500, 1000)
    rate_limit_per_ip: tuple[int, int] = (20, 40)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def require_urls(self) -> tuple[str, str]:
        """Both server URLs, or a ConfigError telling the operator to set them or use `billing up`."""
        if not self.database_url or not self.redis_url:
            missing = [
                n for n, v in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url)) if not v
            ]
            raise ConfigError(
                f"{' and '.join(missing)} not set: point them at your PostgreSQL and Redis servers, "
                "or run `billing up`, which starts embedded ones for development."
            )
        return self.database_url, self.redis_url


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from environment variables, validating each one."""
    env_vars = dict(os.environ if environ is None else environ)
    env = env_vars.get("BILLING_ENV", "development").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"BILLING_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}.")
    max_body = env_vars.get("BILLING_MAX_BODY_BYTES", "1048576")
    if not max_body.isdigit() or int(max_body) < 1024:
        raise ConfigError("BILLING_MAX_BODY_BYTES must be an integer number of bytes, at least 1024.")
    gateway_concurrency = env_vars.get("BILLING_GATEWAY_CONCURRENCY", "16")
    if not gateway_concurrency.isdigit() or not 1 <= int(gateway_concurrency) <= 1000:
        raise ConfigError("BILLING_GATEWAY_CONCURRENCY must be a whole number from 1 to 1000 (default 16).")
    per_key = env_vars.get("BILLING_CONCURRENCY_PER_KEY", "8")
    if not per_key.isdigit() or not 1 <= int(per_key) <= 1000:
        raise ConfigError("BILLING_CONCURRENCY_PER_KEY must be a whole number from 1 to 1000 (default 8).")
    return Settings(
        database_url=env_vars.get("DATABASE_URL") or None,
        redis_url=env_vars.get("REDIS_URL") or None,
        data_dir=Path(env_vars.get("BILLING_DATA_DIR", ".billing")).expanduser().resolve(),
        env=env,
        redis_prefix=env_vars.get("BILLING_REDIS_PREFIX", "billing"),
        max_body_bytes=int(max_body),
        vault_keys=env_vars.get("BILLING_VAULT_KEYS") or None,
        smtp_url=_smtp_url(env_vars.get("SMTP_URL") or None),
        mail_from=_mail_from(env_vars.get("BILLING_MAIL_FROM") or "billing@localhost"),
        public_url=env_vars.get("BILLING_PUBLIC_URL") or None,
        gateway_concurrency=int(gateway_concurrency),
        concurrency_per_key=int(per_key),
        cors_origins=_cors_origins(env_vars.get("BILLING_CORS_ORIGINS") or "*"),
        rate_limit_per_key=_rate_limit(env_vars, "BILLING_RATE_LIMIT_PER_KEY", "100:200"),
        rate_limit_usage_per_key=_rate_limit(env_vars, "BILLING_RATE_LIMIT_USAGE_PER_KEY", "500:1000"),
        rate_limit_per_ip=_rate_limit(env_vars, "BILLING_RATE_LIMIT_PER_IP", "20:40"),
    )


_RATE_LIMIT = re.compile(r"([0-9]{1,7})(?::([0-9]{1,7}))?")


def _rate_limit(env_vars: dict[str, str], name: str, default: str) -> tuple[int, int]:
    """`RATE` or `RATE:BURST` (requests per second, and how many at once after a quiet spell; 2 × RATE when
    left out), both from 1 to 1,000,000."""
    value = (env_vars.get(name) or default).strip()
    match = _RATE_LIMIT.fullmatch(value)
    rate = int(match.group(1)) if match else 0
    burst = int(match.group(2) or 2 * rate) if match else 0
    if not (1 <= rate <= 1_000_000 and 1 <= burst <= 1_000_000):
        raise ConfigError(
            f"{name} must be RATE or RATE:BURST, whole numbers of requests from 1 to 1000000 (RATE per second, "
            f"BURST at once; default {default}), not {value!r}."
        )
    return rate, burst


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _cors_origins(value: str) -> tuple[str, ...]:
    """`*`, or a comma-separated list of exact origins (scheme://host[:port], as browsers send them)."""
    origins = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if origins == ("*",):
        return origins
    bad = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
    if bad or not origins:
        raise ConfigError(
            "BILLING_CORS_ORIGINS must be * (any origin) or a comma-separated list of origins such as "
            f"https://app.example.com,http://localhost:3000 (scheme, host and port only, no path), not {value!r}."
        )
    return origins


def _smtp_url(value: str | None) -> str | None:
    if value is not None and value.split("://", 1)[0].lower() not in ("smtp", "smtps"):
        raise ConfigError(
            "SMTP_URL must look like smtp://user:password@host:587?starttls=true or smtps://host:465; leave it "
            "unset to write customer emails as files into BILLING_DATA_DIR/outbox-mail/."
        )
    return value


def _mail_from(value: str) -> str:
    if "@" not in value or any(c.isspace() for c in value.strip()):
        raise ConfigError(
            f"BILLING_MAIL_FROM must be an email address such as billing@example.com, not {value!r}."
        )
    return value.strip()
