"""Alembic migrations; run them with `billing migrate`."""
