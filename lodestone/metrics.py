"""Prometheus metrics of the API and the worker, and the Temporal SDK's own runtime
metrics served beside them on the same GET /metrics.

Series labelled with a tenant_id are served only to a scrape that presents METRICS_TOKEN
as its bearer token: tenant ids are not for whoever can reach the port (a tenant's own
webhook, under the dev stack). Every other series is served to anyone."""

import hmac
import re
from collections.abc import Sequence
from typing import Protocol

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from lodestone.ports import free_port

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

SUBMISSIONS = Counter(
    "lodestone_submissions", "Submissions the API answered, by outcome", ["tenant_id", "workflow_key", "outcome"]
)
HTTP_REQUESTS = Histogram(
    "lodestone_http_request_duration_seconds",
    "API request latency",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
JOB_DURATION = Histogram(
    "lodestone_job_duration_seconds", "Submission to final status", ["status"], buckets=LATENCY_BUCKETS
)
STEP_DURATION = Histogram(
    "lodestone_step_duration_seconds", "One LLM step attempt", ["model", "outcome"], buckets=LATENCY_BUCKETS
)
LLM_TOKENS = Counter(
    "lodestone_llm_tokens", "LLM tokens used by steps and llm Tasks", ["tenant_id", "provider", "model", "direction"]
)
LLM_COST = Counter(
    "lodestone_llm_cost_usd", "LLM cost of steps and llm Tasks in US dollars", ["tenant_id", "provider", "model"]
)
LLM_FALLBACKS = Counter(
    "lodestone_llm_fallbacks", "Models skipped for the next one in a step's or Task's list", ["provider", "model"]
)
DELIVERY_ATTEMPTS = Counter("lodestone_delivery_attempts", "Delivery attempts by outcome", ["kind", "outcome"])
DELIVERY_FAILURES = Counter("lodestone_delivery_failures", "Deliveries given up on, by reason", ["kind", "reason"])
BUDGET_SPENT = Gauge(
    "lodestone_budget_spent",
    "An LLM budget's settled spend in its period, as of its last reservation",
    ["tenant_id", "scope", "unit"],
)
BUDGET_RESERVED = Gauge(
    "lodestone_budget_reserved",
    "An LLM budget's live reservations (calls in flight), as of its last reservation",
    ["tenant_id", "scope", "unit"],
)
BUDGET_REFUSALS = Counter(
    "lodestone_budget_refusals", "LLM calls not sent: their reservation did not fit a budget", ["tenant_id"]
)
UPLOADS_IN_FLIGHT = Gauge("lodestone_uploads_in_flight", "Uploads streaming into this API process")
ACTIVITIES_IN_FLIGHT = Gauge("lodestone_activities_in_flight", "Activities running in this worker")
TASK_QUEUE_BACKLOG = Gauge(
    "lodestone_task_queue_backlog", "Approximate tasks waiting for a worker", ["task_queue", "type"]
)


class Usage(Protocol):
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def tokens_in(self) -> int: ...
    @property
    def tokens_out(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...


def count_llm_usage(tenant_id: str, usage: Usage, fallbacks: Sequence[dict[str, str]] = ()) -> None:
    """One answer's tokens and cost, and the models skipped before it (once per recorded answer)."""
    LLM_TOKENS.labels(tenant_id, usage.provider, usage.model, "in").inc(usage.tokens_in)
    LLM_TOKENS.labels(tenant_id, usage.provider, usage.model, "out").inc(usage.tokens_out)
    LLM_COST.labels(tenant_id, usage.provider, usage.model).inc(usage.cost_usd)
    for skipped in fallbacks:
        LLM_FALLBACKS.labels(skipped["provider"], skipped["model"]).inc()


def budget_spend(tenant_id: str, scope: str, unit: str, settled: float, reserved: float) -> None:
    BUDGET_SPENT.labels(tenant_id, scope, unit).set(settled)
    BUDGET_RESERVED.labels(tenant_id, scope, unit).set(reserved)


def in_flight() -> int:
    return int(REGISTRY.get_sample_value("lodestone_activities_in_flight") or 0)


class SdkMetrics:
    """A Temporal Runtime whose Prometheus endpoint listens on a private loopback port;
    render() appends its text so one scrape sees both."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}/metrics"
        bind = self.url.removeprefix("http://").removesuffix("/metrics")
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))

    async def text(self, http: httpx.AsyncClient) -> bytes:
        try:
            resp = await http.get(self.url, timeout=2.0)
            return resp.content if resp.status_code == 200 else b""
        except httpx.HTTPError:
            return b""


_TENANT_SERIES = re.compile(rb"^[^#\n][^\n]*[{,]tenant_id=\"[^\n]*\n?", re.MULTILINE)


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (never, when token is unset)."""
    if not token or not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


async def render(sdk: SdkMetrics | None, http: httpx.AsyncClient, tenants: bool = False) -> tuple[bytes, str]:
    """The metrics text; series with a tenant_id label only when `tenants`."""
    body = generate_latest(REGISTRY)
    if not tenants:
        body = _TENANT_SERIES.sub(b"", body)
    if sdk is not None:
        body += b"\n" + await sdk.text(http)
    return body, CONTENT_TYPE_LATEST
