"""Payments (one row per attempt to collect money) and refunds, through the merchant's gateway routing, with
the janitor that settles what a timeout or a crash left unknown."""
