#!/usr/bin/env bash
# Fetch the sample ImageNet images that ship inside the foolbox wheel (foolbox/data/imagenet_NN_LABEL.jpg,
# LABEL = ImageNet class index) into tests/assets/imagenet/. The wheel's data/ folder also holds MNIST,
# FashionMNIST and CIFAR samples (.png); only the imagenet_* files (.jpg, or .png should a release ship them)
# are extracted. Only the wheel is downloaded (--no-deps); foolbox is never installed.
# Idempotent: does nothing when the images are already there.
set -euo pipefail

FOOLBOX_VERSION="${FOOLBOX_VERSION:-3.3.4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/tests/assets/imagenet}"
PYTHON="${PYTHON:-python}"

mkdir -p "$DEST"
if compgen -G "$DEST/imagenet_*.jpg" >/dev/null || compgen -G "$DEST/imagenet_*.png" >/dev/null; then
    echo "sample images already present in $DEST; nothing to do"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "downloading foolbox==$FOOLBOX_VERSION wheel (no deps, not installed)"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "foolbox==$FOOLBOX_VERSION" -d "$TMP"

WHEEL="$(compgen -G "$TMP/foolbox-*.whl" | head -n 1 || true)"
if [[ -z "$WHEEL" ]]; then
    echo "error: no foolbox wheel was downloaded into $TMP" >&2
    exit 1
fi

# Extract to a staging folder first, then move into place, so an interrupted run leaves no partial set.
STAGE="$TMP/stage"
mkdir -p "$STAGE"
"$PYTHON" - "$WHEEL" "$STAGE" <<'PY'
import sys
import zipfile
from pathlib import PurePosixPath

wheel, stage = sys.argv[1], sys.argv[2]
count = 0
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        p = PurePosixPath(name)
        if (
            p.parent == PurePosixPath("foolbox/data")
            and p.name.startswith("imagenet_")
            and p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        ):
            with zf.open(name) as src, open(f"{stage}/{p.name}", "wb") as dst:
                dst.write(src.read())
            count += 1
if count == 0:
    sys.exit(f"error: no foolbox/data/imagenet_*.jpg|png found in {wheel}")
print(f"extracted {count} images")
PY

mv "$STAGE"/* "$DEST"/
echo "sample images written to $DEST"
