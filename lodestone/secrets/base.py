"""Secret references, their errors, and the provider interface."""

from abc import ABC, abstractmethod

_SCHEMES = ("env", "file", "vault")


class SecretsError(Exception):
    """Base of every error this module raises."""


class SecretNotFound(SecretsError):
    pass


class SecretAccessDenied(SecretsError):
    pass


class InvalidSecretRef(SecretsError, ValueError):
    pass


class SecretsUnavailable(SecretsError):
    """The backend cannot answer now (down, sealed, login refused): retryable."""


class SecretsNotConfigured(SecretsUnavailable):
    pass


def split_ref(ref: str) -> tuple[str, str]:
    scheme, sep, target = ref.partition(":")
    if not sep or scheme not in _SCHEMES:
        raise InvalidSecretRef("not a secret reference: expected env:NAME, file:/path or vault:path#field")
    if not target:
        raise InvalidSecretRef(f"empty {scheme}: reference")
    return scheme, target


def parse_vault_target(target: str) -> tuple[str, str]:
    path, sep, field = target.partition("#")
    path = path.strip("/")
    if not sep or not path or not field or ".." in path.split("/"):
        raise InvalidSecretRef("vault: references look like vault:<kv path>#<field>")
    return path, field


def validate_ref(ref: str) -> None:
    """Raises InvalidSecretRef for a malformed reference, without resolving it (e.g. when a
    workflow definition is saved)."""
    scheme, target = split_ref(ref)
    if scheme == "vault":
        parse_vault_target(target)


class SecretsProvider(ABC):
    @abstractmethod
    async def get(self, ref: str) -> str: ...

    async def aclose(self) -> None:
        return None
