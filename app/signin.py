"""The demo's sign-in links: signed in as the demo owner without pasting a token.

``creditgraph serve --demo`` prints links such as ``/console/#signin=<code>``: the code
sits in the hash, which browsers never send, so it reaches no access log or Referer. The
page POSTs it to ``/console/session`` (same origin) and gets an owner JWT back. A code
works once, within ``CODE_TTL``; only its SHA-256 is kept, in this process's memory (the
demo is one process), and a presented code is compared with every kept digest in
constant time. Outside the demo no codes exist and the endpoint answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.api.rest.http import ApiError, JSONResponse, invalid, read_json
from app.auth import Role, issue_token
from app.clock import Clock

PATH = "/console/session"
CODE_TTL = timedelta(minutes=15)
TOKEN_TTL = timedelta(hours=12)
NEW_LINK = "restart `creditgraph serve --demo` (or ./scripts/demo) and open the link it prints"
_MAX_BODY = 1024


@dataclass(slots=True)
class _Code:
    digest: bytes
    expires: datetime
    used: bool = False


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest()


class SignInCodes:
    """The codes handed out by this process, each exchanged once for an owner JWT."""

    def __init__(self, secret: str, clock: Clock, *, org: str, subject: str) -> None:
        self._secret, self._clock = secret, clock
        self._org, self._subject = org, subject
        self._codes: list[_Code] = []

    def new(self) -> str:
        code = secrets.token_urlsafe(24)
        self._codes.append(_Code(_digest(code), self._clock.now() + CODE_TTL))
        return code

    def redeem(self, code: str) -> str:
        """An owner JWT for ``code``, which is used up; ApiError 401 if it cannot be."""
        digest = _digest(code)
        found = None
        for kept in self._codes:  # every digest compared: the time says nothing
            if hmac.compare_digest(kept.digest, digest):
                found = kept
        if found is None:
            raise _refused("not a sign-in code this server gave", "sign_in_code_unknown")
        if found.used:
            raise _refused("this sign-in link was already used", "sign_in_code_used")
        if self._clock.now() >= found.expires:
            raise _refused("this sign-in link has expired", "sign_in_code_expired")
        found.used = True
        return issue_token(
            self._secret, org=self._org, role=Role.OWNER, subject=self._subject, ttl=TOKEN_TTL
        )


def _refused(why: str, code: str) -> ApiError:
    minutes = int(CODE_TTL.total_seconds() // 60)
    message = f"{why} (each works once, for {minutes} minutes): for a new one, {NEW_LINK}"
    return ApiError(401, message, code=code)


async def exchange(request: Request) -> Response:
    """``POST /console/session`` ``{"code": ...}``: ``{"token": <owner JWT>}``."""
    codes: SignInCodes | None = request.app.state.sign_in
    if codes is None:
        raise ApiError(404, "sign-in links exist only in `creditgraph serve --demo`")
    code = (await read_json(request, _MAX_BODY)).get("code")
    if not isinstance(code, str):
        raise invalid("`code` must be a string: the code of a sign-in link")
    token = codes.redeem(code)
    return JSONResponse({"token": token}, headers={"Cache-Control": "no-store"})
