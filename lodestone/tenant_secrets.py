"""Per-tenant secrets by reference. A tenant row holds references (never values) under
`secret_refs`; each reference must point into that tenant's own space, so one tenant cannot
name another's secret.

Names: Lodestone's own (the webhook signing secret, the WhatsApp token, the LLM key), and any
name of the tenant's own (1 to 64 of a-z, 0-9 and _, starting with a letter), which a state
machine's http Tasks can send in a request header (`{"secret": name}`). Every reference, of any
name, must point into the tenant's own space."""

import re
import uuid
from pathlib import PurePosixPath

from lodestone.secrets import InvalidSecretRef, SecretsProvider, parse_vault_target, split_ref, validate_ref

BUILTIN_SECRET_NAMES = ("webhook_secret", "whatsapp_token", "llm_api_key")
CUSTOM_SECRET_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_SECRET_REFS = 64


def known_secret_name(name: object) -> bool:
    return isinstance(name, str) and (name in BUILTIN_SECRET_NAMES or CUSTOM_SECRET_NAME.fullmatch(name) is not None)


class SecretNames(tuple[str, ...]):
    """Lodestone's own names when listed; `in` also admits a well-formed name of the tenant's own."""

    def __contains__(self, name: object) -> bool:
        return known_secret_name(name)


TENANT_SECRET_NAMES = SecretNames(BUILTIN_SECRET_NAMES)


def tenant_env_prefix(tenant_id: uuid.UUID | str) -> str:
    return f"LODESTONE_TENANT_{uuid.UUID(str(tenant_id)).hex.upper()}_"


def check_tenant_ref(tenant_id: uuid.UUID | str, ref: str) -> None:
    """Raises InvalidSecretRef unless ref is well formed and inside the tenant's own space:
    vault:lodestone/tenants/<id>/..., file:.../tenants/<id>/..., env:LODESTONE_TENANT_<hex>_..."""
    validate_ref(ref)
    scheme, target = split_ref(ref)
    tenant = str(uuid.UUID(str(tenant_id)))
    if scheme == "vault":
        path, _ = parse_vault_target(target)
        ok = path.startswith(f"lodestone/tenants/{tenant}/") or path == f"lodestone/tenants/{tenant}"
    elif scheme == "file":
        parts = PurePosixPath(target).parts
        ok = ".." not in parts and any(parts[i : i + 2] == ("tenants", tenant) for i in range(len(parts)))
    else:
        ok = target.startswith(tenant_env_prefix(tenant))
    if not ok:
        raise InvalidSecretRef(f"a tenant's secret references must point into its own space ({scheme}:)")


async def resolve_tenant_secret(
    secrets: SecretsProvider, tenant_id: uuid.UUID | str, refs: dict[str, str], name: str, fallback: str | None = None
) -> str | None:
    """The tenant's secret `name` through its reference, else `fallback`."""
    ref = refs.get(name)
    if not ref:
        return fallback
    check_tenant_ref(tenant_id, ref)
    return await secrets.get(ref)
