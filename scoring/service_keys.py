"""The group services' keys for the router, read when it starts: never from a stored definition.

Self-contained (standard library only; ``scoring/`` never imports ``shared``), so it runs in the
scoring environment as it is.

- Azure ML: the deployment's environment names a Key Vault secret, not its value
  (``MANYMODELS_SERVICE_KEYS_VAULT`` = ``https://<vault>.vault.azure.net``,
  ``MANYMODELS_SERVICE_KEYS_SECRET`` = the secret's name; shared/workspace/aml/services.py stores
  the JSON ``{service: key}`` there at deploy time). The router reads it with its managed identity:
  a token from the identity endpoint the host provides (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``,
  or ``MSI_ENDPOINT``/``MSI_SECRET``) or else from the instance metadata service, then one GET of
  the secret from Key Vault's REST API. ``MANYMODELS_IDENTITY_CLIENT_ID`` picks a user-assigned
  identity. The identity needs the "Key Vault Secrets User" role on the workspace's vault.
- Local backend: ``MANYMODELS_SERVICE_KEYS`` holds the JSON in the process environment the local
  service manager starts the router with (shared/workspace/local/services.py); nothing stores it.

Errors raise :class:`ServiceKeysError` with what failed and what to check, never a key.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from time import time as _wall_clock  # expiries are epoch seconds

KEYS_ENV = "MANYMODELS_SERVICE_KEYS"  # local only: the JSON itself
VAULT_ENV = "MANYMODELS_SERVICE_KEYS_VAULT"
SECRET_ENV = "MANYMODELS_SERVICE_KEYS_SECRET"
CLIENT_ID_ENV = "MANYMODELS_IDENTITY_CLIENT_ID"
IMDS_URL = "http://169.254.169.254/metadata/identity/oauth2/token"
KEY_VAULT_API = "7.4"
ATTEMPTS = 4  # the identity endpoint may not answer yet while the container starts
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServiceKeysError(RuntimeError):
    """The keys could not be read; the message says which step failed (it never holds a key)."""


def load_service_keys(environ: Mapping[str, str] | None = None, *, timeout: float = 10.0) -> dict[str, str]:
    """``{service: key}`` for the router: from Key Vault when the environment names a secret,
    else from ``MANYMODELS_SERVICE_KEYS`` (local), else none (services without auth)."""
    env = os.environ if environ is None else environ
    vault, secret = env.get(VAULT_ENV, "").strip(), env.get(SECRET_ENV, "").strip()
    if vault or secret:
        if not (vault and secret):
            raise ServiceKeysError(f"{VAULT_ENV} and {SECRET_ENV} must be set together (got "
                                   f"{VAULT_ENV}={vault!r}, {SECRET_ENV}={secret!r})")
        text = read_secret(vault, secret, environ=env, timeout=timeout)
        return parse_keys(text, source=f"secret {secret!r} in {vault}")
    text = env.get(KEYS_ENV, "")
    return parse_keys(text, source=KEYS_ENV) if text.strip() else {}


def parse_keys(text: str, *, source: str) -> dict[str, str]:
    try:
        keys = json.loads(text)
    except json.JSONDecodeError:
        raise ServiceKeysError(f"{source} is not valid JSON: expected {{service name: key}}") from None
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise ServiceKeysError(f"{source} is not allowed: expected a JSON object {{service name: key}} of strings")
    return keys


def read_secret(vault: str, name: str, *, environ: Mapping[str, str], timeout: float = 10.0) -> str:
    """The current value of secret ``name`` in Key Vault ``vault``, read with the managed identity."""
    base = _vault_base(vault)
    if not name.replace("-", "").isalnum() or len(name) > 127:
        raise ServiceKeysError(f"{SECRET_ENV}={name!r} is not a Key Vault secret name: 1-127 letters, digits, dashes")
    token = managed_identity_token(vault_resource(base), environ=environ, timeout=timeout)
    url = f"{base}/secrets/{urllib.parse.quote(name)}?api-version={KEY_VAULT_API}"
    body = _get_json(url, {"Authorization": f"Bearer {token}"}, what=f"secret {name!r} from {base}",
                     timeout=timeout, hint="the router's identity needs the Key Vault Secrets User role on the vault")
    value = body.get("value")
    if not isinstance(value, str):
        raise ServiceKeysError(f"secret {name!r} from {base} has no value")
    return value


def managed_identity_token(resource: str, *, environ: Mapping[str, str], timeout: float = 10.0) -> str:
    """An access token for ``resource`` from the host's managed identity endpoint."""
    return managed_identity_access(resource, environ=environ, timeout=timeout)[0]


def managed_identity_access(resource: str, *, environ: Mapping[str, str], timeout: float = 10.0,
                            now: float | None = None) -> tuple[str, float]:
    """(access token, expiry as epoch seconds) for ``resource`` from the host's managed identity
    endpoint (scoring/endpoint_tokens.py caches it until shortly before the expiry)."""
    client_id = environ.get(CLIENT_ID_ENV, "").strip()
    if environ.get("IDENTITY_ENDPOINT") and environ.get("IDENTITY_HEADER"):
        query = {"resource": resource, "api-version": "2019-08-01"}
        if client_id:
            query["client_id"] = client_id
        url, headers = environ["IDENTITY_ENDPOINT"], {"X-IDENTITY-HEADER": environ["IDENTITY_HEADER"]}
    elif environ.get("MSI_ENDPOINT"):
        query = {"resource": resource, "api-version": "2017-09-01"}
        if client_id:
            query["clientid"] = client_id
        url, headers = environ["MSI_ENDPOINT"], {"secret": environ.get("MSI_SECRET", "")}
    else:
        query = {"resource": resource, "api-version": "2018-02-01"}
        if client_id:
            query["client_id"] = client_id
        url, headers = IMDS_URL, {"Metadata": "true"}
    asked = _wall_clock() if now is None else now
    body = _get_json(f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(query)}", headers,
                     what=f"a managed identity token for {resource} from {url}", timeout=timeout,
                     hint="the router's deployment needs a managed identity", attempts=ATTEMPTS)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ServiceKeysError(f"the managed identity endpoint {url} answered no access_token")
    return token, _expiry(body, asked)


def _expiry(body: dict, asked: float) -> float:
    """``expires_on`` (epoch seconds; App Service's 2017-09-01 API answers a date instead) or else
    ``asked + expires_in``; without either, five minutes (refreshed early rather than late)."""
    expires_on = str(body.get("expires_on", "")).strip()
    if expires_on.isdigit():
        return float(expires_on)
    expires_in = str(body.get("expires_in", "")).strip()
    if expires_in.isdigit():
        return asked + float(expires_in)
    return asked + 300.0


def _vault_base(vault: str) -> str:
    parts = urllib.parse.urlsplit(vault.strip().rstrip("/"))
    if not parts.hostname or (parts.scheme != "https" and not (parts.scheme == "http" and
                                                               parts.hostname in LOOPBACK)):
        raise ServiceKeysError(f"{VAULT_ENV}={vault!r} is not allowed: expected https://<vault>.vault.azure.net")
    return f"{parts.scheme}://{parts.netloc}"


def vault_resource(base: str) -> str:
    # the token audience is the vault's DNS suffix: vault.azure.net, vault.azure.cn, ...
    host = urllib.parse.urlsplit(base).hostname or ""
    suffix = host.split(".", 1)[1] if host.count(".") >= 2 and host.split(".", 1)[1].startswith("vault.") else ""
    return f"https://{suffix or 'vault.azure.net'}"


def _get_json(url: str, headers: dict[str, str], *, what: str, timeout: float, hint: str,
              attempts: int = 2) -> dict:
    pause = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as answer:
                body = json.loads(answer.read() or b"{}")
            if not isinstance(body, dict):
                raise ServiceKeysError(f"could not read {what}: the answer is not a JSON object")
            return body
        except urllib.error.HTTPError as e:
            retry = e.code == 429 or e.code >= 500
            if not retry or attempt == attempts:
                raise ServiceKeysError(f"could not read {what}: HTTP {e.code} ({hint})") from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
            if attempt == attempts:
                raise ServiceKeysError(f"could not read {what}: {type(e).__name__}: {e} ({hint})") from None
        time.sleep(pause)
        pause *= 2
    raise AssertionError("unreachable")
