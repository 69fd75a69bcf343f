"""The one way Lodestone connects to Temporal: the embedded dev server, a self-hosted
frontend, or Temporal Cloud (mTLS or API key), always with tracing propagation.

The API's client is `bounded`: the connect, each call's gRPC deadline and the client's own
retries of an unavailable frontend all end within TEMPORAL_RPC_TIMEOUT_SECONDS, and a call
still running then raises RPCError(DEADLINE_EXCEEDED) (a first connect that fails,
RPCError(UNAVAILABLE)). So with Temporal down a request answers 503 within that bound
instead of after the SDK's default ten seconds of retries.

Every client carries the claim-check codec (lodestone.payload_codec): payloads larger than
TEMPORAL_PAYLOAD_OFFLOAD_BYTES travel as references to the object store, and a worker built
on the client inherits its converter."""

import asyncio
import inspect
from datetime import timedelta
from typing import Any

from temporalio.client import Client, Interceptor, OutboundInterceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError, RPCStatusCode, TLSConfig

from lodestone.payload_codec import data_converter
from lodestone.settings import Settings

LAZY_CONNECT_FAILED = "Failed client connect:"


def tls_config(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


def unreachable(exc: BaseException) -> bool:
    """Whether an exception from a client call means Temporal did not answer in time."""
    if isinstance(exc, RPCError):
        return exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
    # A lazy client's first connect that fails: the SDK's bridge raises a bare RuntimeError.
    return isinstance(exc, RuntimeError) and str(exc).startswith(LAZY_CONNECT_FAILED)


def _bounded_call(name: str, coroutine: bool) -> Any:
    def clamp(self: "_Bounded", input: Any) -> None:
        current = getattr(input, "rpc_timeout", None)
        if hasattr(input, "rpc_timeout") and (current is None or current > self.bound):
            input.rpc_timeout = self.bound

    if not coroutine:  # list_* and history: async iterators; each page's call gets the deadline

        def iterate(self: "_Bounded", input: Any) -> Any:
            clamp(self, input)
            return getattr(self.next, name)(input)

        return iterate

    async def call(self: "_Bounded", input: Any) -> Any:
        clamp(self, input)
        try:
            async with asyncio.timeout(self.bound.total_seconds()):
                return await getattr(self.next, name)(input)
        except TimeoutError as e:
            raise RPCError(
                f"Temporal did not answer {name} within {self.bound.total_seconds():g}s",
                RPCStatusCode.DEADLINE_EXCEEDED,
                b"",
            ) from e
        except RuntimeError as e:
            # A lazy client that has never reached the frontend says so with a bare RuntimeError.
            if not unreachable(e):
                raise
            raise RPCError(f"could not connect to Temporal: {e}", RPCStatusCode.UNAVAILABLE, b"") from e

    return call


class _Bounded(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, bound: timedelta) -> None:
        super().__init__(next)
        self.bound = bound


for _name, _fn in inspect.getmembers(OutboundInterceptor, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(_Bounded, _name, _bounded_call(_name, inspect.iscoroutinefunction(_fn)))


class BoundedCalls(Interceptor):
    """Every client call (start, signal, describe, schedules, ...) gets at most `bound`."""

    def __init__(self, bound: timedelta) -> None:
        self.bound = bound

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Bounded(next, self.bound)


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None, bounded: bool = False
) -> Client:
    # TracingInterceptor carries the caller's span and baggage (the request id) in a
    # header into workflows, and from there into every activity.
    interceptors: list[Interceptor] = [TracingInterceptor()]
    extra: dict[str, Any] = {}
    if bounded:
        bound = timedelta(seconds=settings.temporal_rpc_timeout_seconds)
        interceptors.append(BoundedCalls(bound))
        ms = int(bound.total_seconds() * 1000)
        extra = {
            "connect_timeout": bound,
            "retry_config": RetryConfig(max_elapsed_time_millis=ms, max_interval_millis=min(ms, 1000)),
        }
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=settings.temporal_api_key,
        interceptors=interceptors,
        data_converter=data_converter(settings),
        lazy=lazy,
        runtime=runtime,
        **extra,
    )
