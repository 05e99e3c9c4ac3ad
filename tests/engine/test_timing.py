"""The shared harness's statistics (synthetic timed callables; real engines are in test_backends/test_lut)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from trtprune.engine.timing import TimingConfig, measure, measure_interleaved, set_timing_guard, summarize


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
    floor = TimingConfig(warmup=1, warmup_ms=0, rounds=20, inner=1, retries=2, target_se_ms=0.005, min_rounds=6)
    res = measure_interleaved({"calm": calm, "jumpy": jumpy}, floor)
    assert not res["jumpy"].noisy and res["calm"].median_ms == 1.0
    assert calls["calm"] == calls["jumpy"] == 1 + 6  # stopped after min_rounds, no retries
    calls.update(calm=0, jumpy=0)
    res = measure_interleaved({"calm": calm, "jumpy": jumpy}, TimingConfig(**{**floor.__dict__, "target_se_ms": 0}))
    assert calls["calm"] == 1 + 20  # the jumpy one keeps the batch running all rounds


def test_paired_ratio_cancels_drift_shared_within_a_round():
    """The machine slows down and speeds up between rounds (shared by everything run in that
    round): medians swing with it, the paired ratio to the reference does not."""

    def pair():
        drift = iter(np.repeat(np.random.default_rng(3).uniform(1.0, 1.6, 1000), 2))  # one level per two calls
        return {"ref": lambda k: k * 1.0 * next(drift), "half": lambda k: k * 0.5 * next(drift)}

    cfg = TimingConfig(warmup=1, warmup_ms=0, rounds=20, inner=1, retries=0, min_rounds=4, target_se_ms=1e-6)
    res = measure_interleaved(pair(), cfg, reference="ref")
    assert res["half"].ratio == pytest.approx(0.5) and res["half"].se_ms == pytest.approx(0.0, abs=1e-9)
    assert res["ref"].ratio is None and res["ref"].spread > 0.1  # the median alone swings with the machine
    assert res["half"].samples == 4  # precise at once: stopped after min_rounds
    with pytest.raises(KeyError, match="not a candidate"):
        measure_interleaved(pair(), cfg, reference="nope")


def test_a_registered_guard_wraps_every_measurement():
    """The guard is entered before a measurement's first call and left after its last, once per
    measurement (``measure`` too), also when the measurement fails; ``None`` removes it."""
    events: list[str] = []

    @contextlib.contextmanager
    def guard():
        events.append("enter")
        try:
            yield
        finally:
            events.append("exit")

    def timed(k: int) -> float:
        events.append("timed")
        return k * 1.0

    def broken(k: int) -> float:
        raise RuntimeError("engine failed")

    cfg = TimingConfig(warmup=1, warmup_ms=0, rounds=4, inner=1, retries=0)
    previous = set_timing_guard(guard)
    try:
        measure_interleaved({"a": timed, "b": timed}, cfg)
        assert events[0] == "enter" and events[-1] == "exit" and events.count("enter") == 1
        assert events[1:-1] == ["timed"] * (2 + 4 * 2)  # warm-up once each, then 4 rounds of two
        events.clear()
        measure(timed, cfg)
        assert events.count("enter") == events.count("exit") == 1
        events.clear()
        with pytest.raises(RuntimeError):
            measure(broken, cfg)
        assert events == ["enter", "exit"]
    finally:
        assert set_timing_guard(previous) is guard
    events.clear()
    measure(timed, cfg)
    assert "enter" not in events
