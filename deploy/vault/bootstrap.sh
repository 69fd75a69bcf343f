#!/bin/sh
# Bootstraps Vault for Lodestone: KV v2 at secret/, a read policy on secret/data/lodestone/*,
# and the `lodestone` AppRole. Writes its role_id and secret_id where the api and worker read them.
set -eu
export VAULT_ADDR="${VAULT_ADDR:-http://vault:8200}"
until vault status >/dev/null 2>&1; do sleep 1; done
vault secrets enable -path=secret kv-v2 2>/dev/null || true
vault auth enable approle 2>/dev/null || true
vault policy write lodestone - <<'HCL'
path "secret/data/lodestone/*" { capabilities = ["read"] }
HCL
vault write auth/approle/role/lodestone token_policies=lodestone token_ttl=1h token_max_ttl=4h
vault read -field=role_id auth/approle/role/lodestone/role-id > /approle/role_id
vault write -f -field=secret_id auth/approle/role/lodestone/secret-id > /approle/secret_id
