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


def test_calm_candidates_stop_early_and_small_jitter_is_not_noisy():
    jitter = iter(np.random.default_rng(2).uniform(0.9, 1.1, 10_000))
    calls = {"calm": 0, "jumpy": 0}

    def calm(k: int) -> float:
        calls["calm"] += 1
        return k * 1.0

    def jumpy(k: int) -> float:  # 20% jitter on 0.01 ms: noisy as a share, negligible in milliseconds
        calls["jumpy"] += 1
        return k * 0.01 * next(jitter)

    base = TimingConfig(warmup=1, warmup_ms=0, rounds=20, inner=1, retries=2)
    res = measure_interleaved({"calm": calm, "jumpy": jumpy}, base)
    assert res["jumpy"].noisy and calls["jumpy"] == 1 + 20 * 3  # re-measured twice, still noisy
    calls.update(calm=0, jumpy=0)
    floor = TimingConfig(warmup=1, warmup_ms=0, rounds=20, inner=1, retries=2, noise_floor_ms=0.005, min_rounds=6)
    res = measure_interleaved({"calm": calm, "jumpy": jumpy}, floor)
    assert not res["jumpy"].noisy and res["calm"].median_ms == 1.0
    assert calls["calm"] == calls["jumpy"] == 1 + 6  # stopped after min_rounds, no retries
    calls.update(calm=0, jumpy=0)
    res = measure_interleaved({"calm": calm, "jumpy": jumpy}, TimingConfig(**{**floor.__dict__, "noise_floor_ms": 0}))
    assert calls["calm"] == 1 + 20  # the jumpy one keeps the batch running all rounds
