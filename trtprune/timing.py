"""One timing harness for every backend.

Warm-up, then timed rounds in which the candidates run interleaved (so drift on
a shared, noisy machine hits them all alike); per candidate the median, p90 and
spread (IQR / median) over the rounds, after rejecting outliers beyond
3 x MAD. A candidate whose spread stays above ``max_spread`` after
``retries`` repeats is flagged ``noisy``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 10
    rounds: int = 30
    inner: int = 0  # runs per timed sample; 0 = auto so that one sample lasts >= min_sample_ms
    min_sample_ms: float = 2.0
    max_spread: float = 0.05
    retries: int = 2

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    spread: float
    samples: int
    noisy: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> Timing:
        return cls(**obj)


def summarize(samples_ms: np.ndarray, max_spread: float) -> Timing:
    s = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) or 1e-12
    kept = s[np.abs(s - med) <= 3 * 1.4826 * mad]
    kept = kept if len(kept) >= max(3, len(s) // 2) else s
    med = float(np.median(kept))
    q1, q3 = np.percentile(kept, [25, 75])
    spread = float((q3 - q1) / med) if med > 0 else 0.0
    return Timing(med, float(np.percentile(kept, 90)), spread, int(len(kept)), spread > max_spread)


def _calibrate(fn: Callable[[], object], config: TimingConfig, clock: Callable[[], float]) -> int:
    if config.inner > 0:
        return config.inner
    t0 = clock()
    fn()
    one_ms = max((clock() - t0) * 1e3, 1e-3)
    return max(1, int(np.ceil(config.min_sample_ms / one_ms)))


def measure_interleaved(
    candidates: Mapping[str, Callable[[], object]],
    config: TimingConfig = TimingConfig(),
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time every callable; returns per-candidate :class:`Timing` of one call, in ms.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before reading the clock.
    Noisy candidates are re-measured up to ``config.retries`` times; the calmest
    measurement is kept and still flagged if it stays noisy.
    """
    sync = sync or (lambda: None)
    inner = {}
    for name, fn in candidates.items():
        for _ in range(config.warmup):
            fn()
        sync()
        inner[name] = _calibrate(fn, config, clock)
    results = _rounds(candidates, inner, config, sync, clock)
    for attempt in range(config.retries):
        noisy = [n for n, t in results.items() if t.noisy]
        if not noisy:
            break
        log.info("re-measuring %d noisy candidate(s), attempt %d", len(noisy), attempt + 1)
        again = _rounds({n: candidates[n] for n in noisy}, inner, config, sync, clock)
        for n in noisy:
            if again[n].spread < results[n].spread:
                results[n] = again[n]
    return results


def _rounds(candidates, inner, config, sync, clock) -> dict[str, Timing]:
    samples: dict[str, list[float]] = {n: [] for n in candidates}
    names = list(candidates)
    for r in range(config.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, k = candidates[name], inner[name]
            sync()
            t0 = clock()
            for _ in range(k):
                fn()
            sync()
            samples[name].append((clock() - t0) * 1e3 / k)
    return {n: summarize(np.asarray(s), config.max_spread) for n, s in samples.items()}


def measure(fn: Callable[[], object], config: TimingConfig = TimingConfig(), **kw) -> Timing:
    return measure_interleaved({"_": fn}, config, **kw)["_"]
