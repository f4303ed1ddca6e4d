"""Test clocks: simulated time for a group of customers, advanced on demand (SPEC §4)."""
