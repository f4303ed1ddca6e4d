"""Subscriptions: a customer on a plan, billed period after period from its anchor, with its status moving
only along the transitions in `states.py`."""
