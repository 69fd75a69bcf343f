"""docker-compose.temporal.yml, checked against the code: there is no Docker engine here, so
this parses the file and holds it to the settings the code actually reads."""

import re
from pathlib import Path

import yaml

from devstack.temporal import SEARCH_ATTRIBUTES
from lodestone.settings import Settings
from workflows.types import JOB_ID, TENANT_ID, WORKFLOW_KEY

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())
SERVICES = COMPOSE["services"]
FIELDS = {name.upper() for name in Settings.model_fields}


def test_every_component_is_there():
    assert {"postgresql", "temporal", "temporal-ui", "minio", "keycloak", "vault", "api", "worker", "migrate"} <= set(
        SERVICES
    )


def test_lodestone_env_names_only_settings_the_code_reads():
    for name in ("api", "worker", "migrate"):
        env = dict(SERVICES[name]["environment"])
        assert set(env) <= FIELDS, set(env) - FIELDS
        entry = " ".join(SERVICES[name].get("entrypoint", []))
        if "VAULT_ROLE_ID" in entry:  # the entrypoint adds the AppRole from vault-init's files
            assert "approle:/approle:ro" in SERVICES[name]["volumes"]
            env.update(VAULT_ROLE_ID="from-file", VAULT_SECRET_ID="from-file")
        # The settings these services start with pass the same fail-fast checks as in production.
        assert Settings(_env_file=None, **{k.lower(): v for k, v in env.items()}).auth_dev_issuer is False
        assert SERVICES[name]["build"] == "."


def test_long_running_services_have_healthchecks_and_ordered_starts():
    for name in ("postgresql", "temporal", "minio", "keycloak", "vault", "api"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name, svc in SERVICES.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in SERVICES, (name, dep)
            want = "service_completed_successfully" if SERVICES[dep].get("restart") == "no" else "service_healthy"
            assert cond["condition"] == want, (name, dep)


def test_wiring_matches_the_code():
    env = SERVICES["api"]["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233" and "7233:7233" in SERVICES["temporal"]["ports"]
    assert env["S3_ENDPOINT"] == "http://minio:9000"
    assert env["AUTH_ISSUER"].endswith(f"/realms/{Settings(_env_file=None).auth_realm}")
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://lodestone_app:")
    assert env["DATABASE_ADMIN_URL"].startswith("postgresql+asyncpg://lodestone_owner:")
    assert f"{env['API_PORT']}:8000" in SERVICES["api"]["ports"] and SERVICES["api"]["command"][-1] == "api"
    assert SERVICES["worker"]["command"][-1] == "worker" and SERVICES["migrate"]["command"][-1] == "migrate"
    realm_mount = next(v for v in SERVICES["keycloak"]["volumes"] if "/opt/keycloak/data/import" in v)
    assert (ROOT / realm_mount.split(":")[0]).resolve() == (ROOT / "deploy" / "keycloak")
    assert (ROOT / "deploy" / "keycloak" / "lodestone-realm.json").exists()
    assert "--import-realm" in SERVICES["keycloak"]["command"]
    attrs = " ".join(SERVICES["temporal-search-attributes"]["command"])
    assert all(k.name in attrs for k in (TENANT_ID, JOB_ID, WORKFLOW_KEY))
    registered = re.search(r"for a in ([\w ]+); do", attrs)
    assert registered and tuple(registered.group(1).split()) == SEARCH_ATTRIBUTES  # same as the dev server
    init = (ROOT / "deploy" / "postgres" / "init.sql").read_text()
    assert "lodestone_app" in init and "NOBYPASSRLS" in init and "NOSUPERUSER" in init
    assert "lodestone/*" in (ROOT / "deploy" / "vault" / "bootstrap.sh").read_text()


def test_dockerfile_installs_the_project_and_runs_the_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile and 'CMD ["lodestone", "api"]' in dockerfile
    for package in ("lodestone", "workflows", "activities", "api", "schema"):
        assert f"COPY {package} {package}" in dockerfile
