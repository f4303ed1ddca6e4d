"""Events (the outbox of every state change), and later their signed delivery to webhook endpoints."""
