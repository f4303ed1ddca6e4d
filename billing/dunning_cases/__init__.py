"""Dunning cases: the persistent side of smart retries (the pure rules are the top-level `dunning` package)."""
