"""The background worker: arq jobs are thin wrappers that call use cases; PostgreSQL holds the state."""
