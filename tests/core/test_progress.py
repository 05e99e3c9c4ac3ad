"""Progress events are typed records that every step sends and the CLI renders one way."""

from __future__ import annotations

import pytest

from trtprune.core.progress import Bar, Deploying, RunDone, StageDone, TableRows, TrainStep


@pytest.mark.parametrize(
    ("event", "bar"),
    [
        (TableRows(12, "block: layer1.0.conv1", 2, 9), Bar("block: layer1.0.conv1", 3, 9, "12 rows")),
        (TableRows(5, total=20), Bar("", 5, 20)),
        (StageDone(2, 3, 0.41, 0.9123), Bar("stage 2/3", 2, 3, "top-1 0.912")),
        (StageDone(1, 3, 0.41, None), Bar("stage 1/3", 1, 3, "")),
        (Deploying(), Bar("final fine-tune, export, engine", 0, None)),
        (RunDone(4, 9), Bar("", 4, 9)),
        (TrainStep(3, 10, 40, 0.25), Bar("epoch 3", 10, 40, "loss 0.250")),
    ],
)
def test_every_event_says_how_far_it_is(event, bar):
    assert event.bar() == bar


def test_the_cli_bar_renders_any_event(monkeypatch):
    from trtprune.cli import _progress_bar

    with _progress_bar("pruning") as progress:
        for event in (StageDone(1, 2, 0.5, 0.9), Deploying(), TrainStep(1, 1, 2, 0.5), TableRows(3, "g", 0, 2)):
            progress(event)
        task = progress._progress.tasks[0]
        assert (task.description, task.completed, task.total) == ("pruning g", 1, 2)
