"""Process logging: plain lines on stderr, level from BILLING_LOG_LEVEL, card numbers masked in every record."""

from __future__ import annotations

import logging
import os

from billing.vault.redact import install_pan_redaction


def configure_logging() -> None:
    # The safety net of the card vault: any Luhn-valid 13-19 digit run is masked before a handler sees it.
    install_pan_redaction()
    level = os.environ.get("BILLING_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("arq.worker", "arq.jobs"):
        logging.getLogger(noisy).setLevel(
            max(
                logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else logging.INFO,
                logging.WARNING,
            )
        )
