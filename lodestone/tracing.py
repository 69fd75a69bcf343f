"""OpenTelemetry tracing. Spans always exist, so trace ids reach the logs and cross into
workflows and activities; they leave the process only when an OTLP endpoint is set."""

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from lodestone.settings import Settings

REQUEST_ID = "lodestone.request_id"


def setup_tracing(settings: Settings, service: str) -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # the global provider can be set once per process
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def propagated_request_id() -> str | None:
    """The request id that started this work, carried as baggage through Temporal headers."""
    value = baggage.get_baggage(REQUEST_ID)
    return str(value) if value else None


def with_request_id(rid: str, ctx: context.Context | None = None) -> context.Context:
    return baggage.set_baggage(REQUEST_ID, rid, context=ctx)
