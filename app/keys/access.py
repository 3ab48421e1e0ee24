"""An API-key caller's key, re-read on each request it makes.

The key directory caches secrets, so a key rotated, revoked or expired since then is
caught here, against its row, and refused.
"""

from __future__ import annotations

from app.auth import AuthError, Principal
from app.keys.caps import envelope
from app.ledger.state import KeyState, Needs, WalletState, load_state
from app.runtime import Runtime


async def caller_key(rt: Runtime, principal: Principal) -> tuple[WalletState, KeyState]:
    """The caller's wallet and key (with its window marks); AuthError 401 if no longer valid."""
    assert principal.api_key_id is not None
    return await key_of(rt, principal.organization_id, principal.api_key_id, principal.secret_hash)


async def key_of(
    rt: Runtime, organization_id: int, key_id: int, secret_hash: str | None
) -> tuple[WalletState, KeyState]:
    """The key's wallet and key (with its window marks), if ``secret_hash`` is still its
    secret and it is active; AuthError 401 otherwise."""
    needs = Needs(orgs={organization_id}, keys={key_id})
    needs.window_keys.add(key_id)
    now = rt.clock.now()
    state = await rt.db.read(lambda conn: load_state(conn, needs, now, lock=False))
    key = state.keys[key_id]
    if key.secret_hash != secret_hash:
        raise AuthError(401, "the API key is not valid", "invalid_api_key")
    status = key.status(now)
    if status != "active":
        raise AuthError(401, f"the API key is {status}", f"api_key_{status}")
    return state.wallets[organization_id], key


async def envelope_of(
    rt: Runtime, organization_id: int, key_id: int, secret_hash: str | None
) -> dict[str, str]:
    """``key_of``'s check, and the envelope headers of what it read: a request with a
    valid key gets them from this one read, whatever it is answered."""
    wallet, key = await key_of(rt, organization_id, key_id, secret_hash)
    return envelope(wallet, key, rt.clock.now()).headers()
