"""The LLM clients against a real OpenAI-compatible HTTP server on loopback."""

from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.processes import free_port
from lodestone.llm import (
    LLMEmptyAnswer,
    LLMRefused,
    LLMRequestRejected,
    LLMTransient,
    OfflineLLM,
    RoutingLLM,
)
from lodestone.llm_openai import OpenAICompatibleLLM
from lodestone.settings import Settings
from tests.standins.openai_server import OpenAIStandIn

# The client gives up long before the stand-in answers a "slow" request.
CLIENT_TIMEOUT = 0.5
SLOW_SECONDS = 2.0
PRICES = {"ok-priced": (2.0, 10.0)}  # USD per million tokens, (in, out)


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(slow_seconds=SLOW_SECONDS) as server:
        yield server


def _settings(base_url: str | None) -> Settings:
    return Settings(
        _env_file=None,
        llm_base_url=base_url,
        llm_api_key="k" if base_url else None,
        llm_timeout_seconds=CLIENT_TIMEOUT,
        llm_prices=PRICES,
    )


@pytest.fixture
async def llm(standin: OpenAIStandIn) -> AsyncIterator[OpenAICompatibleLLM]:
    client = OpenAICompatibleLLM(_settings(standin.base_url))
    yield client
    await client.close()


async def test_success_returns_text_tokens_and_cost(llm, standin):
    prompt = "write three words about anvils please"
    done = await llm.complete("ok-priced", prompt)

    assert done.text == f"stand-in answer to: {prompt}"
    assert done.model == "ok-priced"
    assert done.tokens_in == len(prompt.split()) == 6
    assert done.tokens_out == 7
    assert done.cost_usd == pytest.approx((6 * 2.0 + 7 * 10.0) / 1_000_000)
    assert standin.requests[-1]["messages"] == [{"role": "user", "content": prompt}]


async def test_unpriced_model_costs_nothing(llm):
    done = await llm.complete("ok-free", "hello there")
    assert (done.tokens_in, done.tokens_out, done.cost_usd) == (2, 7, 0.0)


async def test_rate_limit_is_transient_with_retry_after(llm):
    with pytest.raises(LLMTransient) as err:
        await llm.complete("ratelimit", "hi")
    assert err.value.retry_after == 7.0
    assert "429" in str(err.value)


async def test_server_error_is_transient(llm, standin):
    before = standin.count("error500")
    with pytest.raises(LLMTransient) as err:
        await llm.complete("error500", "hi")
    assert "500" in str(err.value)
    assert err.value.retry_after is None
    # The client must not retry on its own: Temporal does.
    assert standin.count("error500") == before + 1


async def test_timeout_is_transient(llm):
    with pytest.raises(LLMTransient, match="timed out"):
        await llm.complete("slow", "hi")


async def test_unreachable_endpoint_is_transient():
    # A port nobody listens on: the connection is refused.
    client = OpenAICompatibleLLM(_settings(f"http://127.0.0.1:{free_port()}/v1"))
    try:
        with pytest.raises(LLMTransient, match="could not reach"):
            await client.complete("ok-nowhere", "hi")
    finally:
        await client.close()


async def test_empty_answer(llm):
    with pytest.raises(LLMEmptyAnswer):
        await llm.complete("empty", "hi")


async def test_refusal(llm):
    with pytest.raises(LLMRefused, match="I can't help with that"):
        await llm.complete("refuse", "hi")


async def test_offline_is_deterministic_and_marked():
    offline = OfflineLLM()
    first = await offline.complete("offline", "summarise the quarterly anvil report")
    again = await offline.complete("offline", "summarise the quarterly anvil report")
    other = await offline.complete("offline", "summarise the quarterly hammer report")

    assert first == again
    assert first.text != other.text
    assert first.text.startswith("[offline output: no language model was called")
    assert first.cost_usd == 0.0
    assert first.tokens_in == 5 and first.tokens_out == len(first.text.split())


async def test_offline_tells_apart_prompts_that_differ_past_the_quoted_opening():
    # The text quotes only the first 40 words, so only the digest can tell these apart.
    opening = " ".join(f"w{i}" for i in range(40))
    one = await OfflineLLM().complete("offline", f"{opening} ending-one")
    two = await OfflineLLM().complete("offline", f"{opening} ending-two")
    assert one.tokens_in == two.tokens_in == 41
    assert one.text != two.text


async def test_routing_sends_offline_model_nowhere(standin):
    router = RoutingLLM(_settings(standin.base_url))
    try:
        before = len(standin.requests)
        done = await router.complete("offline", "a prompt that stays local")
        assert done.text.startswith("[offline output")
        assert len(standin.requests) == before

        remote = await router.complete("ok-routed", "a prompt that goes out")
        assert remote.text == "stand-in answer to: a prompt that goes out"
        assert standin.count("ok-routed") == 1
    finally:
        await router.close()


async def test_routing_without_base_url_rejects_remote_models():
    router = RoutingLLM(_settings(None))
    with pytest.raises(LLMRequestRejected, match="LLM_BASE_URL"):
        await router.complete("ok-anything", "hi")
    assert (await router.complete("offline", "hi")).model == "offline"


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from lodestone.llm_openai import _retry_after

    assert _retry_after({"retry-after": "7"}) == 7.0
    in_30s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after({"retry-after": in_30s}) or 0) <= 30
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


async def test_a_tenants_endpoint_is_called_only_through_the_outbound_guard(standin):
    from lodestone.llm import ChatRequest, Endpoint

    ask = ChatRequest([{"role": "user", "content": "hello there"}])
    endpoint = Endpoint("mine", standin.base_url, "tenant-key", {"ok-guarded": (1.0, 1.0)})
    refused = RoutingLLM(_settings(None))  # loopback is not a public address
    try:
        with pytest.raises(LLMRequestRejected, match="provider 'mine' may not be called"):
            await refused.chat_at(endpoint, "ok-guarded", ask)
    finally:
        await refused.close()
    assert standin.count("ok-guarded") == 0

    allowed = RoutingLLM(_settings(None).model_copy(update={"outbound_allow_cidrs": ["127.0.0.1/32"]}))
    try:
        done = await allowed.chat_at(endpoint, "ok-guarded", ask)
    finally:
        await allowed.close()
    assert (done.provider, done.model, done.cost_usd) == ("mine", "ok-guarded", pytest.approx(9 / 1_000_000))
    assert standin.requests[-1]["_authorization"] == "Bearer tenant-key"
