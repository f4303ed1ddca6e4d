"""Customer notifications: emails queued in the caller's transaction (outbox) and sent by the worker."""
