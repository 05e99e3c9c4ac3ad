"""Step 1 of a prune run: everything it needs, checked and loaded before any run directory exists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.shapes import parse_shape
from trtprune.data import get_dataset, get_spec
from trtprune.decide.decision import infeasible, smallest_ms
from trtprune.graph.groups import find_groups
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.methods import MethodContext
from trtprune.models import get_model_spec
from trtprune.models.loading import load_model
from trtprune.tasks import Task, check_task, get_task

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import Dataset

    from trtprune.data.spec import DatasetSpec
    from trtprune.graph.groups import ModelGroups
    from trtprune.lut.predict import LatencyModel
    from trtprune.methods import Method, MethodContext
    from trtprune.models.loading import LoadedModel
    from trtprune.prune.config import PruneConfig


@dataclass(frozen=True)
class PruneInputs:
    """A run's checked inputs. ``groups`` describe the unpruned model (names and indices: valid for
    every copy of it); ``latency`` is the table as the separable knapsack optimises it (single-group
    changes, no interaction terms)."""

    config: PruneConfig
    latency: LatencyModel
    budget_ms: float
    model_name: str
    checkpoint: str | None
    loaded: LoadedModel
    groups: ModelGroups
    spec: DatasetSpec
    train_set: Dataset
    test_set: Dataset
    method: Method

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.loaded.input_shape)

    @property
    def task(self) -> Task:
        """The model's task (the data's too: checked): its loss, metric and batching."""
        return get_task(self.spec.task)

    def batch_loss(self, model: nn.Module, batch: Any, device: str = "cpu") -> Any:
        """The task's training loss of one of :meth:`batches` (what loss-based scores differentiate)."""
        import torch

        return self.task.batch_loss(model, batch, torch.device(device), None)[0]

    @property
    def round_to(self) -> int:
        return self.config.round_to or self.latency.meta.step

    def method_context(self, base_model: nn.Module, workdir: str | None = None) -> MethodContext:
        """What the run's method may use before the first stage (:meth:`Method.setup`); ``workdir``:
        where it may keep resumable work (the run's journal directory)."""

        return MethodContext(
            model=base_model,
            input_shape=self.input_shape,
            groups=self.groups,
            latency=self.latency,
            lut_path=str(self.config.lut),
            data=self.config.data,
            data_root=self.config.data_root,
            seed=self.config.seed,
            batches=self.batches,
            workdir=workdir,
        )

    def batches(self, n: int) -> Iterator[Any]:
        """``n`` shuffled training batches for scores that need gradients: a fixed order for the run's
        seed, and augmentations drawn from a random stream of their own (seeded by it), so the batches
        are the same whatever the process drew before (a resumed run skips the earlier stages' exports
        and augmentations an uninterrupted one made)."""
        import torch
        import torch.utils.data

        loader = iter(
            torch.utils.data.DataLoader(
                self.train_set,
                batch_size=self.config.finetune.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(self.config.seed),
                collate_fn=self.task.collate,
            )
        )
        state = torch.Generator().manual_seed(self.config.seed).get_state()
        for _ in range(n):
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(state)
                batch = next(loader, None)
                state = torch.get_rng_state()
            if batch is None:
                return
            yield batch


def _joined(lut: str) -> LatencyModel:
    """The table's full prediction (joined layers corrected)."""

    with LutStore(lut) as store:
        return LatencyModel(store)


def _check_data_shape(spec: DatasetSpec, shape: tuple[int, ...], lut: str, model: str) -> None:
    """The data's images must have the table's input shape (a dataset that resizes keeps its channels)."""
    want = tuple(int(x) for x in shape[1:])
    have = tuple(spec.preprocessing.input_size)
    if spec.resizes:  # resized to the table's H x W; its channels are its normalisation's
        have = (len(spec.preprocessing.mean), *want[1:])
    if have != want:
        text = "x".join(map(str, have))
        raise TrtpruneError(
            f"--data {spec.name} gives {text} images but table {lut} was measured at input "
            f"{'x'.join(map(str, shape))}: build a table for them ('trtprune lut {model} --input 1x{text}') "
            "or pass --data of that shape"
        )


def _check_task(name: str, spec: DatasetSpec, config: PruneConfig, method: Method) -> None:
    """The data must be of the model's task, the method and distillation must apply to it (one line, exit 2)."""
    task = get_model_spec(name).task
    check_task(name, task, spec.name, spec.task)
    if task not in method.tasks:
        raise UsageError(
            f"--method {method.name} prunes {' and '.join(method.tasks)} models, not {name} ({task}): pick another"
        )
    refusal = get_task(task).distill_refusal(name)
    if config.distill is not None and refusal:
        raise UsageError(refusal)


def load_inputs(config: PruneConfig) -> PruneInputs:
    """Read the table, check the budget, model, input, data and method against it; load the model."""

    with LutStore(config.lut) as store:
        latency = LatencyModel(store, interactions=False)  # what the separable knapsack optimises
    meta = latency.meta
    budget = config.budget_of(latency.base_ms)
    name = config.model or meta.model
    if name != meta.model:
        raise TrtpruneError(
            f"table {config.lut} was built for {meta.model!r}, not {name!r}: build one with 'trtprune lut {name}'"
        )
    shape = parse_shape(config.input_shape or tuple(meta.input_shape))
    if list(shape) != list(meta.input_shape):
        raise TrtpruneError(f"table {config.lut} was measured at input {meta.input_shape}, not {list(shape)}")
    method = config.make_method()
    spec = get_spec(config.data)
    _check_task(name, spec, config, method)
    _check_data_shape(spec, shape, config.lut, name)
    size = tuple(shape[1:])  # an ImageFolder resizes to the table's input; fixed-size data keeps its own
    if spec.resizes:  # the preprocessing the run records (report, ONNX metadata) is at the table's input
        spec = replace(spec, preprocessing=replace(spec.preprocessing, input_size=size))
    train_set = get_dataset(config.data, "train", config.data_root, augment=True, input_size=size)
    test_set = get_dataset(config.data, "test", config.data_root, input_size=size)
    checkpoint = config.checkpoint or meta.checkpoint
    if config.distill is not None and not checkpoint:
        raise TrtpruneError(
            "--distill fine-tunes against the unpruned model's logits, so it needs that model's trained weights: "
            "pass --checkpoint (the table records none)"
        )
    loaded = load_model(name, shape, checkpoint, num_classes=spec.num_classes)
    if loaded.plan is not None:
        raise TrtpruneError("the checkpoint is already pruned: start from the base checkpoint the table was built for")
    groups = find_groups(loaded.model, loaded.input_shape)
    if {g.name: g.channels for g in groups.groups} != meta.widths:
        raise TrtpruneError(f"table {config.lut} was built for other widths of {name}; rebuild it")
    inputs = PruneInputs(config, latency, budget, name, checkpoint, loaded, groups, spec, train_set, test_set, method)
    smallest = smallest_ms(groups, latency, inputs.round_to, lambda: _joined(config.lut))
    if budget < smallest:
        raise infeasible(budget, smallest, latency, name)
    return inputs
