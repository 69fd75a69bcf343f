"""The one way Lodestone connects to Temporal: the embedded dev server, a self-hosted
frontend, or Temporal Cloud (mTLS or API key), always with tracing propagation."""

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from lodestone.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        return TLSConfig(client_cert=settings.temporal_tls_cert.read_bytes(),
                         client_private_key=settings.temporal_tls_key.read_bytes())
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    # TracingInterceptor carries the caller's span and baggage (the request id) in a
    # header into workflows, and from there into every activity.
    return await Client.connect(
        settings.temporal_target, namespace=settings.temporal_namespace, tls=tls_config(settings),
        api_key=settings.temporal_api_key, interceptors=[TracingInterceptor()], lazy=lazy, runtime=runtime)
