"""vault: references: Vault or OpenBao KV v2 through hvac, with AppRole login, a TTL cache,
token renewal and re-login."""

import asyncio
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hvac
import requests
from hvac import exceptions as hv

from lodestone.secrets.base import (
    InvalidSecretRef,
    SecretAccessDenied,
    SecretNotFound,
    SecretsNotConfigured,
    SecretsProvider,
    SecretsUnavailable,
    parse_vault_target,
    split_ref,
)
from lodestone.settings import Settings

log = logging.getLogger("lodestone.secrets")
_DENIED = (hv.Forbidden, hv.Unauthorized)


@dataclass
class VaultStats:
    logins: int = 0
    renewals: int = 0
    reads: int = 0  # KV requests sent to Vault
    cache_hits: int = 0


class VaultSecrets(SecretsProvider):
    """KV v2 reads with an AppRole token. The token is renewed (or a new one obtained by logging
    in again) shortly before it expires, and once after any 401/403; a second 403 is a policy
    denial. Values are cached per path for cache_seconds (0 turns the cache off)."""

    def __init__(
        self,
        addr: str,
        role_id: str,
        secret_id: str,
        *,
        mount: str = "secret",
        namespace: str | None = None,
        cache_seconds: float = 60.0,
        timeout: float = 10.0,
        renew_before: float | None = None,
        cache_size: int = 1024,
    ) -> None:
        session = requests.Session()
        session.trust_env = False  # proxies and CA bundles come from our settings, not the environment
        # token="" and verify=True stop hvac from falling back to VAULT_TOKEN, ~/.vault-token, VAULT_CACERT.
        self._client = hvac.Client(
            url=addr, token="", verify=True, timeout=timeout, namespace=namespace, session=session
        )
        self._addr, self._mount, self._namespace = addr, mount, namespace
        self._role_id, self._secret_id = role_id, secret_id
        self._cache_seconds, self._cache_size = cache_seconds, cache_size
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._renew_before = renew_before
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every login and renewal; 0 = no token yet
        self._expires_at = 0.0
        self._login_ttl = 0.0
        self._renewable = False
        self.stats = VaultStats()

    @classmethod
    def from_settings(cls, settings: Settings) -> "VaultSecrets":
        if not (settings.vault_addr and settings.vault_role_id and settings.vault_secret_id):
            raise SecretsNotConfigured("vault: references need VAULT_ADDR, VAULT_ROLE_ID and VAULT_SECRET_ID")
        return cls(
            settings.vault_addr,
            settings.vault_role_id,
            settings.vault_secret_id,
            mount=settings.vault_kv_mount,
            namespace=settings.vault_namespace,
            cache_seconds=settings.secrets_cache_seconds,
        )

    def __repr__(self) -> str:
        return (
            f"VaultSecrets(addr={self._addr!r}, mount={self._mount!r}, namespace={self._namespace!r}, "
            f"cache_seconds={self._cache_seconds})"
        )

    async def get(self, ref: str) -> str:
        scheme, target = split_ref(ref)
        if scheme != "vault":
            raise InvalidSecretRef(f"VaultSecrets resolves vault: references, not {scheme}:")
        path, field = parse_vault_target(target)
        data = self._cached(path)
        if data is None:
            data = await asyncio.to_thread(self._read, path)
            self._remember(path, data)
        if field not in data:
            raise SecretNotFound(f"vault:{path} has no field {field!r}")
        value = data[field]
        return value if isinstance(value, str) else json.dumps(value)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.adapter.close)

    def _cached(self, path: str) -> dict[str, Any] | None:
        entry = self._cache.get(path)
        if entry is None or entry[0] <= time.monotonic():
            return None
        self.stats.cache_hits += 1
        return entry[1]

    def _remember(self, path: str, data: dict[str, Any]) -> None:
        if self._cache_seconds <= 0:
            return
        self._cache[path] = (time.monotonic() + self._cache_seconds, data)
        self._cache.move_to_end(path)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # Everything below runs in a worker thread: hvac is blocking.

    def _read(self, path: str) -> dict[str, Any]:
        generation = self._ensure_token()
        for attempt in (1, 2):
            self.stats.reads += 1
            try:
                resp = self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self._mount, raise_on_deleted_version=True
                )
            except _DENIED:
                if attempt == 1:
                    log.info("vault denied reading %s; refreshing the token and retrying once", path)
                    generation = self._ensure_token(stale=generation)
                    continue
                log.warning("vault policy denies reading %s", path)
                raise SecretAccessDenied(f"Vault policy denies reading vault:{path} (mount {self._mount})") from None
            except hv.InvalidPath:
                log.info("vault has no secret at %s", path)
                raise SecretNotFound(f"no secret at vault:{path} (mount {self._mount}), or it is deleted") from None
            except (requests.RequestException, hv.VaultError) as exc:
                raise self._unavailable(f"reading {path}", exc) from None
            log.debug("vault read %s ok", path)
            return dict(resp["data"]["data"] or {})
        raise AssertionError("unreachable")

    def _ensure_token(self, stale: int | None = None) -> int:
        """A usable token's generation. `stale`: the generation that was just refused."""
        with self._lock:
            if stale is not None and stale != self._generation:
                return self._generation  # another thread already refreshed it
            remaining = self._expires_at - time.monotonic()
            if stale is None and self._generation and remaining > self._margin():
                return self._generation
            if self._generation and self._renewable and remaining > 0 and self._renew():
                return self._generation
            self._login()
            return self._generation

    def _margin(self) -> float:
        return self._renew_before if self._renew_before is not None else min(10.0, self._login_ttl / 3)

    def _set_lease(self, auth: Mapping[str, Any]) -> float:
        ttl = float(auth.get("lease_duration") or 0)
        self._expires_at = time.monotonic() + ttl if ttl > 0 else math.inf
        self._renewable = bool(auth.get("renewable"))
        self._generation += 1
        return ttl

    def _login(self) -> None:
        try:
            resp = self._client.auth.approle.login(role_id=self._role_id, secret_id=self._secret_id)
        except (*_DENIED, hv.InvalidRequest) as exc:
            log.error("vault approle login refused (%s)", type(exc).__name__)
            raise SecretsUnavailable(
                f"Vault at {self._addr} refused the AppRole login: check VAULT_ROLE_ID and VAULT_SECRET_ID"
            ) from None
        except (requests.RequestException, hv.VaultError) as exc:
            raise self._unavailable("logging in", exc) from None
        self._login_ttl = self._set_lease(resp["auth"])
        self.stats.logins += 1
        log.info("vault approle login ok (ttl %.0fs, renewable %s)", self._login_ttl, self._renewable)

    def _renew(self) -> bool:
        try:
            resp = self._client.auth.token.renew_self()
        except (*_DENIED, hv.InvalidRequest) as exc:
            log.info("vault token renewal refused (%s); logging in again", type(exc).__name__)
            return False
        except (requests.RequestException, hv.VaultError) as exc:
            raise self._unavailable("renewing the token", exc) from None
        if float(resp["auth"].get("lease_duration") or 0) <= self._margin():
            log.info("vault token is at its max TTL; logging in again")
            return False
        ttl = self._set_lease(resp["auth"])
        self.stats.renewals += 1
        log.debug("vault token renewed (ttl %.0fs)", ttl)
        return True

    def _unavailable(self, doing: str, exc: Exception) -> SecretsUnavailable:
        # The type name only: hvac messages can carry response bodies.
        log.warning("vault unavailable while %s: %s", doing, type(exc).__name__)
        return SecretsUnavailable(f"Vault at {self._addr} is unavailable while {doing} ({type(exc).__name__})")
