# trtprune: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
MODEL ?= resnet50
BACKEND ?= ort
MODE ?= block
STEP ?= 8
INPUT ?=
CHECKPOINT ?=
DEMO := engines/demo
DEMO_EPOCHS ?= 2
TRTPRUNE := $(PYTHON) -m trtprune.cli
PYTEST_ARGS ?=

.PHONY: install system-deps test lint demo lut clean

# Debian packages (Fashion-MNIST) and the package with its dev extra.
system-deps:
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; fi; \
	fi

install: system-deps
	$(PIP) install -q -e '.[dev]'
	$(PYTHON) -c "import torch, torchvision, onnxruntime, torch_pruning; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'onnxruntime', onnxruntime.__version__)"
	bash scripts/fetch_sample_images.sh

lint: install
	$(PYTHON) -m ruff check trtprune tests benchmarks
	$(PYTHON) -m ruff format --check trtprune tests benchmarks

test: lint
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

# The main job end to end on the embedded default engine (ONNX Runtime, CPU).
demo: install
	@mkdir -p $(DEMO)
	@if [ ! -f $(DEMO)/base.pt ]; then \
		$(TRTPRUNE) train resnet20 --data fashion-mnist --epochs $(DEMO_EPOCHS) --out $(DEMO)/base.pt; \
	else echo "reusing $(DEMO)/base.pt"; fi
	$(TRTPRUNE) groups --checkpoint $(DEMO)/base.pt
	$(TRTPRUNE) export --checkpoint $(DEMO)/base.pt --out $(DEMO)/base.onnx
	$(TRTPRUNE) train --checkpoint $(DEMO)/base.pt --keep-ratio 0.5 --epochs 1 --lr 0.01 --data fashion-mnist --out $(DEMO)/pruned.pt
	$(TRTPRUNE) export --checkpoint $(DEMO)/pruned.pt --out $(DEMO)/pruned.onnx
	$(TRTPRUNE) eval $(DEMO)/base.onnx $(DEMO)/pruned.onnx --data fashion-mnist

# Latency table for MODEL at its default input (override INPUT=1x3x224x224, CHECKPOINT=..., MODE=network).
# Resumable: rerun after an interruption and it continues where it stopped.
lut: install
	$(TRTPRUNE) lut $(MODEL) --backend $(BACKEND) --mode $(MODE) --step $(STEP) \
		$(if $(INPUT),--input $(INPUT)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) --out engines/$(MODEL)/lut.db

clean:
	rm -rf engines/demo .pytest_cache .ruff_cache
