"""Fault injection for tests: crash a named step on its first attempt.

``Settings.faults.crash`` (``RETAIL_PIPELINE_CRASH=ingest.partition,load.publish`` at the edge)
makes each named point (see :data:`~retail_pipeline.config.FAULT_POINTS`) raise
:class:`InjectedFault` the first time it is reached for a given object (remembered in a folder,
``Settings.faults.state``), so the platform's retry runs the step again and must converge.
Empty (the default), every point is a no-op.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .config import FAULT_POINTS, Faults


class InjectedFault(RuntimeError):
    """A deliberate transient failure."""


def maybe_crash(faults: Faults, point: str, key: str) -> None:
    assert point in FAULT_POINTS, point
    if point not in faults.crash:
        return
    faults.state.mkdir(parents=True, exist_ok=True)
    marker = faults.state / hashlib.sha1(f"{point}:{key}".encode()).hexdigest()
    if marker.exists():
        return
    marker.touch()
    raise InjectedFault(f"injected fault at {point} ({key})")


@dataclass
class FaultPlan:
    """Delivery faults for tests: each event 1..max_copies times, shuffled, some delayed."""

    max_copies: int = 1
    shuffle: bool = False
    delay_probability: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False)

    crash: tuple[str, ...] = ()  #: fault points (see faults.py) that fail on their first attempt

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """``copies=3,shuffle,delay=0.2,seed=1,crash=ingest.partition+load.publish`` → FaultPlan."""
        kwargs: dict = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key == "copies":
                kwargs["max_copies"] = int(value)
            elif key == "shuffle":
                kwargs["shuffle"] = True
            elif key == "delay":
                kwargs["delay_probability"] = float(value or 0.2)
            elif key == "seed":
                kwargs["seed"] = int(value)
            elif key == "crash":
                kwargs["crash"] = Faults(crash=tuple(p for p in value.split("+") if p)).crash  # checks the names
            else:
                raise ValueError(f"unknown fault {key!r}: use copies=N, shuffle, delay=P, seed=N, crash=POINT+POINT")
        return cls(**kwargs)

    def copies(self) -> int:
        return self.rng.randint(1, self.max_copies)

    def order(self, items: list) -> list:
        if self.shuffle:
            self.rng.shuffle(items)
        return items

    def delayed(self) -> bool:
        return self.delay_probability > 0 and self.rng.random() < self.delay_probability
