"""One-off pending invoice items of a customer, billed on its next renewal invoice (issue 17 item 1)."""
