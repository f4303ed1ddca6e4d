"""The log safety net: any run of 13-19 digits (spaces or dashes allowed between them) that passes the Luhn check
is masked to its last four digits before a log record reaches any handler.

The code never logs a card number on purpose (numbers travel as `SecretPan`); this catches the accident: a
request body in an exception message, a debug line someone adds later. It is installed as a log record factory,
so it covers every handler of the process, including ones added after logging was configured (uvicorn's,
pytest's), and the exception text, which is rendered and masked when the record is created.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

from billing.luhn import luhn_valid

_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def redact_pans(text: str) -> str:
    """`text` with every Luhn-valid 13-19 digit run replaced by `[card ****1234]`."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return f"[card ****{digits[-4:]}]"
        return match.group(0)

    if not any(char.isdigit() for char in text):
        return text
    return _CANDIDATE.sub(mask, text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the record's message, arguments, exception and stack text in place."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the handler's problem to report, not ours
        return record
    redacted = redact_pans(message)
    if redacted != message or record.args:
        record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[0] is not None:
        rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact_pans(rendered)
        # Keep the type for handlers that look at it, drop the live exception whose str() is unmasked.
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact_pans(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_pans(record.stack_info)
    return record


_installed: dict[str, Callable[..., logging.LogRecord]] = {}


def install_pan_redaction() -> None:
    """Wrap the process's log record factory so every record is masked at creation. Idempotent."""
    if "previous" in _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    _installed["previous"] = previous
    logging.setLogRecordFactory(factory)


def uninstall_pan_redaction() -> None:
    """Restore the factory found by install (tests use this to prove the code logs no PAN even unmasked)."""
    previous = _installed.pop("previous", None)
    if previous is not None:
        logging.setLogRecordFactory(previous)
