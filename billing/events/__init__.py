"""The /v1/events routes over the outbox (webhooks.events)."""
