"""Merchants (the SaaS companies using the engine) and their API keys."""
