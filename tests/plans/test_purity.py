"""The plans package is pure: it imports only the standard library, babel and dateutil, and never floats."""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

import pytest

PLANS = Path(__file__).resolve().parents[2] / "plans"
SOURCES = sorted(PLANS.glob("*.py"))
ALLOWED_THIRD_PARTY = {"babel", "dateutil", "plans"}


def test_the_package_has_modules_to_check() -> None:
    assert {path.name for path in SOURCES} >= {
        "money.py",
        "pricing.py",
        "calendar.py",
        "proration.py",
        "discounts.py",
        "taxes.py",
        "totals.py",
    }


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_plans_imports_only_the_standard_library_babel_and_dateutil(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    foreign = {
        name for name in imported if name not in sys.stdlib_module_names and name not in ALLOWED_THIRD_PARTY
    }
    assert foreign == set(), f"{path.name} imports {sorted(foreign)}"
    assert "billing" not in imported


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_plans_code_has_no_float_literals_float_calls_or_clock_reads(path: Path) -> None:
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    names = [token.string for token in tokens if token.type == tokenize.NAME]
    float_literals = [
        token.string
        for token in tokens
        if token.type == tokenize.NUMBER
        and any(c in token.string.lower() for c in ".e")
        and "x" not in token.string
    ]
    assert float_literals == [], f"{path.name} has float literals {float_literals}"
    assert "float" not in names, f"{path.name} mentions float outside strings"
    assert "now" not in names and "today" not in names, f"{path.name} reads the clock"
