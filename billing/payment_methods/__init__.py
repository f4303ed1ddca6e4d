"""Payment methods (cards in the vault, attached to customers) and client-side card tokens."""
