"""Datasets: real Fashion-MNIST, and the user-supplied folder formats built in tmp."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from trtprune.core.errors import DataError
from trtprune.data import get_dataset, get_spec


def test_fashion_mnist_is_real_and_normalised():
    train = get_dataset("fashion-mnist", "train")
    test = get_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0 <= int(y) < 10
    xs = torch.stack([train[i][0] for i in range(2000)])
    assert abs(float(xs.mean())) < 0.1 and abs(float(xs.std()) - 1.0) < 0.15


def test_augmentation_keeps_shape_and_changes_pixels():
    aug = get_dataset("fashion-mnist", "train", augment=True)
    plain = get_dataset("fashion-mnist", "train")
    torch.manual_seed(0)
    diffs = [float((aug[i][0] - plain[i][0]).abs().sum()) for i in range(20)]
    assert aug[0][0].shape == plain[0][0].shape
    assert sum(d > 0 for d in diffs) >= 10


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        get_dataset("fashion-mnist", "test", tmp_path)


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(range(4))}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    train = get_dataset("cifar10", "train", tmp_path, augment=True)
    test = get_dataset("cifar10", "test", tmp_path)
    assert (len(train), len(test)) == (20, 4)
    x, y = test[3]
    assert x.shape == (3, 32, 32) and int(y) == 3
    raw = np.frombuffer(pickle.loads((tmp_path / "test_batch").read_bytes())[b"data"][3].tobytes(), np.uint8)
    pre = get_spec("cifar10").preprocessing
    expect = (raw.reshape(3, 32, 32)[0, 0, 0] / 255.0 - pre.mean[0]) / pre.std[0]
    assert float(x[0, 0, 0]) == pytest.approx(expect, abs=1e-5)


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (300, 260), (10, 200, 30)).save(tmp_path / split / cls / "a.png")
    ds = get_dataset("imagefolder", "test", tmp_path)
    x, y = ds[1]
    assert x.shape == (3, 224, 224) and int(y) == 1
    small = get_dataset("imagefolder", "train", tmp_path, input_size=(3, 64, 80))  # the model's input, not 224
    assert small[0][0].shape == (3, 64, 80)


def test_fixed_size_data_keeps_its_size():
    x, _ = get_dataset("fashion-mnist", "test", limit=1, input_size=(1, 64, 64))[0]
    assert tuple(x.shape) == (1, 28, 28)


def test_missing_folders_explain(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        get_dataset("cifar10", "train", tmp_path)
    with pytest.raises(DataError, match="ImageFolder"):
        get_dataset("imagefolder", "train", tmp_path)
