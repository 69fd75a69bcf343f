"""What a fault run does and when, drawn from one seeded RNG, so a seed replays the same plan.

The run's window has two halves. In the first, the worker is killed -9 at random points
(one in each of `kills` equal slots, so the kills are spread) and the API is killed and
restarted. In the second, the dependencies fail: the LLM endpoint goes down and PostgreSQL
restarts, in turn (both spend a step's retries, so they do not overlap), while the webhook
receiver answers 503 and the SMTP sink 451 for a stretch that may overlap either (held
longer, up to 3x, until it has turned at least one delivery away).
Submissions arrive evenly through most of the window, so every fault meets work in flight.
"""

import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FaultConfig:
    pipelines: int = 50
    kills: int = 5
    api_restarts: int = 1
    pg_restarts: int = 1
    pg_down: float = 5.0  # seconds PostgreSQL stays stopped on each restart
    llm_outage: float = 30.0
    receiver_outage: float = 45.0
    seed: int = 0
    window: float = 0.0  # 0: sized from the rest
    settle_timeout: float = 600.0

    @property
    def span(self) -> float:
        return self.window or max(60.0, 2.0 * self.pipelines + self.llm_outage + self.receiver_outage)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "window": self.span}


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the run starts
    kind: str  # kill-worker, restart-api, llm-down, restart-postgres, receivers-down
    duration: float = 0.0


def schedule(cfg: FaultConfig, rng: random.Random) -> list[Fault]:
    w = cfg.span
    crash_from, crash_to = 0.1 * w, 0.5 * w
    slot = (crash_to - crash_from) / max(cfg.kills, 1)
    faults = [
        Fault(rng.uniform(crash_from + i * slot, crash_from + (i + 1) * slot), "kill-worker") for i in range(cfg.kills)
    ]
    faults += [Fault(rng.uniform(crash_from, crash_to), "restart-api") for _ in range(cfg.api_restarts)]
    turns = [("restart-postgres", cfg.pg_down)] * cfg.pg_restarts
    if cfg.llm_outage:
        turns.append(("llm-down", cfg.llm_outage))
    rng.shuffle(turns)
    slot = (w - crash_to) / max(len(turns), 1)
    for i, (kind, duration) in enumerate(turns):
        start = crash_to + i * slot
        faults.append(Fault(rng.uniform(start, max(start, start + slot - duration)), kind, duration))
    if cfg.receiver_outage:
        faults.append(
            Fault(rng.uniform(crash_to, max(crash_to, w - cfg.receiver_outage)), "receivers-down", cfg.receiver_outage)
        )
    return sorted(faults, key=lambda f: f.at)


def arrivals(cfg: FaultConfig, rng: random.Random) -> list[float]:
    """When each pipeline is submitted: evenly through 85% of the window, with jitter."""
    gap = 0.85 * cfg.span / cfg.pipelines
    return [i * gap + rng.uniform(0, gap / 2) for i in range(cfg.pipelines)]
