"""Payment gateways: the adapter interface, the sandbox processor and its adapter, routing with failover and
circuit breakers, and the per-connection health and statistics kept in PostgreSQL."""
