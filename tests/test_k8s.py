"""k8s/, checked offline and against the code. Every manifest is validated (strict: unknown
fields fail) against the Kubernetes JSON schemas that kubernetes-validate ships, with the
network blocked; then held to the settings, CLI commands, routes, ports and Dockerfile the
code actually has. `kubectl kustomize` (or `kustomize build`) is used when installed, never
required. Needs no running stack."""

import copy
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from lodestone.settings import Settings

ROOT = Path(__file__).parent.parent
K8S = ROOT / "k8s"
FIELDS = {name.upper() for name in Settings.model_fields}
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
MANIFESTS = {
    p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
    for p in sorted(K8S.glob("*.y*ml"))
    if p.name != "kustomization.yaml"
}
DOCS = [doc for docs in MANIFESTS.values() for doc in docs]
# The oldest Kubernetes these manifests promise to fit, and the newest schemas bundled.
OLDEST_KUBE = "1.30.0"
KUBE_VERSIONS = [OLDEST_KUBE] + ([latest_version()] if latest_version() != OLDEST_KUBE else [])
SECRET_NAME = "lodestone-secrets"
PLACEHOLDER = "placeholder-value-at-least-32-characters"
# Served by the API but not to the internet: probes, scrapes and the dev issuer's JWKS.
INTERNAL_PATHS = {"/health", "/ready", "/metrics", "/realms/lodestone/protocol/openid-connect/certs"}


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def by_component(kind: str, component: str) -> dict[str, Any]:
    found = [
        d
        for d in DOCS
        if d["kind"] == kind and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, (kind, component, len(found))
    return found[0]


API = by_component("Deployment", "api")
WORKER = by_component("Deployment", "worker")
JOB = one("Job")
CONFIG = one("ConfigMap")["data"]
WORKLOADS = [API, WORKER, JOB]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec["containers"] + spec.get("initContainers", [])


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def image_env() -> dict[str, str]:
    """The ENV the image sets (Dockerfile `ENV K=V ...` lines): the base every container starts from."""
    env: dict[str, str] = {}
    for line in dockerfile().splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line.split()[1:])
    return env


def container_env(container: dict, with_optional: bool = True) -> dict[str, str]:
    """The environment the container runs with, secrets replaced by a placeholder; `env`
    overrides `envFrom`, as in Kubernetes. Optional secret keys may be absent."""
    env = image_env()
    configmaps = {d["metadata"]["name"]: d["data"] for d in DOCS if d["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        # A whole-Secret envFrom would hide which keys a container reads: name them instead.
        assert set(source) == {"configMapRef"}, source
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if with_optional or not ref.get("optional", False):
            env[var["name"]] = PLACEHOLDER
    return env


def settings_for(container: dict, with_optional: bool = True) -> Settings:
    env = container_env(container, with_optional)
    return Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})


def secret_refs() -> list[tuple[dict, dict]]:
    return [
        (var, var["valueFrom"]["secretKeyRef"])
        for w in WORKLOADS
        for c in containers(w)
        for var in c.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    ]


def port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(named) == 1, (container["name"], port)
    return named[0]


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in {"", *units}, value
    return float(match.group(1)) * units.get(match.group(2), 1)


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during offline validation: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_kustomization_lists_exactly_the_manifests() -> None:
    assert KUSTOMIZATION["kind"] == "Kustomization"
    resources = KUSTOMIZATION["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(MANIFESTS)
    assert KUSTOMIZATION["namespace"] == one("Namespace")["metadata"]["name"]


def test_every_resource_the_issue_asks_for_is_there() -> None:
    kinds = [(d["apiVersion"], d["kind"]) for d in DOCS]
    for want in [
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("batch/v1", "Job"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
    ]:
        assert want in kinds, want
    assert kinds.count(("apps/v1", "Deployment")) == 2
    assert kinds.count(("policy/v1", "PodDisruptionBudget")) == 2


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.usefixtures("no_network")
def test_every_manifest_validates_against_the_kubernetes_schemas_offline(version: str) -> None:
    for doc in DOCS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.usefixtures("no_network")
def test_the_schema_check_rejects_a_broken_manifest() -> None:
    """The validator really validates: a wrong type and an unknown field both fail."""
    wrong_type = copy.deepcopy(API)
    wrong_type["spec"]["replicas"] = "two"
    unknown_field = copy.deepcopy(API)
    pod_spec(unknown_field)["containers"][0]["livenessProbes"] = {}
    for bad in (wrong_type, unknown_field):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, OLDEST_KUBE, strict=True)


def test_every_namespaced_object_is_in_the_lodestone_namespace() -> None:
    namespace = one("Namespace")["metadata"]["name"]
    for doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


def test_no_secret_values_are_committed() -> None:
    for doc in DOCS:
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), doc["metadata"]["name"]
    # Credentials go in the Secret, never in the ConfigMap.
    # Credentials: hidden from repr, or named like one (not file paths), or a database URL
    # (which carries its password).
    secretish = {
        n.upper()
        for n, f in Settings.model_fields.items()
        if f.annotation not in (Path, Path | None)
        and (f.repr is False or re.search(r"(_key|_secret|_token|_password|_id)$", n))
    }
    secretish |= {"DATABASE_URL", "DATABASE_ADMIN_URL"}
    assert {"DATABASE_URL", "S3_SECRET_KEY", "LLM_API_KEY", "VAULT_SECRET_ID", "TEMPORAL_API_KEY"} <= secretish
    assert not set(CONFIG) & secretish, set(CONFIG) & secretish
    for _, ref in secret_refs():
        assert ref["name"] == SECRET_NAME


def test_secret_keys_are_documented_in_the_example_env_file() -> None:
    text = (K8S / "secrets.env.example").read_text()
    required = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.M))
    optional = set(re.findall(r"^# ([A-Z0-9_]+)=$", text, re.M))
    assert all(v == "" for v in required.values()), "secrets.env.example must hold no values"
    refs = secret_refs()
    # The key is the env name, so `kubectl create secret --from-env-file` fills it directly.
    assert all(var["name"] == ref["key"] for var, ref in refs)
    assert {ref["key"] for _, ref in refs if not ref.get("optional")} == set(required)
    assert {ref["key"] for _, ref in refs if ref.get("optional")} == optional


def test_every_env_name_is_a_setting_the_code_reads() -> None:
    assert set(CONFIG) <= FIELDS, set(CONFIG) - FIELDS
    for workload in WORKLOADS:
        for container in containers(workload):
            names = {var["name"] for var in container.get("env", [])}
            assert names <= FIELDS, names - FIELDS
    assert {ref["key"] for _, ref in secret_refs()} <= FIELDS


@pytest.mark.parametrize("with_optional", [False, True])
def test_each_container_starts_with_settings_that_pass_the_fail_fast_checks(with_optional: bool) -> None:
    for workload in (API, WORKER):
        settings = settings_for(pod_spec(workload)["containers"][0], with_optional)
        assert settings.auth_dev_issuer is False and settings.auth_issuer
        assert settings.auth_issuer.endswith(f"/realms/{settings.auth_realm}")
        assert settings.database_url and settings.s3_endpoint and settings.vault_addr
        assert settings.temporal_address and settings.link_signing_key
    migrate = settings_for(pod_spec(JOB)["containers"][0], with_optional)
    assert migrate.database_admin_url


def test_commands_are_the_cli_commands() -> None:
    from cli.main import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    for workload, want in ((API, "api"), (WORKER, "worker"), (JOB, "migrate")):
        command = pod_spec(workload)["containers"][0]["command"]
        assert command == ["lodestone", want] and want in commands, command
    assert pod_spec(JOB)["restartPolicy"] in {"Never", "OnFailure"}


def test_api_probes_ports_service_and_ingress() -> None:
    container = pod_spec(API)["containers"][0]
    settings = settings_for(container)
    assert settings.api_host == "0.0.0.0"
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live["path"] == "/health" and ready["path"] == "/ready"
    assert port_number(container, live["port"]) == port_number(container, ready["port"]) == settings.api_port

    service = one("Service")
    assert selects(service["spec"]["selector"], API["spec"]["template"]["metadata"]["labels"])
    assert not selects(service["spec"]["selector"], WORKER["spec"]["template"]["metadata"]["labels"])
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}

    ingress = one("Ingress")
    host = urlsplit(settings.public_base_url).hostname
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host]
    assert any(host in t["hosts"] for t in ingress["spec"].get("tls", []))
    assert settings.public_base_url.startswith("https://")
    for path in ingress["spec"]["rules"][0]["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        target = service_ports[backend["port"]["name"]]["targetPort"]
        assert port_number(container, target) == settings.api_port


def ingress_matches(route: str) -> bool:
    paths = one("Ingress")["spec"]["rules"][0]["http"]["paths"]
    for p in paths:
        prefix = p["path"].rstrip("/")
        if route == p["path"] or (p["pathType"] == "Prefix" and route.startswith(prefix + "/")):
            return True
    return False


def test_ingress_exposes_every_public_route_and_nothing_internal() -> None:
    from api.app import create_app

    app = create_app(Settings(_env_file=None))
    public = set(app.openapi()["paths"]) - INTERNAL_PATHS
    public |= {app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url} - {None}
    assert {"/v1/jobs/{job_id}", "/v1/uploads", "/webhooks/whatsapp"} <= public
    assert [r for r in sorted(public) if not ingress_matches(r)] == []
    assert [r for r in sorted(INTERNAL_PATHS) if ingress_matches(r)] == []


def test_worker_probes_metrics_port_and_shutdown_grace() -> None:
    container = pod_spec(WORKER)["containers"][0]
    settings = settings_for(container)
    assert settings.worker_metrics_host == "0.0.0.0" and settings.worker_metrics_port > 0
    for probe in ("livenessProbe", "readinessProbe"):
        action = container[probe].get("tcpSocket") or container[probe]["httpGet"]
        assert port_number(container, action["port"]) == settings.worker_metrics_port, probe
    graceful = re.search(r"graceful_shutdown_timeout=timedelta\(seconds=(\d+)\)", (ROOT / "worker.py").read_text())
    assert graceful, "worker.py no longer sets graceful_shutdown_timeout as this test expects"
    assert pod_spec(WORKER)["terminationGracePeriodSeconds"] >= int(graceful.group(1)) + 30


def test_prometheus_scrape_annotations_name_the_metrics_ports() -> None:
    for workload, port in (
        (API, settings_for(pod_spec(API)["containers"][0]).api_port),
        (WORKER, settings_for(pod_spec(WORKER)["containers"][0]).worker_metrics_port),
    ):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port
        assert port in {p["containerPort"] for p in pod_spec(workload)["containers"][0]["ports"]}


def test_every_container_has_requests_and_limits() -> None:
    for workload in WORKLOADS:
        for container in containers(workload):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request, limit = resources["requests"][resource], resources["limits"][resource]
                assert quantity(request) <= quantity(limit), (container["name"], resource)
    # The worker renders PDFs in a process capped at PDF_MEMORY_MB: the pod must hold more.
    worker = pod_spec(WORKER)["containers"][0]
    assert quantity(worker["resources"]["limits"]["memory"]) > settings_for(worker).pdf_memory_mb * 2**20


def test_pods_run_as_the_image_user_without_privileges_and_with_writable_data_dir() -> None:
    uid = int(re.search(r"--uid (\d+)", dockerfile()).group(1))
    for workload in WORKLOADS:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in containers(workload):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert sc["readOnlyRootFilesystem"] is True
            writable = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in empty_dirs]
            data_dir = container_env(container).get("DATA_DIR", "var")
            for needed in ("/tmp", data_dir):
                assert any(needed == w or needed.startswith(w.rstrip("/") + "/") for w in writable), (
                    container["name"],
                    needed,
                )


def test_hpa_scales_the_worker_deployment_and_pdbs_leave_room_to_drain() -> None:
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        WORKER["apiVersion"],
        WORKER["kind"],
        WORKER["metadata"]["name"],
    )
    assert "replicas" not in WORKER["spec"], "the HPA owns the worker count"
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Resource":  # utilization is measured against the request
            name = metric["resource"]["name"]
            assert all(name in c["resources"]["requests"] for c in containers(WORKER))

    pdbs = [d for d in DOCS if d["kind"] == "PodDisruptionBudget"]
    covered = set()
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [w for w in (API, WORKER) if selects(selector, w["spec"]["template"]["metadata"]["labels"])]
        assert len(matched) == 1, pdb["metadata"]["name"]
        (workload,) = matched
        covered.add(workload["metadata"]["name"])
        replicas = hpa["spec"]["minReplicas"] if workload is WORKER else workload["spec"]["replicas"]
        assert pdb["spec"]["minAvailable"] < replicas, "a PDB at the replica count blocks every drain"
    assert covered == {API["metadata"]["name"], WORKER["metadata"]["name"]}

    for workload in WORKLOADS:
        assert selects(
            workload["spec"].get("selector", {}).get("matchLabels", {}),
            workload["spec"]["template"]["metadata"]["labels"],
        )


def test_network_policies_deny_by_default_and_open_only_named_ports() -> None:
    policies = [d for d in DOCS if d["kind"] == "NetworkPolicy"]
    assert any(
        p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] and not p["spec"].get("ingress")
        for p in policies
    ), "no default-deny ingress policy"
    allowed = {}
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels")
        if not selector:
            continue
        matched = [w for w in WORKLOADS if selects(selector, w["spec"]["template"]["metadata"]["labels"])]
        assert len(matched) == 1, policy["metadata"]["name"]
        container = pod_spec(matched[0])["containers"][0]
        allowed[matched[0]["metadata"]["name"]] = {
            port_number(container, p["port"]) for rule in policy["spec"]["ingress"] for p in rule["ports"]
        }
    api_port = settings_for(pod_spec(API)["containers"][0]).api_port
    metrics_port = settings_for(pod_spec(WORKER)["containers"][0]).worker_metrics_port
    assert allowed == {API["metadata"]["name"]: {api_port}, WORKER["metadata"]["name"]: {metrics_port}}


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(K8S)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(K8S)]
    return None


@pytest.mark.skipif(kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
def test_kustomize_renders_the_same_objects_with_the_image_set() -> None:
    result = subprocess.run(kustomize_command(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in DOCS
    )
    (image,) = KUSTOMIZATION["images"]
    want = f"{image['newName']}:{image['newTag']}"
    for doc in rendered:
        kubernetes_validate.validate(doc, OLDEST_KUBE, strict=True)
        if doc["kind"] in {"Deployment", "Job"}:
            assert {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]} == {want}
