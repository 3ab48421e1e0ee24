"""Who is calling: a JWT (dashboard users and the gateway's service role) or an API key."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from app.keys.service import KeyDirectory
from app.orgs.service import OrgDirectory
from app.settings import Settings

if TYPE_CHECKING:
    from app.oidc import Oidc


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    SERVICE = "service"
    API_KEY = "api_key"


# Roles a token may carry; API keys authenticate by their secret instead.
TOKEN_ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.SERVICE)
# The dashboards' roles: people, not the gateway and not API keys.
PEOPLE = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER)
# The ledger lists every key's calls: not for an API key, which sees only its own.
LEDGER_READERS = (*PEOPLE, Role.SERVICE)


class AuthError(Exception):
    """The request carries no usable credentials (401) or is not allowed (403)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class ConfigurationError(RuntimeError):
    """The process is configured in a way it refuses to run with."""


@dataclass(frozen=True, slots=True)
class Principal:
    organization_id: int
    organization_slug: str
    role: Role
    subject: str
    api_key_id: int | None = None
    secret_hash: str | None = None
    # Unix seconds when the token stops being valid (None: an API key, which has a row).
    expires_at: int | None = None

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}" if self.api_key_id else self.subject


def authorization(headers: Mapping[str, str]) -> str | None:
    """The request's credentials as an ``Authorization`` value. An API key may come as
    ``x-api-key: <key>`` instead (the Anthropic protocol's header, which ByteSpike's
    clients send); ``Authorization`` wins when both are given."""
    given = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if not given and api_key:
        return f"Bearer {api_key}"
    return given


def kept_secret(
    settings: Settings,
    configured: str | None,
    *,
    variable: str,
    file: str,
    make: Callable[[], str],
    why: str = "",
) -> str:
    """``configured`` when set; else in development a secret made once by ``make`` and
    kept in the state directory as ``file`` (readable by its owner only). Production
    refuses to run without the ``variable`` that configures it."""
    if configured:
        return configured
    if settings.is_production:
        raise ConfigurationError(f"{variable} must be set in production{why}")
    path = Path(settings.state_dir) / file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def jwt_secret(settings: Settings) -> str:
    """The configured secret; in development one is generated once and kept locally."""
    return kept_secret(
        settings,
        settings.jwt_secret,
        variable="CREDITGRAPH_JWT_SECRET",
        file="jwt-secret",
        make=lambda: secrets.token_urlsafe(48),
    )


def issue_token(secret: str, *, org: str, role: Role, subject: str, ttl: timedelta) -> str:
    now = datetime.now().astimezone()
    claims = {"sub": subject, "org": org, "role": str(role), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified JWT says about its caller, whichever issuer signed it."""

    subject: object
    org: object
    role: object
    expires: int


def decode(
    token: str,
    key: Any,
    algorithms: list[str],
    required: list[str],
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """``jwt.decode``, its failures as 401s saying what is wrong. The signature is checked
    before any claim, so only a genuinely signed token learns about its claims."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={"require": required},
            issuer=issuer,
            audience=audience,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "the token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(401, f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidIssuerError:
        raise AuthError(401, f"the token's issuer is not {issuer!r}") from None
    except jwt.InvalidAudienceError:
        raise AuthError(401, f"the token's audience does not include {audience!r}") from None
    except jwt.InvalidAlgorithmError:
        if jwt.get_unverified_header(token).get("alg") in algorithms:
            raise AuthError(401, "the token's algorithm does not match its signing key") from None
        raise AuthError(401, f"the token is not signed with {' or '.join(algorithms)}") from None
    except jwt.InvalidTokenError:
        raise AuthError(401, "the token is not valid") from None


class Authenticator:
    """Turns an ``Authorization`` header into a Principal; JWTs are cached after one check.

    A JWT whose header says HS256 is checked against the shared secret; with an OIDC
    provider configured, any other is the provider's (``app.oidc``). Each path accepts
    only its own algorithms, so the unsigned header choosing the path gains a forger
    nothing.
    """

    CACHE_SIZE = 10_000

    def __init__(
        self, secret: str, orgs: OrgDirectory, keys: KeyDirectory, oidc: Oidc | None = None
    ) -> None:
        self._secret = secret
        self._orgs = orgs
        self._keys = keys
        self._oidc = oidc
        self._tokens: dict[str, tuple[Principal, int]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError(401, "missing Authorization: Bearer <token> (or x-api-key: <key>)")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError(401, "the Authorization header must be 'Bearer <token>'")
        if credential.startswith("sk-"):
            return await self._api_key(credential)
        return await self._jwt(credential)

    async def _api_key(self, secret: str) -> Principal:
        ref = await self._keys.find(secret)
        if ref is None:
            raise AuthError(401, "the API key is not valid")
        org = await self._orgs.by_id(ref.organization_id)
        return Principal(
            org.id, org.slug, Role.API_KEY, f"api_key:{ref.id}", ref.id, ref.secret_hash
        )

    async def _jwt(self, token: str) -> Principal:
        now = int(datetime.now().timestamp())
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError(401, "the token is not valid") from None
        if self._oidc is not None and header.get("alg") != "HS256":
            claims = await self._oidc.verify(token, header)
        else:
            found = decode(token, self._secret, ["HS256"], ["sub", "org", "role", "exp"])
            claims = Claims(found["sub"], found["org"], found["role"], int(found["exp"]))
        principal = await self._principal(claims)
        if len(self._tokens) >= self.CACHE_SIZE:
            self._tokens.clear()
        self._tokens[token] = (principal, claims.expires)
        return principal

    async def _principal(self, claims: Claims) -> Principal:
        if not isinstance(claims.role, str) or claims.role not in TOKEN_ROLES:
            roles = ", ".join(TOKEN_ROLES)
            raise AuthError(401, f"unknown role {claims.role!r}: a token's role is one of {roles}")
        org = await self._orgs.by_slug(claims.org) if isinstance(claims.org, str) else None
        if org is None:
            raise AuthError(401, f"unknown organization {claims.org!r}")
        return Principal(
            org.id, org.slug, Role(claims.role), str(claims.subject), expires_at=claims.expires
        )
