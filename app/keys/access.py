"""An API-key caller's key, re-read on each request it makes.

The key directory caches secrets, so a key rotated, revoked or expired since then is
caught here, against its row, and refused.
"""

from __future__ import annotations

from app.auth import AuthError, Principal
from app.ledger.state import KeyState, Needs, WalletState, load_state
from app.runtime import Runtime


async def caller_key(rt: Runtime, principal: Principal) -> tuple[WalletState, KeyState]:
    """The caller's wallet and key (with its window marks); AuthError 401 if no longer valid."""
    assert principal.api_key_id is not None
    needs = Needs(orgs={principal.organization_id}, keys={principal.api_key_id})
    needs.window_keys.add(principal.api_key_id)
    now = rt.clock.now()
    state = await rt.db.read(lambda conn: load_state(conn, needs, now, lock=False))
    key = state.keys[principal.api_key_id]
    if key.secret_hash != principal.secret_hash:
        raise AuthError(401, "the API key is not valid", "invalid_api_key")
    status = key.status(now)
    if status != "active":
        raise AuthError(401, f"the API key is {status}", f"api_key_{status}")
    return state.wallets[principal.organization_id], key
