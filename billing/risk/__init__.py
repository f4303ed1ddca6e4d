"""Risk checks (SPEC §9): the pure rules (`rules`), and the check every charge and new payment method passes
(`service`), with its stored decisions."""
