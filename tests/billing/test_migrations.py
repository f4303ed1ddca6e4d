"""The migration history stays one line: branches developed side by side are joined by a merge revision before
they land, so the next migration has one parent and `billing migrate` has one target."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from billing.db.migrate import alembic_config


def test_the_migrations_have_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("postgresql://unused/none")).get_heads()
    assert len(heads) == 1, f"several heads {heads}: add a merge revision whose down_revision names them all"
