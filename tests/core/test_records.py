"""Every config and record round-trips through JSON; unknown keys, newer formats and old tables."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from trtprune.backends import BackendConfig
from trtprune.compare.config import CompareConfig
from trtprune.core.errors import UsageError
from trtprune.core.records import RecordError
from trtprune.data.preprocessing import Preprocessing
from trtprune.decide.matching import MatchPolicy
from trtprune.engine.measurement import Measurement
from trtprune.engine.timing import Timing, TimingConfig
from trtprune.lut.config import LutConfig
from trtprune.lut.frames import Frame, FrameShift
from trtprune.lut.layers import LayerJoin
from trtprune.lut.settings import TableSettings, read_settings
from trtprune.lut.store import LutMeta, LutStore
from trtprune.methods.description import MethodDescription
from trtprune.prune import PruneConfig, StageRecord
from trtprune.prune.journal import JournalEntry, JournalState
from trtprune.prune.latency_parts import LatencyPart, LatencyParts
from trtprune.prune.result import FinalFinetune, PruneResult, TaskMetrics
from trtprune.prune.stage import StageDecision
from trtprune.train.config import FINETUNE, DistillConfig, TrainConfig

OLD_TABLE = Path(__file__).parents[1] / "fixtures" / "table-format1.db"

RECORDS = [
    BackendConfig(threads=2, precision="fp16"),
    TimingConfig(rounds=7, min_rounds=4, target_se_ms=0.01),
    LutConfig(model="resnet20", input_shape=(1, 1, 28, 28), mode="block", probes=(0.6, 0.3), timing=TimingConfig(rounds=9)),
    TableSettings(
        LutConfig(model="resnet20", input_shape=(1, 1, 28, 28)),
        (LayerJoin("conv1", None, "conv1", 100), LayerJoin("fc", "g", None, 10)),
        {"probe-50": {"conv1": 8}},
    ),
    LutMeta("resnet20", [1, 1, 28, 28], "ort", "fp32", "block", {"engine": "onnxruntime"}, {"conv1": 16}, None, 8, {"x": 1}),
    PruneConfig(lut="t.db", budget_ratio=0.5, method="sp-lamp", method_options={"importance": "l1"}, stages=2),
    CompareConfig(PruneConfig(lut="t.db", stages=2), methods=("sp-lamp", "halp:batches=4"), budgets=(0.3, 0.7), seeds=3),
    PruneConfig(lut="t.db", budget_ms=0.4, finetune=TrainConfig(epochs=0, lr=0.02), distill=DistillConfig(2.0, 0.3), match=MatchPolicy(4, 0.05, 0.01)),
    PruneConfig(lut="t.db", budget_ratio=0.5, final_finetune=TrainConfig(epochs=4, lr=0.002)),
    DistillConfig(temperature=3.0, weight=0.25),
    MatchPolicy(rounds=3),
    MatchPolicy(rounds=3, calls=5),
    TrainConfig(epochs=3, lr=0.05, limit_train=100),
    StageRecord(1, 0.3, 0.29, 0.7, 0.28, 0.9, 1000, {"conv1": 8}),
    StageDecision({"model": "resnet20", "groups": {"conv1": [0, 2]}}, {"conv1": 2}, 0.3, 0.52, [[0.3, 0.29, 0.31]], 1.5, 0.0),
    LayerJoin("layer1.0.conv2", "g1", "g2", 1234),
    Frame(1.25, {"design-0": 0.61}, {"layer1.0.conv1": 0.04}),
    FrameShift(-2.5, 0.4, 1.2, 0.3, 0.9),
    JournalState("0.1.0", PruneConfig(lut="t.db", budget_ratio=0.5), (JournalEntry("epoch", 1, 2, {"top1": 0.9}, "stage1-epoch2.pt"),)),
    JournalEntry("decided", 1, 0, {"widths": {"conv1": 8}}),
    Timing(0.5, 0.6, 0.02, 40, se_ms=0.001, ratio=0.51),
    Measurement(Timing(1.0, 1.1, 0.01, 40), Timing(0.5, 0.6, 0.02, 40, ratio=0.5), {"engine": "onnxruntime", "threads": 1}, (0.5, 0.52, 0.49)),
    Measurement(Timing(1.0, 1.1, 0.01, 40), Timing(0.5, 0.6, 0.02, 40, ratio=0.5), {"engine": "onnxruntime"}, call_shares=(0.5, 0.52, 0.49)),
    FinalFinetune(1, 0.91),
    Preprocessing((0.5,), (0.25,), (1, 28, 28)),
    MethodDescription("lap", importance="dynamic-based (3 steps)", episodes=4, first_rewards=(0.1, 0.2), best_reward=0.2),
    LatencyPart(2.0, 1.5, 0.5, 0.25),
    LatencyParts({"engine": "onnxruntime"}, LatencyPart(2.0, 1.5, 0.5, 0.25), LatencyPart(1.5, 1.0, 0.5, 0.33)),
    TaskMetrics("detect", "map", "mAP@[.5:.95]", {"map": 0.3, "map_50": 0.5}, {"map": 0.35, "map_50": 0.55},
                LatencyParts({"threads": 1}, LatencyPart(2.0, 1.5, 0.5, 0.25), LatencyPart(1.5, 1.0, 0.5, 0.33))),
    PruneResult.from_json(json.loads((Path(__file__).parents[1] / "fixtures" / "report-format2-config.json").read_text())),
]  # fmt: skip


def test_records_cover_every_record_type():
    """Every Record subclass trtprune defines has an instance above (so each is round-tripped)."""
    import importlib
    import pkgutil

    import trtprune
    from trtprune.core.records import Record

    for module in pkgutil.walk_packages(trtprune.__path__, "trtprune."):
        importlib.import_module(module.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    defined = {c for c in subclasses(Record) if c.__module__.startswith("trtprune.")}
    assert defined - {type(r) for r in RECORDS} == set()


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_json(record):
    obj = json.loads(json.dumps(record.to_json()))
    assert obj["format"] == record.FORMAT
    assert type(record).from_json(obj) == record


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_unknown_keys_and_newer_formats_are_refused_by_name(record):
    obj = record.to_json()
    with pytest.raises(Exception, match="unknown .*'surprise'"):
        type(record).from_json({**obj, "surprise": 1})
    with pytest.raises(Exception, match="upgrade"):
        type(record).from_json({**obj, "format": record.FORMAT + 1})


def test_keys_an_older_format_dropped_are_read_with_a_warning(caplog):
    old = {"warmup": 3, "rounds": 5, "early_spread": 0.02, "noise_floor_ms": 0.0}  # format 1: no "format" key
    with caplog.at_level(logging.WARNING):
        assert TimingConfig.from_json(old) == TimingConfig(warmup=3, rounds=5)
    assert "early_spread" in caplog.text and "noise_floor_ms" in caplog.text
    with pytest.raises(RecordError, match="unknown key 'early_spread'"):
        TimingConfig.from_json({**old, "format": 2})  # a format that never had it
    old_config = PruneConfig.from_json({"lut": "t.db", "force_table": True})
    assert old_config == PruneConfig(lut="t.db", match=MatchPolicy(calls=1))  # format 1 matched in one call


def test_a_format_1_table_reads_as_today(caplog, tmp_path):
    """The fixture was written by trtprune 3ba278b: flat settings, the old timing keys, ``channels``."""
    import shutil

    from trtprune.lut.predict import LatencyModel

    table = shutil.copy(OLD_TABLE, tmp_path / "old.db")  # opening a table migrates its schema in place
    with caplog.at_level(logging.WARNING), LutStore(table) as store:
        meta = store.require_meta()
        settings = read_settings(meta)
        latency = LatencyModel(store)
    assert "channels" in caplog.text and "early_spread" in caplog.text and "block_noise_share" in caplog.text
    assert settings.build.model == "resnet20" and settings.build.step == 16 and settings.timing.rounds == 5
    assert settings.backend_config == BackendConfig() and settings.layers and not settings.probe_widths
    assert {j.layer for j in settings.layers} >= {"conv1", "fc"}
    assert latency.base_ms > 0 and latency.join_weight == 0.0  # no probes in that table: no joined-layer fit
    assert TableSettings.from_json(settings.to_json()) == settings  # and it round-trips in today's format


def test_a_format_2_prune_config_reads_nested():
    """The flat recipe of format 2 (a real report's config) moves into ``finetune``, ``distill`` and ``match``."""
    old = json.loads((Path(__file__).parents[1] / "fixtures" / "prune-config-format2.json").read_text())
    config = PruneConfig.from_json(old)
    assert config.finetune == TrainConfig(epochs=1, lr=0.01, batch_size=128, limit_train=15000, limit_test=2000)
    # measured in one harness call then (MatchPolicy format 1), not today's default of 3
    assert config.distill is None and config.match == MatchPolicy(rounds=6, tolerance=0.03, margin=0.02, calls=1)
    assert (config.stages, config.budget_ratio, config.seed) == (2, 0.3, 0)
    flat = {**old, "distill": True, "distill_weight": 0.25, "finetune_epochs": 0, "repair_rounds": 3}
    config = PruneConfig.from_json(flat)
    assert config.distill == DistillConfig(temperature=4.0, weight=0.25)
    assert (config.finetune.epochs, config.match.rounds) == (0, 3)
    assert PruneConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_a_format_1_compare_config_reads_its_shared_dict_as_the_template():
    old = {
        "lut": "t.db",
        "methods": ["sp-lamp"],
        "budgets": [0.5],
        "seeds": 2,
        "out": "o",
        "prune": {"stages": 2, "limit_train": 9},
    }
    config = CompareConfig.from_json(old)
    expected = PruneConfig(lut="t.db", stages=2, finetune=replace(FINETUNE, limit_train=9), match=MatchPolicy(calls=1))
    assert config.prune == expected
    assert (config.lut, config.methods, config.seeds) == ("t.db", ("sp-lamp",), 2)
    run = config.run_config("halp:batches=4", 0.5, 1, "o/runs/x")
    assert (run.method, run.method_options, run.budget_ratio, run.seed, run.out) == (
        "halp",
        {"batches": 4},
        0.5,
        1,
        "o/runs/x",
    )
    assert run.finetune == config.prune.finetune


def test_a_format_1_match_policy_and_measurement_read_as_one_call():
    """Runs matched and measured before MatchPolicy format 2 timed every choice in one harness call."""
    policy = MatchPolicy.from_json({"format": 1, "rounds": 4, "tolerance": 0.03, "margin": 0.02})
    assert policy == MatchPolicy(rounds=4, calls=1) and MatchPolicy().calls == 3
    timing = Timing(0.5, 0.6, 0.02, 40, ratio=0.45).to_json()
    old = {"format": 1, "base": timing, "pruned": timing, "environment": {}, "shares": [0.45, 0.5, 0.47]}
    measured = Measurement.from_json(old)
    assert measured.call_shares == () and measured.share == 0.45  # the kept (median) measurement's share
    with pytest.raises(UsageError, match="calls >= 1"):
        MatchPolicy(calls=0)


def test_the_final_fine_tune_has_its_own_recipe_and_seed():
    """Stages fine-tune with ``finetune`` seeded seed+0..k-1; the final fine-tune with ``final_finetune``
    (the stages' recipe where None, as every config before it) seeded seed+k. A config without the key
    (every file written before it) reads as the stages' recipe."""
    stages = TrainConfig(epochs=2, lr=0.01, limit_train=64)
    config = PruneConfig(lut="t.db", budget_ratio=0.5, stages=3, seed=10, finetune=stages)
    assert [config.recipe(s) for s in (1, 2, 3, 0)] == [replace(stages, seed=n) for n in (10, 11, 12, 13)]
    own = replace(config, final_finetune=TrainConfig(epochs=5, lr=0.001))
    assert [own.recipe(s) for s in (1, 0)] == [replace(stages, seed=10), TrainConfig(epochs=5, lr=0.001, seed=13)]
    old = {k: v for k, v in config.to_json().items() if k != "final_finetune"}
    assert PruneConfig.from_json(old) == config
