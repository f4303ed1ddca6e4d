"""Invoices: the document finance trusts. A draft can change; a finalized invoice cannot (a database trigger
enforces it), gets a gap-free number, and only moves along the transitions in `states.py`."""
