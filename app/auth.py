"""Who is calling: a JWT (dashboard users and the gateway's service role) or an API key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

import jwt

from app.keys.service import KeyDirectory
from app.orgs.service import OrgDirectory
from app.settings import Settings


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    SERVICE = "service"
    API_KEY = "api_key"


# Roles a token may carry; API keys authenticate by their secret instead.
TOKEN_ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.SERVICE)


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

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}" if self.api_key_id else self.subject


def jwt_secret(settings: Settings) -> str:
    """The configured secret; in development one is generated once and kept locally."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.is_production:
        raise ConfigurationError("CREDITGRAPH_JWT_SECRET must be set in production")
    path = Path(settings.state_dir) / "jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def issue_token(secret: str, *, org: str, role: Role, subject: str, ttl: timedelta) -> str:
    now = datetime.now().astimezone()
    claims = {"sub": subject, "org": org, "role": str(role), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


class Authenticator:
    """Turns an ``Authorization`` header into a Principal; JWTs are cached after one check."""

    CACHE_SIZE = 10_000

    def __init__(self, secret: str, orgs: OrgDirectory, keys: KeyDirectory) -> None:
        self._secret = secret
        self._orgs = orgs
        self._keys = keys
        self._tokens: dict[str, tuple[Principal, int]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError(401, "missing Authorization: Bearer <token>")
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
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["sub", "org", "role", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "the token has expired") from None
        except jwt.InvalidTokenError:
            raise AuthError(401, "the token is not valid") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise AuthError(401, f"unknown role {claims['role']!r}") from None
        if role not in TOKEN_ROLES or not isinstance(claims["org"], str):
            raise AuthError(401, "the token is not valid")
        org = await self._orgs.by_slug(claims["org"])
        if org is None:
            raise AuthError(401, f"unknown organization {claims['org']!r}")
        principal = Principal(org.id, org.slug, role, str(claims["sub"]))
        if len(self._tokens) >= self.CACHE_SIZE:
            self._tokens.clear()
        self._tokens[token] = (principal, int(claims["exp"]))
        return principal
