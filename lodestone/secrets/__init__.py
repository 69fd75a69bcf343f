"""Secrets resolved by reference, so values never travel in workflow payloads or logs.

A reference names where a secret lives; only the reference is stored or passed around:
  env:NAME                    a variable from the mapping the provider was given
  file:/abs/path              a file under the allowed root (one trailing newline stripped)
  vault:<kv-v2 path>#<field>  a field of a KV v2 secret, read with an AppRole token

Errors (the class name is what Temporal sees, so list the first three as non-retryable):
  SecretNotFound      no such variable, file, Vault path or field
  SecretAccessDenied  outside the file root, or denied by Vault policy
  InvalidSecretRef    a malformed reference (its text is not echoed: it may be a pasted value)
  SecretsUnavailable  the backend is down or refused our login: retry later
  SecretsNotConfigured, a SecretsUnavailable: the scheme's backend has no settings
Logs and messages carry references, paths and outcomes, never values or tokens.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lodestone.secrets.base import (
    InvalidSecretRef,
    SecretAccessDenied,
    SecretNotFound,
    SecretsError,
    SecretsNotConfigured,
    SecretsProvider,
    SecretsUnavailable,
    parse_vault_target,
    split_ref,
    validate_ref,
)
from lodestone.secrets.local import EnvFileSecrets
from lodestone.settings import Settings

if TYPE_CHECKING:
    from lodestone.secrets.vault import VaultSecrets, VaultStats

__all__ = [
    "ChainSecrets",
    "EnvFileSecrets",
    "InvalidSecretRef",
    "SecretAccessDenied",
    "SecretNotFound",
    "SecretsError",
    "SecretsNotConfigured",
    "SecretsProvider",
    "SecretsUnavailable",
    "UnconfiguredSecrets",
    "VaultSecrets",
    "VaultStats",
    "make_secrets",
    "parse_vault_target",
    "split_ref",
    "validate_ref",
]


def __getattr__(name: str) -> Any:
    """VaultSecrets and VaultStats, imported on first use: hvac (and requests) load only
    where Vault is used."""
    if name in ("VaultSecrets", "VaultStats"):
        from lodestone.secrets import vault

        return getattr(vault, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnconfiguredSecrets(SecretsProvider):
    """Stands in for a backend without settings; every reference raises SecretsNotConfigured."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def __repr__(self) -> str:
        return f"UnconfiguredSecrets({self._reason!r})"

    async def get(self, ref: str) -> str:
        validate_ref(ref)
        raise SecretsNotConfigured(self._reason)


class ChainSecrets(SecretsProvider):
    """Dispatches each reference to the provider for its scheme."""

    def __init__(self, providers: Mapping[str, SecretsProvider]) -> None:
        self._providers = dict(providers)

    def __repr__(self) -> str:
        return f"ChainSecrets({self._providers!r})"

    async def get(self, ref: str) -> str:
        scheme, _ = split_ref(ref)
        provider = self._providers.get(scheme)
        if provider is None:
            raise SecretsNotConfigured(f"no provider for {scheme}: references")
        return await provider.get(ref)

    async def aclose(self) -> None:
        for provider in {id(p): p for p in self._providers.values()}.values():
            await provider.aclose()


def make_secrets(settings: Settings, env: Mapping[str, str]) -> ChainSecrets:
    """The provider the API and worker use. `env` is the mapping env: references read; the
    caller decides what it holds (os.environ, or a filtered copy)."""
    local = EnvFileSecrets(env, settings.secrets_file_root)
    vault: SecretsProvider
    if settings.vault_addr:
        from lodestone.secrets.vault import VaultSecrets

        vault = VaultSecrets.from_settings(settings)
    else:
        vault = UnconfiguredSecrets("vault: references need VAULT_ADDR, VAULT_ROLE_ID and VAULT_SECRET_ID to be set")
    return ChainSecrets({"env": local, "file": local, "vault": vault})
