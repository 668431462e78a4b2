"""API tokens: create (the secret is returned once), list, revoke, and authenticate."""

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth.errors import AuthenticationError
from app.auth.models import TOKEN_NAME_LIMIT, ApiToken
from app.auth.roles import ANONYMOUS_NAME, DEV_NAME, Principal, Role
from app.db.dialect import is_postgres
from app.db.pagination import Page, SortKey, fetch_page
from app.db.types import utcnow
from app.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from app.events.models import Event, EventType
from app.events.service import record_event

SECRET_PREFIX = "mg_"
# The secret's visible part kept for operators (enough to tell tokens apart, useless
# to guess the rest: 32 random bytes follow).
SHOWN_PREFIX = 10
SECRET_LIMIT = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
BOOTSTRAP_NAME = "admin"
# Revocations are announced on this channel (PostgreSQL), so every replica closes the
# revoked token's open subscriptions at once.
REVOKED_CHANNEL = "modelgraph_tokens"
# Session.info key: token ids this unit of work revoked, read after commit.
REVOKED = "modelgraph.revoked_tokens"
LAST_USED_EVERY = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """The stored form of a secret. Secrets are 256 random bits, so a plain sha256 is
    enough (no password stretching needed) and lets a request find its token by index."""
    # surrogatepass: a lone surrogate (JSON allows one) hashes to a digest no token has,
    # so it is "not valid" like any other wrong secret instead of failing to encode.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# The actors of requests without a token: a token may not pass for them in the audit trail.
RESERVED_NAMES = {ANONYMOUS_NAME, DEV_NAME}


def _check_name(name: str) -> None:
    if not name or len(name) > TOKEN_NAME_LIMIT:
        raise ValidationError(
            "name", f"must be 1 to {TOKEN_NAME_LIMIT} characters", TOKEN_NAME_LIMIT
        )
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            "name", "must start with a letter or digit and contain only letters, digits, . _ -"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValidationError("name", f"{name!r} is the actor of requests without a token")


async def get_token(session: AsyncSession, *, name: str) -> ApiToken | None:
    """The token called `name` (revoked or not), or None."""
    return (
        await session.execute(select(ApiToken).where(col(ApiToken.name) == name))
    ).scalar_one_or_none()


async def create_token(
    session: AsyncSession, *, name: str, role: Role, actor: str
) -> tuple[ApiToken, str]:
    """A new token and its secret, which is returned here once and never stored."""
    _check_name(name)
    if await get_token(session, name=name) is not None:
        raise AlreadyExistsError("token", "name", name)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        role=role.value,
        secret_hash=hash_secret(secret),
        prefix=secret[:SHOWN_PREFIX],
        created_by=actor,
    )
    session.add(token)
    await session.flush()
    await record_event(
        session, type=EventType.TOKEN_CREATED, actor=actor, payload={"name": name, "role": role}
    )
    return token, secret


async def list_tokens(
    session: AsyncSession, *, first: int, after: str | None, include_revoked: bool = True
) -> Page[ApiToken]:
    """Tokens in creation order."""
    stmt = select(ApiToken)
    if not include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    keys = [SortKey(ApiToken.id)]
    return await fetch_page(session, ApiToken, stmt, keys, first=first, after=after)


async def all_tokens(session: AsyncSession) -> list[ApiToken]:
    """Every token, in creation order (the CLI's list)."""
    return list((await session.execute(select(ApiToken).order_by(col(ApiToken.id)))).scalars())


async def revoke_token(session: AsyncSession, *, name: str, actor: str) -> ApiToken:
    """Revoke the token called `name`; it stops working at once. Revoking a revoked token
    changes nothing. The last active ADMIN token cannot be revoked (create another first)."""
    token = await get_token(session, name=name)
    if token is None:
        raise NotFoundError("token", "name", name)
    if token.revoked_at is not None:
        return token
    if token.role == Role.ADMIN and await _active_admins(session) <= 1:
        raise ConflictError(
            "name",
            f"{name} is the last active ADMIN token; create another ADMIN token first",
            actual="last active ADMIN",
        )
    token.revoked_at = utcnow()
    token.revoked_by = actor
    await session.flush()
    await record_event(session, type=EventType.TOKEN_REVOKED, actor=actor, payload={"name": name})
    if is_postgres(session):
        await session.execute(
            text("SELECT pg_notify(:channel, :id)"),
            {"channel": REVOKED_CHANNEL, "id": str(token.id)},
        )
    session.info.setdefault(REVOKED, set()).add(token.id)
    return token


async def _active_admins(session: AsyncSession) -> int:
    """How many ADMIN tokens are active, their rows locked until commit (PostgreSQL; on
    SQLite the writer lock serialises): two racing revocations cannot both pass."""
    stmt = select(col(ApiToken.id)).where(
        col(ApiToken.role) == Role.ADMIN.value, col(ApiToken.revoked_at).is_(None)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return len((await session.execute(stmt)).all())


def revocation_mark() -> Select[int | None]:
    """The newest revocation's event seq: it changes whenever any process revokes a token,
    and reading it is one step down the (type, seq) index."""
    return select(func.max(col(Event.seq))).where(col(Event.type) == EventType.TOKEN_REVOKED.value)


def revoked_in(session_info: dict) -> set[int]:
    """Token ids a committed unit of work revoked."""
    return session_info.get(REVOKED, set())


async def authenticate(session: AsyncSession, *, secret: str) -> tuple[Principal, ApiToken]:
    """The principal a secret stands for; AuthenticationError if it is unknown or revoked
    (one message for both, so a caller cannot probe which secrets once existed)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > SECRET_LIMIT:
        raise AuthenticationError("the token is not valid")
    stmt = select(ApiToken).where(col(ApiToken.secret_hash) == hash_secret(secret))
    token = (await session.execute(stmt)).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        raise AuthenticationError("the token is not valid (unknown or revoked)")
    assert token.id is not None
    return Principal(name=token.name, role=Role(token.role), token_id=token.id), token


def needs_touch(token: ApiToken) -> bool:
    """Whether the token's last use is stale enough to be written again."""
    return token.last_used_at is None or utcnow() - token.last_used_at > LAST_USED_EVERY


async def touch(session: AsyncSession, *, token_id: int) -> None:
    """Record that the token was used now (at most about once a minute per token)."""
    await session.execute(
        update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=utcnow())
    )


async def revoked_among(session: AsyncSession, *, token_ids: Iterable[int]) -> set[int]:
    """Which of these tokens are revoked (or gone)."""
    ids = set(token_ids)
    if not ids:
        return set()
    stmt = select(col(ApiToken.id)).where(
        col(ApiToken.id).in_(ids), col(ApiToken.revoked_at).is_(None)
    )
    active = set((await session.execute(stmt)).scalars())
    return ids - active


async def bootstrap_admin(session: AsyncSession, *, actor: str) -> str | None:
    """On a database with no tokens at all, create the first ADMIN token and return its
    secret; otherwise None. Two replicas starting at once: one wins, the other's unit of
    work fails on the unique name and it creates nothing."""
    if (await session.execute(select(func.count()).select_from(ApiToken))).scalar_one():
        return None
    _token, secret = await create_token(session, name=BOOTSTRAP_NAME, role=Role.ADMIN, actor=actor)
    return secret
