"""The shared harness's statistics (synthetic timed callables; real engines are in test_backends/test_lut)."""

from __future__ import annotations

import numpy as np

from trtprune.timing import TimingConfig, measure_interleaved, summarize


def test_outliers_are_rejected():
    samples = np.array([1.0] * 20 + [1.01] * 5 + [50.0])
    t = summarize(samples, max_spread=0.05)
    assert t.median_ms < 1.02 and t.p90_ms < 1.02
    assert t.samples == 25 and not t.noisy


def test_noisy_measurements_are_flagged():
    rng = np.random.default_rng(0)
    t = summarize(rng.uniform(1.0, 2.0, 40), max_spread=0.05)
    assert t.noisy


def test_interleaving_alternates_order_and_retries_noisy():
    calls: list[str] = []
    jitter = iter(np.random.default_rng(1).uniform(0.5, 1.5, 10_000))

    def make(name: str, noisy: bool):
        def timed(k: int) -> float:
            calls.append(name)
            return k * (next(jitter) if noisy else 1.0)

        return timed

    cfg = TimingConfig(warmup=1, warmup_ms=0, rounds=6, inner=1, retries=2)
    res = measure_interleaved({"a": make("a", False), "b": make("b", True)}, cfg)
    timed_calls = calls[2:14]  # after one warm-up call each (inner fixed: no calibration call)
    assert timed_calls[:4] == ["a", "b", "b", "a"]
    assert res["a"].median_ms == 1.0 and not res["a"].noisy
    assert res["b"].noisy
    assert calls.count("b") == 1 + 6 * 3  # warm-up once, then 6 rounds, re-measured twice
