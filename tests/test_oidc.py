"""JWTs from an OIDC provider: RS256 and ES256 against a JWKS from a file or a local URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.auth import Authenticator, AuthError, ConfigurationError, Role
from app.oidc import Oidc
from app.settings import Settings
from tests.conftest import JWT_SECRET, Harness

ISSUER = "https://sso.example.com/"
AUDIENCE = "creditgraph"
VIEWER = "query { viewer { id role organization { slug } } }"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNING = {
    "rsa-1": (RSA_KEY, "RS256"),
    "ec-1": (EC_KEY, "ES256"),
    "rsa-2": (OTHER_RSA_KEY, "RS256"),
}


def jwk(kid: str) -> dict[str, Any]:
    key, alg = SIGNING[kid]
    to_jwk = RSAAlgorithm.to_jwk if alg == "RS256" else ECAlgorithm.to_jwk
    return {**to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


def jwks(*kids: str) -> dict[str, Any]:
    return {"keys": [jwk(kid) for kid in kids]}


def sign(kid: str = "rsa-1", header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A provider token for acme's admin; ``claims`` and ``header`` override (None removes)."""
    key, alg = SIGNING[kid]
    now = datetime.now(UTC)
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@sso",
        "org": "acme",
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    } | claims
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = {
        name: value for name, value in ({"kid": kid} | (header or {})).items() if value is not None
    }
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class JwksServer:
    """The provider's JWKS endpoint on a local port; ``keys`` can change between calls."""

    def __init__(self) -> None:
        self.keys = jwks("rsa-1", "ec-1")
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.keys).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def jwks_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JwksServer]:
    # A rotated key is looked up at once, not after the client's cooldown.
    monkeypatch.setattr(Oidc, "JWKS_COOLDOWN", 0.0)
    server = JwksServer()
    thread = threading.Thread(target=server.http.serve_forever, daemon=True)
    thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()
    thread.join()


@pytest.fixture(params=["file", "url"])
def settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """The default settings with the provider, its JWKS from a file or from a URL."""
    oidc: dict[str, Any] = {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}
    if request.param == "file":
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps(jwks("rsa-1", "ec-1")))
        oidc["oidc_jwks_file"] = path
    else:
        oidc["oidc_jwks_url"] = request.getfixturevalue("jwks_server").url
    return settings.model_copy(update=oidc)


async def account(harness: Harness, token: str) -> tuple[int, dict[str, Any]]:
    response = await harness.http.get("/api/v1/me/account", headers=bearer(token))
    return response.status_code, response.json()


async def viewer(harness: Harness, token: str) -> dict[str, Any]:
    return await harness.graphql(VIEWER, headers=bearer(token))


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_provider_tokens_sign_in_over_rest_and_graphql(harness: Harness, kid: str) -> None:
    await harness.org("acme")
    status, body = await account(harness, sign(kid))
    assert status == 200, body
    assert (body["role"], body["organization"]["slug"]) == ("admin", "acme")

    graphql = await viewer(harness, sign(kid, role="viewer"))
    assert graphql == {
        "data": {"viewer": {"id": "alice@sso", "role": "VIEWER", "organization": {"slug": "acme"}}}
    }


async def test_our_hs256_tokens_still_sign_in(harness: Harness) -> None:
    org = await harness.org("acme")
    response = await harness.http.get("/api/v1/me/account", headers=harness.token(org, Role.OWNER))
    assert response.status_code == 200
    assert response.json()["role"] == "owner"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: sign(org="globex"), "unknown organization 'globex'"),
        (lambda: sign(role="superuser"), "unknown role 'superuser'"),
        (lambda: sign(role="api_key"), "unknown role 'api_key'"),
        (lambda: sign(org=None), "the token has no 'org' claim"),
        (lambda: sign(role=None), "the token has no 'role' claim"),
        (lambda: sign(sub=None), "the token has no 'sub' claim"),
        (lambda: sign(exp=None), "the token has no 'exp' claim"),
        (lambda: sign(iss="https://evil.example/"), f"the token's issuer is not {ISSUER!r}"),
        (lambda: sign(aud="someone-else"), f"the token's audience does not include {AUDIENCE!r}"),
        (
            lambda: sign(exp=datetime.now(UTC) - timedelta(seconds=1)),
            "the token has expired",
        ),
        (
            lambda: sign("rsa-2"),
            "the token's signing key 'rsa-2' is not in the provider's JWKS",
        ),
        # Signed by a key the JWKS does not hold, under the kid of one it does.
        (lambda: sign("rsa-2", header={"kid": "rsa-1"}), "the token is not valid"),
        # The EC key's kid on an RS256 token: the key decides the algorithm.
        (
            lambda: sign("rsa-1", header={"kid": "ec-1"}),
            "the token's algorithm does not match its signing key",
        ),
        (lambda: sign(header={"kid": None}), "the token's header names no signing key (kid)"),
    ],
)
async def test_bad_provider_tokens_are_401_with_the_reason(
    harness: Harness, token: Any, message: str
) -> None:
    await harness.org("acme")
    raw = token()
    status, body = await account(harness, raw)
    assert status == 401
    assert body["message"].startswith(message)
    graphql = await viewer(harness, raw)
    assert graphql["data"] is None
    (error,) = graphql["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"].startswith(message)


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    part = [
        base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
        for value in (header, claims)
    ]
    return ".".join(part)


@pytest.mark.parametrize("settings", ["file"], indirect=True)
async def test_the_public_key_as_an_hmac_secret_and_alg_none_are_refused(
    harness: Harness,
) -> None:
    await harness.org("acme")
    exp = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "org": "acme", "role": "owner"}
    claims |= {"exp": exp}
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = []
    # The classic confusion: HS256 keyed with the public key, as PEM or as the JWK's JSON.
    for secret in (pem, json.dumps(jwk("rsa-1")).encode()):
        head = unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims)
        mac = hmac.new(secret, head.encode(), hashlib.sha256).digest()
        forged.append(f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}")
    forged.append(unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims) + ".")
    # HS256 goes to the shared secret, which did not sign it; "none" to the provider's path.
    reasons = ["the token is not valid"] * 2 + ["the token is not signed with RS256 or ES256"]
    for token, reason in zip(forged, reasons, strict=True):
        status, body = await account(harness, token)
        assert (status, body["message"]) == (401, reason)
        assert (await viewer(harness, token))["data"] is None

    # Even handed an HS256 header directly, the provider's verifier refuses it.
    oidc = Oidc(jwt.PyJWKSet.from_dict(jwks("rsa-1")), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(AuthError, match="not signed with RS256 or ES256"):
        await oidc.verify(forged[0], {"alg": "HS256", "kid": "rsa-1"})


@pytest.mark.parametrize("settings", ["file"], indirect=True)
async def test_claim_names_are_configurable(harness: Harness) -> None:
    await harness.org("acme")
    oidc = Oidc(
        jwt.PyJWKSet.from_dict(jwks("ec-1")),
        issuer=ISSUER,
        audience=AUDIENCE,
        org_claim="https://example.com/tenant",
        role_claim="groups",
    )
    rt = harness.runtime
    auth = Authenticator(JWT_SECRET, rt.orgs, rt.keys, oidc)
    token = sign(
        "ec-1", org=None, role=None, groups="member", **{"https://example.com/tenant": "acme"}
    )
    principal = await auth.authenticate(f"Bearer {token}")
    assert (principal.organization_slug, principal.role) == ("acme", Role.MEMBER)
    with pytest.raises(AuthError, match="the token has no 'groups' claim"):
        await auth.authenticate(f"Bearer {sign('ec-1', **{'https://example.com/tenant': 'acme'})}")


@pytest.mark.parametrize("settings", ["url"], indirect=True)
async def test_a_rotated_key_is_fetched_by_its_kid(
    harness: Harness, jwks_server: JwksServer
) -> None:
    await harness.org("acme")
    assert (await account(harness, sign("rsa-1")))[0] == 200
    assert (await account(harness, sign("rsa-1", sub="bob")))[0] == 200
    assert jwks_server.fetches == 1  # the key set is cached

    jwks_server.keys = jwks("rsa-2", "ec-1")  # the provider rotates its RSA key
    status, body = await account(harness, sign("rsa-2"))
    assert status == 200, body
    assert jwks_server.fetches == 2
    status, body = await account(harness, sign("rsa-1", sub="carol"))
    assert status == 401
    assert body["message"] == "the token's signing key 'rsa-1' is not in the provider's JWKS"


@pytest.mark.parametrize("settings", ["file"], indirect=True)
async def test_an_unreachable_jwks_url_is_503(harness: Harness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more: the connection is refused at once.
    client = jwt.PyJWKClient(f"http://127.0.0.1:{port}/jwks.json", timeout=2)
    rt = harness.runtime
    auth = Authenticator(
        JWT_SECRET, rt.orgs, rt.keys, Oidc(client, issuer=ISSUER, audience=AUDIENCE)
    )
    with pytest.raises(AuthError) as raised:
        await auth.authenticate(f"Bearer {sign()}")
    assert raised.value.status == 503


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"oidc_audience": AUDIENCE}, "need CREDITGRAPH_OIDC_ISSUER"),
        ({"oidc_issuer": ISSUER}, "needs CREDITGRAPH_OIDC_AUDIENCE"),
        ({"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}, "set one of"),
        (
            {
                "oidc_issuer": ISSUER,
                "oidc_audience": AUDIENCE,
                "oidc_jwks_url": "http://127.0.0.1/jwks.json",
                "oidc_jwks_file": Path("jwks.json"),
            },
            "set one of",
        ),
        (
            {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": "file:///etc/x"},
            "cannot be used",
        ),
        (
            {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_file": Path("/none")},
            "cannot be used",
        ),
    ],
)
def test_a_partial_configuration_refuses_to_start(update: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Oidc.from_settings(Settings(**update))
