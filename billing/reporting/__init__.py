"""Finance reports and exports (SPEC §10): MRR and its movements, churn, receivables ageing, payment success,
revenue by month, dunning recovery, and CSV exports; read-only over the other features' tables."""
