"""One rule for what may change when a run resumes (prune journals and training snapshots alike)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trtprune.core.errors import TrtpruneError
from trtprune.prune import PruneConfig
from trtprune.train.config import FINETUNE
from trtprune.train.resume import MAY_CHANGE_ON_RESUME, check_resumable


def test_data_loading_processes_may_change_and_nothing_else():
    assert MAY_CHANGE_ON_RESUME == {"workers", "finetune.workers", "train.workers"}
    started = PruneConfig(lut="t.db", budget_ratio=0.5, finetune=replace(FINETUNE, workers=0))
    check_resumable(Path("run"), started.to_json(), replace(started, finetune=replace(FINETUNE, workers=4)).to_json())
    with pytest.raises(TrtpruneError, match=r"finetune.lr=0.01, not 0.02: rerun with the same settings"):
        check_resumable(Path("run"), started.to_json(), replace(started, finetune=replace(FINETUNE, lr=0.02)).to_json())
    with pytest.raises(TrtpruneError, match=r"budget_ratio=0.5, not 0.6"):
        check_resumable(Path("run"), started.to_json(), replace(started, budget_ratio=0.6).to_json())
    with pytest.raises(TrtpruneError, match=r"method_options=\{\}, not \{'batches': 4\}"):
        check_resumable(Path("run"), started.to_json(), replace(started, method_options={"batches": 4}).to_json())


def test_a_training_job_resumes_with_other_workers_only():
    from trtprune.train.config import TrainConfig
    from trtprune.train.job import TrainJob

    job = TrainJob(model="resnet20", data="fashion-mnist", out=Path("m.pt"), config=TrainConfig(workers=0))
    check_resumable(Path("m.pt.partial"), job.settings(), replace(job, config=TrainConfig(workers=4)).settings())
    with pytest.raises(TrtpruneError, match=r"train.epochs=1, not 2"):
        check_resumable(Path("m.pt.partial"), job.settings(), replace(job, config=TrainConfig(epochs=2)).settings())
