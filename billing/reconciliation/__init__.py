"""Reconciliation (SPEC §8): a connection's daily settlement listing matched against the engine's payments and
refunds. `matching` is pure; `service` imports the listing, stores the run and answers the API."""
