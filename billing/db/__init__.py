"""Persistence: the declarative base, the engine, and the one way to open a transaction."""
