"""Webhook endpoints over HTTP: the routes of /v1/webhook_endpoints and POST /v1/events/{id}/redeliver (the use
cases live in webhooks.endpoints)."""
