"""Every config and record round-trips through JSON; unknown keys, newer formats and old tables."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from trtprune.backends import BackendConfig
from trtprune.compare.config import CompareConfig
from trtprune.core.records import RecordError
from trtprune.engine.timing import TimingConfig
from trtprune.lut.config import LutConfig
from trtprune.lut.layers import LayerJoin
from trtprune.lut.settings import TableSettings, read_settings
from trtprune.lut.store import LutMeta, LutStore
from trtprune.prune import PruneConfig, StageRecord
from trtprune.train.loop import TrainConfig

OLD_TABLE = Path(__file__).parent / "fixtures" / "table-format1.db"

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
    CompareConfig(lut="t.db", methods=("sp-lamp", "halp:batches=4"), budgets=(0.3, 0.7), seeds=3, prune={"stages": 2}),
    TrainConfig(epochs=3, lr=0.05, limit_train=100),
    StageRecord(1, 0.3, 0.29, 0.7, 0.28, 0.9, 1000, {"conv1": 8}),
]  # fmt: skip


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
    assert PruneConfig.from_json({"lut": "t.db", "force_table": True}) == PruneConfig(lut="t.db")


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
