"""LLM budgets, the pure part: what a call reserves before it is sent, what it costs after,
and the period a budget counts over (docs/budgets.md).

A budget is in `usd` or `tokens`, per `monthly` period (calendar months, UTC) or `fixed` (one
amount from the budget's start, never rolling over). A call's reservation is its worst case:
the prompt's tokens (estimated at BUDGET_PROMPT_BYTES_PER_TOKEN bytes a token, rounded up)
plus the request's max_tokens (else BUDGET_MAX_OUTPUT_TOKENS, which is then sent as the
call's max_tokens) at the model's price. The offline model's usage is known before the call,
so its reservation is exact. A model with no price costs 0 against a usd budget; a tokens
budget still counts its tokens."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from lodestone.llm import OFFLINE_MODEL, ChatRequest, offline_text

Unit = Literal["usd", "tokens"]
Period = Literal["monthly", "fixed"]
THRESHOLDS = (80, 100)  # percent of a budget at which a notice is sent, once per period each


@dataclass(frozen=True)
class Charge:
    """A call's tokens and cost: its worst case while reserved, its usage once settled."""

    tokens: int
    usd: float

    def amount(self, unit: str) -> float:
        return float(self.tokens) if unit == "tokens" else self.usd


def cost_usd(tokens_in: int, tokens_out: int, prices: dict[str, tuple[float, float]] | None, model: str) -> float:
    price_in, price_out = (prices or {}).get(model, (0.0, 0.0))
    return round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 8)


def worst_case(
    model: str,
    request: ChatRequest,
    prices: dict[str, tuple[float, float]] | None,
    bytes_per_token: float,
    max_output_tokens: int,
) -> Charge:
    """What a call to `model` with `request` can cost at most (the offline model: exactly)."""
    if model == OFFLINE_MODEL:
        prompt = request.as_prompt()
        tokens_in, tokens_out = len(prompt.split()), len(offline_text(model, prompt).split())
    else:
        text = (request.system or "") + "".join(m.get("content", "") for m in request.messages)
        schema = str(request.json_schema) if request.json_schema else ""
        tokens_in = math.ceil(len((text + schema).encode()) / bytes_per_token) + 8 * len(request.messages)
        tokens_out = request.max_tokens or max_output_tokens
    return Charge(tokens_in + tokens_out, cost_usd(tokens_in, tokens_out, prices, model))


def month_start(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(when: datetime) -> datetime:
    start = month_start(when)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def period_bounds(period: str, starts_at: datetime, now: datetime) -> tuple[datetime, datetime | None]:
    """[start, end) of the period `now` is in; a fixed budget's has no end."""
    if period == "monthly":
        return month_start(now), next_month(now)
    return starts_at, None


def reached(spent: float, amount: float) -> list[int]:
    """The notice thresholds a budget's spend has reached (its notice rows send each once)."""
    return [t for t in THRESHOLDS if spent * 100 >= t * amount]
