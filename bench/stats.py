"""Median and spread of repeated timings, and a stopwatch."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Repeated samples of one measurement (milliseconds, megabytes, ... as `unit` says)."""

    unit: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        if len(ordered) == 1:
            return ordered[0]
        pos = q * (len(ordered) - 1)
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)

    @property
    def p10(self) -> float:
        return self.quantile(0.1)

    @property
    def p90(self) -> float:
        return self.quantile(0.9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "n": len(self.samples),
            "median": self.median,
            "p10": self.p10,
            "p90": self.p90,
            "min": min(self.samples),
            "max": max(self.samples),
        }

    def __str__(self) -> str:
        return f"{_fmt(self.median)} {self.unit} (p10 {_fmt(self.p10)}, p90 {_fmt(self.p90)}, n={len(self.samples)})"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def single(unit: str, value: float) -> Spread:
    return Spread(unit, (value,))


def repeat_ms(fn: Callable[[], object], repeats: int, *, warmup: int = 1) -> Spread:
    """Run fn warmup + repeats times; the samples are the timed runs' wall times in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return Spread("ms", tuple(samples))
