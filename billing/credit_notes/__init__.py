"""Credit notes (money given back on a finalized invoice) and the customer balance ledger as the API shows it."""
