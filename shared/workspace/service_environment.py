"""What a scoring service's environment may hold on Azure ML, for every Azure backend (the port is
shared/workspace/base.py): a stored deployment definition is readable by every reader of the workspace,
so no variable whose name says it holds a secret goes into one. The router's group keys travel as a
Key Vault reference instead (the two names below; scoring/service_keys.py reads them)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.errors import InvalidValue

SERVICE_KEYS_ENV = "MANYMODELS_SERVICE_KEYS"  # the router's {service: key} (shared/flows/deploy.py KEYS_ENV)
VAULT_ENV = "MANYMODELS_SERVICE_KEYS_VAULT"  # where the keys are instead: the vault ...
SECRET_ENV = "MANYMODELS_SERVICE_KEYS_SECRET"  # ... and the secret's name
_SECRET_WORDS = {"KEY", "KEYS", "SECRET", "SECRETS", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS",
                 "SAS", "CONNECTIONSTRING"}


def looks_secret(variable: str) -> bool:
    """``API_KEY``, ``DB_PASSWORD``, ``AzureWebJobsStorage``-like connection strings, ..."""
    words = set(re.split(r"[^A-Z0-9]+", variable.upper()))
    return bool(words & _SECRET_WORDS) or "CONNECTION_STRING" in variable.upper()


def secret_name(service: str) -> str:
    """The Key Vault secret holding ``service``'s group keys (names: letters, digits, dashes)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", f"{service}-service-keys")[:127]


def environment_without_secrets(environment: Mapping[str, str], *, where: str) -> dict[str, str]:
    """``environment`` checked to hold no secret; ``where`` names what would store it ("an Azure ML
    environment", "an online deployment") in the refusal."""
    secret = sorted(k for k in environment if looks_secret(k) and k not in (VAULT_ENV, SECRET_ENV))
    if secret:
        raise InvalidValue(f"environment variables {', '.join(secret)} look like secrets and are not allowed in "
                           f"{where} (every reader of the workspace can read its definition): read them at run "
                           "time with the service's identity instead (Key Vault)")
    return dict(environment)
