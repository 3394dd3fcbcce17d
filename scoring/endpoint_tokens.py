"""Microsoft Entra tokens for the router's calls to managed online endpoints (``auth_mode: aad_token``).

Self-contained (standard library only; ``scoring/`` never imports ``shared``). On Azure ML SDK v2 the
group endpoints have no keys: the router endpoint's managed identity gets a token for the audience
``https://ml.azure.com`` (``ROUTER_TOKEN_AUDIENCE`` to change it, e.g. for a sovereign cloud) from
the identity endpoint of its host (scoring/service_keys.py ``managed_identity_access``:
``IDENTITY_ENDPOINT``/``MSI_ENDPOINT``/IMDS; ``MANYMODELS_IDENTITY_CLIENT_ID`` picks a user-assigned
identity) and sends it as ``Authorization: Bearer``. The identity needs the action
``Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action`` on the workspace.

The token is cached and fetched again :data:`REFRESH_BEFORE` seconds before it expires (tokens live
for hours; a call never waits for a refresh unless the token is about to expire), or at once after a
401 (:meth:`TokenCache.invalidate`). Errors raise :class:`EndpointTokenError`, naming the identity
endpoint and what to check, never a token.

``ROUTER_AUTH`` in the router's environment picks this: ``entra`` (set for the managed target by
shared/workspace/amlv2/services.py), or ``keys`` / unset (group keys, scoring/service_keys.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

import service_keys

AUTH_ENV = "ROUTER_AUTH"
AUDIENCE_ENV = "ROUTER_TOKEN_AUDIENCE"
AUDIENCE = "https://ml.azure.com"
MODES = ("keys", "entra")
REFRESH_BEFORE = 300.0  # seconds before the expiry at which a token is fetched again

Fetch = Callable[[str], tuple[str, float]]  # audience -> (token, expiry as epoch seconds)


class EndpointTokenError(RuntimeError):
    """No token could be had; the message says from where and what to check (never a token)."""


def auth_mode(environ: Mapping[str, str] | None = None) -> str:
    """``keys`` (the default) or ``entra``; anything else is refused with what is allowed."""
    env = os.environ if environ is None else environ
    mode = env.get(AUTH_ENV, "").strip().lower() or "keys"
    if mode not in MODES:
        raise EndpointTokenError(f"{AUTH_ENV}={env.get(AUTH_ENV)!r} is not allowed: expected 'keys' (group keys) "
                                 "or 'entra' (Microsoft Entra tokens of the router's managed identity)")
    return mode


class TokenCache:
    """The current ``Bearer`` header for one audience, shared by the router's threads."""

    def __init__(self, fetch: Fetch, *, audience: str = AUDIENCE, clock: Callable[[], float] = time.time,
                 refresh_before: float = REFRESH_BEFORE) -> None:
        self._fetch, self._audience, self._clock = fetch, audience, clock
        self._refresh_before = refresh_before
        self._lock = threading.Lock()
        self._header = ""
        self._refresh_at = float("-inf")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, *, timeout: float = 10.0,
                         clock: Callable[[], float] = time.time) -> TokenCache:
        env = dict(os.environ if environ is None else environ)
        audience = env.get(AUDIENCE_ENV, "").strip() or AUDIENCE
        if not audience.startswith("https://"):
            raise EndpointTokenError(f"{AUDIENCE_ENV}={audience!r} is not allowed: expected an https:// audience "
                                     f"such as {AUDIENCE}")

        def fetch(resource: str) -> tuple[str, float]:
            return service_keys.managed_identity_access(resource, environ=env, timeout=timeout, now=clock())

        return cls(fetch, audience=audience, clock=clock)

    @property
    def audience(self) -> str:
        return self._audience

    def header(self) -> str:
        """``Bearer <token>``, fetched when there is none or it expires within ``refresh_before``."""
        if self._clock() < self._refresh_at:  # the common path: no lock
            return self._header
        with self._lock:
            if self._clock() >= self._refresh_at:  # another thread may have refreshed meanwhile
                try:
                    token, expires = self._fetch(self._audience)
                except service_keys.ServiceKeysError as e:
                    raise EndpointTokenError(f"could not get a Microsoft Entra token for {self._audience}: {e}. "
                                             "The router endpoint needs a managed identity with the score action "
                                             "on the workspace") from None
                self._header = f"Bearer {token}"
                # a token that is already (nearly) expired is used once and fetched again next time
                self._refresh_at = max(expires - self._refresh_before, self._clock())
            return self._header

    def invalidate(self) -> None:
        """Fetch a new token on the next call (after a 401: revoked, or the clock was wrong)."""
        with self._lock:
            self._refresh_at = float("-inf")
