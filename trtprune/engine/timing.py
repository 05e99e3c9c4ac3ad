"""One timing harness for every backend.

Warm-up (a count, then until ``warmup_ms`` have passed: shared cloud CPUs run
short bursts faster than sustained load, so every number is taken in the
sustained state), then timed rounds in which the candidates run interleaved (so drift on
a shared, noisy machine hits them all alike); per candidate the median, p90 and
spread (IQR / median) over the rounds, after rejecting outliers beyond
3 x MAD, and the standard error of the median.

With a ``reference`` (the unpruned network or block a table row is compared with),
each candidate also gets its *paired* ratio to it: the median over rounds of
candidate / reference within the same round. Machine drift slower than a round
cancels in the ratio, which halves the noise of a latency change against comparing
two medians. With ``min_rounds`` and ``target_se_ms`` set, a candidate leaves the
rounds (after at least ``min_rounds``) once it is known to ``target_se_ms`` (the
standard error of its change against the reference, or of its median), so each gets
only the rounds it needs. A
candidate whose spread stays above ``max_spread`` (and, with a target, whose error
stays above it) after ``retries`` repeats is flagged ``noisy``.

A *timing guard* (:func:`set_timing_guard`) is entered around every measurement (one call of
:func:`measure_interleaved` or :func:`measure`: warm-up, rounds and re-measurements) and left
after it: a benchmark sharing the machine uses it to pause other work while it times.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from trtprune.core.records import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingConfig(Record):
    """How the harness times: warm-up, rounds, sample length, noise handling, early stop."""

    FORMAT = 2  # format 1 (before paired precision stops) had early_spread and noise_floor_ms
    REMOVED = {"early_spread": 2, "noise_floor_ms": 2}

    warmup: int = 10
    warmup_ms: float = 300.0  # then keep running until the machine is in its sustained state
    rounds: int = 20
    inner: int = 0  # runs per timed sample; 0 = auto so that one sample lasts >= min_sample_ms
    min_sample_ms: float = 10.0
    max_spread: float = 0.05
    retries: int = 2
    min_rounds: int = 0  # > 0: stop after this many rounds (an even count) once every candidate is precise enough
    # precise enough: standard error (ms) of the median, or of the change beside the reference
    target_se_ms: float = 0.0


@dataclass(frozen=True)
class Timing(Record):
    """One model's timing by the harness: median, p90, spread, and (beside a reference) the paired ratio."""

    median_ms: float
    p90_ms: float
    spread: float
    samples: int
    noisy: bool = False
    se_ms: float = 0.0  # standard error of the median, or (with a reference) of the change against it
    ratio: float | None = None  # with a reference: the paired median of candidate / reference per round


def _kept(s: np.ndarray) -> np.ndarray:
    """``s`` without outliers beyond 3 x MAD (the MAD floored at 1% of the median)."""
    med = float(np.median(s))
    mad = max(float(np.median(np.abs(s - med))), 0.01 * abs(med), 1e-9)
    kept = s[np.abs(s - med) <= 3 * 1.4826 * mad]
    return kept if len(kept) >= max(3, len(s) // 2) else s


def _se_of_median(s: np.ndarray) -> float:
    """Standard error of the median of ``s``: 1.2533 sigma / sqrt(n), sigma from the MAD."""
    if len(s) < 2:
        return float("inf")
    sigma = 1.4826 * float(np.median(np.abs(s - np.median(s))))
    return 1.2533 * sigma / np.sqrt(len(s))


def summarize(
    samples_ms: np.ndarray,
    max_spread: float,
    target_se_ms: float = 0.0,
    reference_ms: np.ndarray | None = None,
) -> Timing:
    """Median, p90, spread and standard error of one candidate's samples.

    With ``reference_ms`` (the reference's samples of the same rounds), the paired ratio
    and the standard error of the change against the reference (in the reference's ms).
    """
    s = np.asarray(samples_ms, dtype=np.float64)
    kept = _kept(s)
    med = float(np.median(kept))
    q1, q3 = np.percentile(kept, [25, 75])
    spread = float((q3 - q1) / med) if med > 0 else 0.0
    ratio = None
    se = _se_of_median(kept)
    if reference_ms is not None:
        ref = np.asarray(reference_ms, dtype=np.float64)
        ratios = _kept(s / ref)
        ratio = float(np.median(ratios))
        se = _se_of_median(ratios) * float(np.median(ref))
    noisy = spread > max_spread and (target_se_ms <= 0 or se > target_se_ms)
    return Timing(med, float(np.percentile(kept, 90)), spread, int(len(kept)), bool(noisy), float(se), ratio)


Timed = Callable[[int], float]  # runs k inferences back to back, returns elapsed ms


def _calibrate(timed: Timed, config: TimingConfig) -> int:
    if config.inner > 0:
        return config.inner
    one_ms = max(timed(1), 1e-3)
    return max(1, int(np.ceil(config.min_sample_ms / one_ms)))


TimingGuard = Callable[[], contextlib.AbstractContextManager]  # makes the context entered around a measurement

_guard: TimingGuard | None = None


def set_timing_guard(guard: TimingGuard | None) -> TimingGuard | None:
    """Enter ``guard()`` around every measurement from now on (``None``: no guard); returns the
    guard it replaces, so a caller can put it back.

    The harness's one hook for the machine around it: e.g. a benchmark that trains and times in
    turns freezes the other jobs on a shared machine while a latency is measured
    (``benchmarks/_quiet.py``). The guard wraps the whole measurement, warm-up included, once
    per call of :func:`measure_interleaved`."""
    global _guard
    previous, _guard = _guard, guard
    return previous


def measure_interleaved(
    candidates: Mapping[str, Timed],
    config: TimingConfig = TimingConfig(),
    reference: str | Mapping[str, str] | None = None,
) -> dict[str, Timing]:
    """Time every candidate; returns per-candidate :class:`Timing` of one inference, in ms.

    A candidate is a ``timed(k)`` callable (a runner's ``timed``). ``reference`` names the
    candidate the others are paired with (their ``ratio``), or maps candidates to their
    own references (a batch holding several groups' references). Noisy candidates are
    re-measured (beside their references) up to ``config.retries`` times; the most
    precise measurement is kept and still flagged if it stays noisy. With references, only
    the paired candidates are judged (for early stopping and re-measuring). The registered
    timing guard (:func:`set_timing_guard`) is entered around it all.
    """
    if isinstance(reference, str):
        reference = {n: reference for n in candidates if n != reference}
    refs = dict(reference or {})
    missing = sorted(set(refs.values()) - set(candidates))
    if missing:
        raise KeyError(f"reference {missing[0]!r} is not a candidate")
    with _guard() if _guard is not None else contextlib.nullcontext():
        return _measure(candidates, config, refs)


def _measure(candidates: Mapping[str, Timed], config: TimingConfig, refs: Mapping[str, str]) -> dict[str, Timing]:
    """Warm-up, calibration, the interleaved rounds and the re-measurements of noisy candidates."""
    inner = {}
    for name, timed in candidates.items():
        timed(config.warmup)
        inner[name] = _calibrate(timed, config)
    spent = 0.0
    while spent < config.warmup_ms:
        for name, timed in candidates.items():
            spent += timed(inner[name])
    results = _rounds(candidates, inner, config, refs)
    for attempt in range(config.retries):
        noisy = [n for n in _judged(results, refs) if results[n].noisy]
        if not noisy:
            break
        log.info("re-measuring %d noisy candidate(s), attempt %d", len(noisy), attempt + 1)
        batch = list(dict.fromkeys([*noisy, *(refs[n] for n in noisy if n in refs)]))
        again = _rounds({n: candidates[n] for n in batch}, inner, config, refs)
        for n in noisy:
            if again[n].se_ms < results[n].se_ms:
                results[n] = again[n]
    return results


def _judged(names: Iterable[str], refs: Mapping[str, str]) -> list[str]:
    """The candidates whose precision counts: the paired ones when there are references, else all."""
    return [n for n in names if n in refs or not refs]


def _rounds(
    candidates: Mapping[str, Timed], inner: dict[str, int], config: TimingConfig, refs: Mapping[str, str]
) -> dict[str, Timing]:
    """Interleaved rounds. With ``min_rounds`` and ``target_se_ms``, a candidate leaves the rounds
    once it is precise enough (a reference stays while any of its candidates runs)."""
    samples: dict[str, dict[int, float]] = {n: {} for n in candidates}
    judged = _judged(candidates, refs)
    active = list(candidates)
    for r in range(config.rounds):
        order = active if r % 2 == 0 else active[::-1]  # alternate the order so no candidate always runs first
        for name in order:
            k = inner[name]
            samples[name][r] = candidates[name](k) / k
        done = r + 1
        if 0 < config.min_rounds <= done < config.rounds and done % 2 == 0 and config.target_se_ms > 0:
            now = _summaries(samples, config, refs)
            running = {n for n in judged if n in active and now[n].se_ms > config.target_se_ms}
            running |= {refs[n] for n in running if n in refs}
            active = [n for n in active if n in running]
            if not active:
                break
    return _summaries(samples, config, refs)


def _summaries(
    samples: Mapping[str, dict[int, float]], config: TimingConfig, refs: Mapping[str, str]
) -> dict[str, Timing]:
    out = {}
    for n, by_round in samples.items():
        rounds = sorted(by_round)
        values = np.array([by_round[r] for r in rounds])
        ref = None
        if n in refs and refs[n] in samples:
            ref = np.array([samples[refs[n]][r] for r in rounds])  # the reference ran in every round n did
        out[n] = summarize(values, config.max_spread, config.target_se_ms, ref)
    return out


def measure(timed: Timed, config: TimingConfig = TimingConfig()) -> Timing:
    return measure_interleaved({"_": timed}, config)["_"]
