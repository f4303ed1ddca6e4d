"""README.md works as written: its quick start is what `billing up` prints, and its walk-through runs, command by
command, against a real `billing up` (issue #12 item 20).

How the README is read (the convention for everyone who adds a section; README.md repeats it in a comment):

1. The "Quick start" has exactly two commands, `./scripts/up` and `./scripts/test`. The test starts `billing up`
   (what ./scripts/up runs once the virtualenv is installed) on a free port with a new data folder, on the
   machine's PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set (a database and a Redis prefix of its
   own), on embedded servers otherwise; the sample of its output in the README must match what it prints, line
   by line, with the variable parts (time, folder, ids, keys, port) stood in for.
2. Every ```sh block after the quick start is run, in order, as one walk-through, each command in its own
   `bash`. A command is a line and its continuation lines (a trailing backslash, or a quote still open); lines
   starting with `#` are comments.
3. `KEY=sk_...` and `API=http://127.0.0.1:8000` are the only assignments; the test sets `$KEY` to the printed
   secret key and `$API` to the server it started (README shows the default port).
4. A placeholder id `<prefix>_...` (`cus_...`, `plan_...`, `sub_...`, `in_...`, `pm_...`, `pay_...`, `tok_...`,
   `we_...`, `evt_...`, `clk_...`, `cpn_...`, `txr_...`, any `<letters>_...`) stands for the id of that prefix
   that the most recent earlier command returned: the answer's own `id`, or for a list the `id` of its first
   (newest) element. `sk_...` and `pk_...` are the demo merchant's printed keys, and `mer_...` is the printed
   demo merchant until a command returns another. So a section that uses an id must first create (or list) the
   object it means. `billing ...` commands run with the `billing` of this virtualenv, on the database of the
   `billing up` under test (they must exit 0; JSON they print counts as their answer).
5. Every command must answer 2xx, unless its last line ends with a comment `# → NNN ...` naming the status it
   documents (e.g. `# → 409`).
6. A comment line right after a command that starts with `# → {` documents part of its JSON answer: every key
   written there must have that value. If that line says `until`, the command is run again (for up to two
   minutes) until it does, as a person would while the worker catches up.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.billing.live import Up, base_env, billing_up
from tests.conftest import Servers

README = Path(__file__).resolve().parents[1] / "README.md"
POLL_DEADLINE = 120.0
PLACEHOLDER = re.compile(r"\b([a-z]{2,5})_\.\.\.")
EXPECT_STATUS = re.compile(r"#\s*→\s*(\d{3})\b")


@dataclass
class Command:
    text: str
    line: int
    status: int | None = None  # documented non-2xx status
    expect: dict[str, Any] = field(default_factory=dict)
    until: bool = False


def _blocks(readme: str) -> list[tuple[int, str, str]]:
    """(first line number, language, body) of every fenced block."""
    found = []
    for match in re.finditer(r"^```([^\n]*)\n(.*?)^```", readme, flags=re.M | re.S):
        found.append((readme.count("\n", 0, match.start()) + 2, match.group(1).strip(), match.group(2)))
    return found


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


def _commands(first_line: int, body: str) -> list[Command]:
    commands: list[Command] = []
    pending: list[str] = []
    start = first_line
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                if stripped.startswith("# →") and "{" in stripped and commands:
                    raw = stripped[stripped.index("{") : stripped.rindex("}") + 1]
                    commands[-1].expect = json.loads(raw)
                    commands[-1].until = "until" in stripped
                continue
            start = first_line + offset
        pending.append(line)
        text = "\n".join(pending)
        if _complete(text):
            status = EXPECT_STATUS.search(pending[-1])
            commands.append(Command(text=text, line=start, status=int(status.group(1)) if status else None))
            pending = []
    assert not pending, f"README line {start}: a command never ends (an open quote or a trailing backslash)"
    return commands


def walk_through(readme: str) -> list[Command]:
    """The commands of every sh block after the quick start, in order."""
    blocks = [b for b in _blocks(readme) if b[1] == "sh"]
    return [command for first, _, body in blocks[1:] for command in _commands(first, body)]


@dataclass
class Walk:
    up: Up
    ids: dict[str, str] = field(default_factory=dict)

    def substitute(self, command: Command) -> str:
        def replace(match: re.Match[str]) -> str:
            prefix = match.group(1)
            if prefix == "sk":
                return self.up.value("secret key:")
            if prefix == "pk":
                return self.up.value("publishable key:")
            if prefix == "mer" and prefix not in self.ids:
                return self.up.value("Demo merchant")
            assert prefix in self.ids, (
                f"README line {command.line}: {prefix}_... is used before any command returned a {prefix}_ id; "
                "create (or list) one first"
            )
            return self.ids[prefix]

        return PLACEHOLDER.sub(replace, command.text)

    def remember(self, answer: Any) -> None:
        if not isinstance(answer, dict):
            return
        if answer.get("object") == "list" and answer.get("data"):
            answer = answer["data"][0]
        identifier = answer.get("id")
        if isinstance(identifier, str) and "_" in identifier:
            self.ids[identifier.split("_", 1)[0]] = identifier

    def run(self, command: Command) -> tuple[int, Any]:
        text = self.substitute(command)
        database = {"DATABASE_URL": self.up.database_url} if self.up.database_url else {}
        env = {
            **base_env(BILLING_DATA_DIR=str(self.up.data_dir), **database),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KEY": self.up.value("secret key:"),
            "API": self.up.api,
        }
        # curl prints the status code after the body, on a line of its own.
        script = "curl() { command curl --write-out '\\n%{http_code}' \"$@\"; }\n" + text
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"README line {command.line}: {text}\n{result.stderr}"
        if "curl " not in text:
            try:
                return 200, json.loads(result.stdout)
            except json.JSONDecodeError:
                return 200, result.stdout
        body, _, code = result.stdout.rpartition("\n")
        try:
            answer = json.loads(body) if body.strip() else None
        except json.JSONDecodeError:
            answer = body
        return int(code), answer


def _matches(answer: Any, expect: dict[str, Any]) -> bool:
    return isinstance(answer, dict) and all(answer.get(key) == value for key, value in expect.items())


def _check_quick_start(readme: str, up: Up) -> None:
    quick_start = next(body for _, language, body in _blocks(readme) if language == "sh")
    commands = [line.split("#")[0].strip() for line in quick_start.splitlines() if line.strip()]
    assert commands == ["./scripts/up", "./scripts/test"]
    sample = next(
        body for _, language, body in _blocks(readme) if language == "" and "Billing engine ready" in body
    )
    printed = [line for line in up.printed if line.strip()]
    start = next(i for i, line in enumerate(printed) if line.startswith("Billing engine ready"))
    expected = [line for line in sample.splitlines() if line.strip()]
    assert len(printed[start:]) == len(expected), (printed[start:], expected)
    for shown, actual in zip(expected, printed[start:], strict=True):
        pattern = re.escape(shown)
        for variable in (r"2\\.3", r"/path/\\.billing", r"mer_\\.\\.\\.", r"sk_\\.\\.\\.", r"pk_\\.\\.\\."):
            pattern = re.sub(variable, r"\\S+?", pattern)
        pattern = pattern.replace("8000", str(up.port))
        assert re.fullmatch(pattern, actual), f"README shows {shown!r}, billing up prints {actual!r}"


@pytest.mark.timeout(900)
def test_the_readme_walk_through_runs_as_written(tmp_path: Path, servers: Servers) -> None:
    readme = README.read_text()
    commands = walk_through(readme)
    assert len(commands) > 40
    admin = servers.admin_database_url if os.environ.get("DATABASE_URL") else None
    redis = servers.redis_url if os.environ.get("REDIS_URL") else None
    with billing_up(tmp_path / "data", admin_database_url=admin, redis_url=redis) as up:
        _check_quick_start(readme, up)
        walk = Walk(up)
        for command in commands:
            assignment = re.match(r"([A-Z_]+)=(\S+)", command.text)
            if assignment:
                assert assignment.group(1) in ("KEY", "API"), (
                    f"README line {command.line}: only KEY and API are set"
                )
                if assignment.group(1) == "API":
                    assert assignment.group(2) == "http://127.0.0.1:8000", (
                        "API is the default address of billing up"
                    )
                continue
            deadline = time.monotonic() + POLL_DEADLINE
            while True:
                status, answer = walk.run(command)
                if not command.until or _matches(answer, command.expect) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            wanted = f"{command.status}" if command.status else "2xx"
            assert (status == command.status) if command.status else (200 <= status < 300), (
                f"README line {command.line} answered {status}, documented {wanted}:\n{command.text}\n{answer}"
            )
            if command.expect:
                assert _matches(answer, command.expect), (
                    f"README line {command.line} documents {command.expect}, answered {answer}"
                )
            if 200 <= status < 300:
                walk.remember(answer)
