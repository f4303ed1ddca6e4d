"""Entitlements: features, their values on plans, and what a customer may use now (SPEC §4 catalog)."""
