"""Usage metering: ingestion of usage events (exactly once per merchant and event id) and their storage."""
