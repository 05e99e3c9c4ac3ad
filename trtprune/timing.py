"""One timing harness for every backend.

Warm-up (a count, then until ``warmup_ms`` have passed: shared cloud CPUs run
short bursts faster than sustained load, so every number is taken in the
sustained state), then timed rounds in which the candidates run interleaved (so drift on
a shared, noisy machine hits them all alike); per candidate the median, p90 and
spread (IQR / median) over the rounds, after rejecting outliers beyond
3 x MAD. With ``min_rounds`` set, the rounds stop early (after at least
``min_rounds``) once every candidate's spread is below ``early_spread``. A candidate whose spread stays above ``max_spread`` after
``retries`` repeats is flagged ``noisy``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 10
    warmup_ms: float = 300.0  # then keep running until the machine is in its sustained state
    rounds: int = 20
    inner: int = 0  # runs per timed sample; 0 = auto so that one sample lasts >= min_sample_ms
    min_sample_ms: float = 10.0
    max_spread: float = 0.05
    retries: int = 2
    min_rounds: int = 0  # > 0: stop after this many rounds (an even count) once every spread <= early_spread
    early_spread: float = 0.02
    noise_floor_ms: float = 0.0  # an IQR below this is never noisy (nor keeps early stopping from stopping)

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


def summarize(samples_ms: np.ndarray, max_spread: float, noise_floor_ms: float = 0.0) -> Timing:
    s = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(s))
    mad = max(float(np.median(np.abs(s - med))), 0.01 * med, 1e-9)  # floor: 1% of the median
    kept = s[np.abs(s - med) <= 3 * 1.4826 * mad]
    kept = kept if len(kept) >= max(3, len(s) // 2) else s
    med = float(np.median(kept))
    q1, q3 = np.percentile(kept, [25, 75])
    spread = float((q3 - q1) / med) if med > 0 else 0.0
    noisy = spread > max_spread and float(q3 - q1) > noise_floor_ms
    return Timing(med, float(np.percentile(kept, 90)), spread, int(len(kept)), noisy)


Timed = Callable[[int], float]  # runs k inferences back to back, returns elapsed ms


def _calibrate(timed: Timed, config: TimingConfig) -> int:
    if config.inner > 0:
        return config.inner
    one_ms = max(timed(1), 1e-3)
    return max(1, int(np.ceil(config.min_sample_ms / one_ms)))


def measure_interleaved(candidates: Mapping[str, Timed], config: TimingConfig = TimingConfig()) -> dict[str, Timing]:
    """Time every candidate; returns per-candidate :class:`Timing` of one inference, in ms.

    A candidate is a ``timed(k)`` callable (a runner's ``timed``). Noisy candidates
    are re-measured up to ``config.retries`` times; the calmest measurement is kept
    and still flagged if it stays noisy.
    """
    inner = {}
    for name, timed in candidates.items():
        timed(config.warmup)
        inner[name] = _calibrate(timed, config)
    spent = 0.0
    while spent < config.warmup_ms:
        for name, timed in candidates.items():
            spent += timed(inner[name])
    results = _rounds(candidates, inner, config)
    for attempt in range(config.retries):
        noisy = [n for n, t in results.items() if t.noisy]
        if not noisy:
            break
        log.info("re-measuring %d noisy candidate(s), attempt %d", len(noisy), attempt + 1)
        again = _rounds({n: candidates[n] for n in noisy}, inner, config)
        for n in noisy:
            if again[n].spread < results[n].spread:
                results[n] = again[n]
    return results


def _rounds(candidates: Mapping[str, Timed], inner: dict[str, int], config: TimingConfig) -> dict[str, Timing]:
    samples: dict[str, list[float]] = {n: [] for n in candidates}
    names = list(candidates)
    for r in range(config.rounds):
        order = names if r % 2 == 0 else names[::-1]  # alternate the order so no candidate always runs first
        for name in order:
            k = inner[name]
            samples[name].append(candidates[name](k) / k)
        done = r + 1
        if 0 < config.min_rounds <= done < config.rounds and done % 2 == 0 and _calm(samples, config):
            break
    return {n: summarize(np.asarray(s), config.max_spread, config.noise_floor_ms) for n, s in samples.items()}


def _calm(samples: Mapping[str, list[float]], config: TimingConfig) -> bool:
    for s in samples.values():
        t = summarize(np.asarray(s), config.max_spread)
        if t.spread > config.early_spread and t.spread * t.median_ms > config.noise_floor_ms:
            return False
    return True


def measure(timed: Timed, config: TimingConfig = TimingConfig()) -> Timing:
    return measure_interleaved({"_": timed}, config)["_"]
