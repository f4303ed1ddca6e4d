"""Risk decisions as the API and events show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from billing.api.schemas import ListResponse


class RiskReason(msgspec.Struct, kw_only=True):
    """One rule that added to the score: its name, what it saw, its points, and whether it blocks alone."""

    rule: str
    detail: str
    points: int
    blocking: bool


class RiskDecision(msgspec.Struct, kw_only=True):
    """One risk check: of a charge (`subject_type` payment) or a new card or agreement (payment_method, token)."""

    id: str
    object: Literal["risk_decision"] = "risk_decision"
    created_at: datetime
    subject_type: Literal["payment", "payment_method", "token"]
    subject: str
    customer: str | None
    amount: int | None
    currency: str | None
    outcome: Literal["allow", "review", "block"]
    score: int
    reasons: list[RiskReason]
    # For a held payment, once decided: {action: approved|refused, by, at}.
    review: dict[str, Any] | None = None


class RiskDecisionList(ListResponse[RiskDecision]):
    pass
