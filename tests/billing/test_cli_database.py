"""`billing` commands that need only PostgreSQL find the embedded database of BILLING_DATA_DIR when DATABASE_URL is
unset, as `billing up` prints them (`billing users create --merchant ...`) and README's console part runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from tests.billing.live import base_env, billing_up


def _billing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing", *args], env=env, capture_output=True, text=True, timeout=180
    )


def _postgres_under(folder: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(folder) in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def test_database_commands_use_the_embedded_database_of_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(BILLING_DATA_DIR=str(data_dir))
    assert "DATABASE_URL" not in env
    with billing_up(data_dir, admin_database_url=None, redis_url=None) as up:
        merchant = up.value("Demo merchant")
        # While `billing up` runs: the command attaches to its server and leaves it running.
        created = _billing(
            env, "users", "create", "--merchant", merchant, "--email", "ops@example.com", "--role", "admin"
        )
        assert created.returncode == 0, created.stderr
        user = json.loads(created.stdout)
        assert (user["email"], user["role"]) == ("ops@example.com", "admin") and user["password"]
        keys = _billing(env, "keys", "list", "--merchant", merchant)
        assert keys.returncode == 0, keys.stderr
        assert {key["kind"] for key in json.loads(keys.stdout)} >= {"secret", "publishable"}
        assert _postgres_under(data_dir)
    assert _postgres_under(data_dir) == []
    # With nothing running: the command starts the server for itself, and stops it again.
    other = _billing(env, "merchants", "create", "Later")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["id"].startswith("mer_")
    assert _postgres_under(data_dir) == []


def test_without_an_embedded_database_the_commands_still_say_what_to_set(tmp_path: Path) -> None:
    result = _billing(base_env(BILLING_DATA_DIR=str(tmp_path / "empty")), "merchants", "create", "Nowhere")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert not (tmp_path / "empty" / "postgres").exists()
