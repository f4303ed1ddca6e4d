"""Documentation tooling: what renders docs/*.md from the code (example payloads, generated references). Outside
the product packages (billing, dunning, webhooks, plans), so it may import any of them; nothing of the product
imports it."""
