"""Finance users of the console: creation and password reset (command line), login with lockout, and the login
sessions behind the console's cookie.

Passwords are generated (20 base62 characters, about 119 bits), shown once, and stored as argon2id hashes
(argon2-cffi's RFC 9106 defaults). Five consecutive failed logins lock the account for 15 minutes; the count
starts again after a successful login or once the lock has passed. A login with an unknown email costs the same
argon2 work as a known one, so response times do not tell which emails have accounts.

A session is a random 43-character token in an HttpOnly cookie; only its SHA-256 is stored. It ends at logout,
after 2 hours without a request, or 12 hours after login, whichever comes first. Each session has its own CSRF
token, which every console form carries.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.console.models import ConsoleSession, ConsoleUser
from billing.errors import Conflict, InvalidRequest, NotFound
from billing.ids import new_id, random_token
from billing.merchants.models import Merchant
from billing.merchants.service import hash_key

ROLES = ("finance", "admin")
PASSWORD_LENGTH = 20
LOCKOUT_THRESHOLD = 5
LOCKOUT_DURATION = timedelta(minutes=15)
SESSION_IDLE = timedelta(hours=2)
SESSION_MAX = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages does not write a row per request.
_SEEN_GRANULARITY = timedelta(minutes=1)
_TOKEN_LENGTH = 43
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that the answer takes as long as for a known email.
_DUMMY_HASH = _hasher.hash(random_token(PASSWORD_LENGTH))


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.fullmatch(value):
        raise InvalidRequest(f"{email!r} is not an email address such as finance@example.com.", param="email")
    return value


def generate_password() -> str:
    return random_token(PASSWORD_LENGTH)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LockState:
    failed_logins: int
    locked_until: datetime | None


def after_failed_login(failed_logins: int, locked_until: datetime | None, now: datetime) -> LockState:
    """The lock state after one more wrong password: the LOCKOUT_THRESHOLD-th consecutive failure locks the
    account for LOCKOUT_DURATION; a failure after an expired lock starts counting again from one."""
    if locked_until is not None and locked_until <= now:
        failed_logins = 0
    count = failed_logins + 1
    if count >= LOCKOUT_THRESHOLD:
        return LockState(failed_logins=count, locked_until=now + LOCKOUT_DURATION)
    return LockState(failed_logins=count, locked_until=None)


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


async def create_user(
    session: AsyncSession, merchant_id: str, email: str, role: str, now: datetime
) -> tuple[ConsoleUser, str]:
    """A console user of the merchant with a generated password; (the user, the password shown once)."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be finance or admin, not {role!r}.", param="role")
    address = normalize_email(email)
    if await session.scalar(select(Merchant.id).where(Merchant.id == merchant_id)) is None:
        raise NotFound(
            f"No merchant {merchant_id!r}. `billing merchants create NAME` prints the id.", param="merchant"
        )
    taken = await session.scalar(
        select(ConsoleUser.id).where(ConsoleUser.merchant_id == merchant_id, ConsoleUser.email == address)
    )
    if taken is not None:
        raise Conflict(
            f"{address} already has a console account ({taken}) at this merchant. Use `billing users "
            "reset-password` to give it a new password.",
            param="email",
        )
    password = generate_password()
    user = ConsoleUser(
        id=new_id("usr"),
        merchant_id=merchant_id,
        email=address,
        role=role,
        password_hash=hash_password(password),
        failed_logins=0,
        password_changed_at=now,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    return user, password


async def reset_password(
    session: AsyncSession, email: str, now: datetime, *, merchant_id: str | None = None
) -> tuple[ConsoleUser, str]:
    """A new generated password for the account of `email` (of `merchant_id` when the email has accounts at
    several merchants); the lock is lifted and every open session of the account ends."""
    address = normalize_email(email)
    stmt = select(ConsoleUser).where(ConsoleUser.email == address).with_for_update()
    if merchant_id is not None:
        stmt = stmt.where(ConsoleUser.merchant_id == merchant_id)
    users = list((await session.scalars(stmt)).all())
    if not users:
        where = f" at merchant {merchant_id}" if merchant_id else ""
        raise NotFound(f"No console account for {address}{where}.", param="email")
    if len(users) > 1:
        merchants = ", ".join(sorted(u.merchant_id for u in users))
        raise InvalidRequest(
            f"{address} has accounts at several merchants ({merchants}): say which with --merchant.",
            param="merchant",
        )
    user = users[0]
    password = generate_password()
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    await end_user_sessions(session, user.id, now)
    await session.flush()
    return user, password


@dataclass(frozen=True)
class LoginOutcome:
    """`user` on success; otherwise why not: "invalid" (unknown email or wrong password, never told apart) or
    "locked" (with `user`, whose `locked_until` says until when)."""

    result: str
    user: ConsoleUser | None = None
    just_locked: bool = False


async def check_login(session: AsyncSession, email: str, password: str, now: datetime) -> LoginOutcome:
    """Check a login form in the caller's transaction: counts a failure (and locks) or clears the count."""
    try:
        address = normalize_email(email)
    except InvalidRequest:
        password_matches(_DUMMY_HASH, password)
        return LoginOutcome("invalid")
    users = list(
        (
            await session.scalars(
                select(ConsoleUser)
                .where(ConsoleUser.email == address)
                .order_by(ConsoleUser.seq)
                .with_for_update()
            )
        ).all()
    )
    if not users:
        password_matches(_DUMMY_HASH, password)
        return LoginOutcome("invalid")
    # The same email may have an account at several merchants: the password says which one logs in.
    for user in users:
        if is_locked(user.locked_until, now):
            continue
        if password_matches(user.password_hash, password):
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            await session.flush()
            return LoginOutcome("ok", user)
    locked = [u for u in users if is_locked(u.locked_until, now)]
    if len(locked) == len(users):
        return LoginOutcome("locked", locked[0])
    just_locked = None
    for user in users:
        if is_locked(user.locked_until, now):
            continue
        state = after_failed_login(user.failed_logins, user.locked_until, now)
        user.failed_logins, user.locked_until = state.failed_logins, state.locked_until
        if state.locked_until is not None:
            just_locked = user
    await session.flush()
    if just_locked is not None:
        return LoginOutcome("locked", just_locked, just_locked=True)
    return LoginOutcome("invalid", users[0])


@dataclass(frozen=True)
class OpenedConsoleSession:
    row: ConsoleSession
    token: str


async def open_session(
    session: AsyncSession, user: ConsoleUser, now: datetime, *, locale: str | None = None
) -> OpenedConsoleSession:
    token = random_token(_TOKEN_LENGTH)
    row = ConsoleSession(
        id=new_id("cs"),
        user_id=user.id,
        merchant_id=user.merchant_id,
        token_hash=hash_key(token),
        csrf_token=secrets.token_urlsafe(32),
        locale=locale,
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_MAX,
    )
    session.add(row)
    await session.flush()
    return OpenedConsoleSession(row=row, token=token)


def session_is_live(row: ConsoleSession, now: datetime) -> bool:
    return row.ended_at is None and now < row.expires_at and now - row.last_seen_at < SESSION_IDLE


async def find_session(
    session: AsyncSession, token: str | None, now: datetime
) -> tuple[ConsoleSession, ConsoleUser] | None:
    """The live session behind a cookie and its user (its last_seen_at moved on), or None."""
    if not token or len(token) != _TOKEN_LENGTH or not token.isalnum():
        return None
    row = await session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))
    if row is None or not session_is_live(row, now):
        return None
    user = await session.get(ConsoleUser, row.user_id)
    if user is None:
        return None
    if now - row.last_seen_at >= _SEEN_GRANULARITY:
        row.last_seen_at = now
        await session.flush()
    return row, user


def csrf_matches(row: ConsoleSession, submitted: str | None) -> bool:
    return submitted is not None and secrets.compare_digest(row.csrf_token.encode(), submitted.encode())


async def end_session(session: AsyncSession, row: ConsoleSession, now: datetime) -> None:
    row.ended_at = now
    await session.flush()


async def end_user_sessions(session: AsyncSession, user_id: str, now: datetime) -> None:
    rows = await session.scalars(
        select(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
    )
    for row in rows:
        row.ended_at = now


async def set_session_locale(session: AsyncSession, row: ConsoleSession, locale: str) -> None:
    row.locale = locale
    await session.flush()
