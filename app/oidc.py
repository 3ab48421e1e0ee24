"""JWTs from an enterprise's OIDC provider, so that its SSO signs people in.

The Authenticator sends here every JWT whose header does not say HS256 (HS256 tokens are
ours, checked against the shared secret). Here only RS256 and ES256 verify, with a key
from the provider's JWKS chosen by the header's ``kid``, and the issuer, the audience,
``sub``, ``exp`` and the org and role claims are all required. An HS256 token made with
the provider's public key as the HMAC secret therefore never meets that key, and "none"
verifies nowhere.

The provider is trusted for every organization of the deployment: its org claim names
the organization (by slug), its role claim the role, as for our own tokens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import jwt

from app.auth import AuthError, Claims, ConfigurationError, decode
from app.settings import Settings

ALGORITHMS = ["RS256", "ES256"]

log = logging.getLogger(__name__)


class Oidc:
    # A JWKS URL is fetched again after this long (seconds), so rotated keys are picked
    # up; an unknown kid refetches at once, at most once per cooldown.
    JWKS_LIFESPAN = 300.0
    JWKS_COOLDOWN = 30.0
    FETCH_TIMEOUT = 10.0

    def __init__(
        self,
        jwks: jwt.PyJWKSet | jwt.PyJWKClient,
        *,
        issuer: str,
        audience: str,
        org_claim: str = "org",
        role_claim: str = "role",
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._org_claim = org_claim
        self._role_claim = role_claim

    @classmethod
    def from_settings(cls, settings: Settings) -> Oidc | None:
        """The configured provider, None when there is none; ConfigurationError when
        it is configured only in part or its JWKS cannot be used."""
        issuer, audience = settings.oidc_issuer, settings.oidc_audience
        url, path = settings.oidc_jwks_url, settings.oidc_jwks_file
        if issuer is None:
            if audience or url or path:
                raise ConfigurationError("the OIDC settings need CREDITGRAPH_OIDC_ISSUER")
            return None
        if not audience:
            raise ConfigurationError("CREDITGRAPH_OIDC_ISSUER needs CREDITGRAPH_OIDC_AUDIENCE")
        if (url is None) == (path is None):
            raise ConfigurationError(
                "set one of CREDITGRAPH_OIDC_JWKS_URL and CREDITGRAPH_OIDC_JWKS_FILE"
            )
        jwks: jwt.PyJWKSet | jwt.PyJWKClient
        try:
            if path is not None:
                jwks = jwt.PyJWKSet.from_json(path.read_text())
            else:
                assert url is not None
                jwks = jwt.PyJWKClient(
                    url,
                    lifespan=cls.JWKS_LIFESPAN,
                    cooldown_duration=cls.JWKS_COOLDOWN,
                    timeout=cls.FETCH_TIMEOUT,
                )
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ConfigurationError(f"the OIDC JWKS cannot be used: {exc}") from None
        return cls(
            jwks,
            issuer=issuer,
            audience=audience,
            org_claim=settings.oidc_org_claim,
            role_claim=settings.oidc_role_claim,
        )

    async def verify(self, token: str, header: dict[str, Any]) -> Claims:
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError(401, "the token's header names no signing key (kid)")
        required = ["iss", "aud", "sub", "exp", self._org_claim, self._role_claim]
        claims = decode(
            token,
            await self._key(kid),
            ALGORITHMS,
            required,
            issuer=self._issuer,
            audience=self._audience,
        )
        return Claims(
            claims["sub"], claims[self._org_claim], claims[self._role_claim], int(claims["exp"])
        )

    async def _key(self, kid: str) -> jwt.PyJWK:
        unknown = AuthError(401, f"the token's signing key {kid!r} is not in the provider's JWKS")
        if isinstance(self._jwks, jwt.PyJWKSet):
            try:
                return self._jwks[kid]
            except KeyError:
                raise unknown from None
        try:
            # The client fetches with blocking urllib; a cached key comes back at once.
            return await asyncio.to_thread(self._jwks.get_signing_key, kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError):
            log.warning("the OIDC JWKS could not be loaded", exc_info=True)
            raise AuthError(503, "the identity provider's keys could not be loaded") from None
        except jwt.PyJWKClientError:
            raise unknown from None
