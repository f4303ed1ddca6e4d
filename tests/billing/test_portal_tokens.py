"""Portal link tokens (billing.portal.tokens): a token opens one session of one customer until one instant, and
any other token, changed anywhere, signed with another key or for another customer, opens nothing."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing.ids import new_id
from billing.portal import tokens

KEY = b"k" * 32
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
ALPHABET = string.ascii_letters + string.digits + "_-."


@given(moments)
def test_a_signed_token_reads_back_and_verifies_for_its_customer_only(expires: datetime) -> None:
    session_id, customer = new_id("ps"), new_id("cus")
    token = tokens.sign(KEY, session_id, customer, expires)
    parsed = tokens.parse(token)
    assert parsed is not None
    assert (parsed.session_id, parsed.expires_at) == (session_id, expires)
    assert tokens.verify(KEY, parsed, customer)
    assert not tokens.verify(KEY, parsed, new_id("cus"))
    assert not tokens.verify(secrets.token_bytes(32), parsed, customer)


@given(moments, st.data())
def test_a_token_changed_anywhere_opens_nothing(expires: datetime, data: st.DataObject) -> None:
    customer = new_id("cus")
    token = tokens.sign(KEY, new_id("ps"), customer, expires)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != token[index]))
    changed = token[:index] + replacement + token[index + 1 :]
    parsed = tokens.parse(changed)
    assert parsed is None or not tokens.verify(KEY, parsed, customer)


def test_the_link_shape_is_session_expiry_signature() -> None:
    expires = datetime(2027, 3, 1, 11, tzinfo=UTC)
    token = tokens.sign(KEY, "ps_" + "a" * 24, "cus_" + "b" * 24, expires)
    session_id, stamp, signature = token.split(".")
    assert session_id == "ps_" + "a" * 24 and int(stamp) == int(expires.timestamp()) and len(signature) == 43
    assert tokens.parse(token + "x") is None and tokens.parse("ps_x.1.y") is None
    later = tokens.parse(f"{session_id}.{int(stamp) + 1}.{signature}")
    assert later is not None and later.expires_at == expires + timedelta(seconds=1)
    assert not tokens.verify(KEY, later, "cus_" + "b" * 24)
