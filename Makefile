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
DEMO_FINETUNE_SAMPLES ?= 20000
TRTPRUNE := $(PYTHON) -m trtprune.cli
PYTEST_ARGS ?=

.PHONY: install system-deps test test-slow lint demo lut clean

# Debian packages (Fashion-MNIST) and the package with its dev extra.
system-deps:
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; fi; \
	fi

install: system-deps
	$(PIP) install -q -e '.[dev]'
	$(PYTHON) -c "import torch, torchvision, onnxruntime, openvino, torch_pruning; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'onnxruntime', onnxruntime.__version__, 'openvino', openvino.__version__)"
	bash scripts/fetch_sample_images.sh

lint: install
	$(PYTHON) -m ruff check trtprune tests benchmarks
	$(PYTHON) -m ruff format --check trtprune tests benchmarks

# The suite without the tests marked slow (under 15 min on 2 cores); test-slow runs those (CI runs both).
test: lint
	$(PYTHON) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)

# The main job end to end on the embedded default engine (ONNX Runtime, CPU):
# train (or reuse) the demo model -> latency table -> prune to half the latency -> report.
demo: install
	@mkdir -p $(DEMO)
	@if [ ! -f $(DEMO)/base.pt ]; then \
		$(TRTPRUNE) train resnet20 --data fashion-mnist --epochs $(DEMO_EPOCHS) --out $(DEMO)/base.pt; \
	else echo "reusing $(DEMO)/base.pt"; fi
	$(MAKE) --no-print-directory lut MODEL=resnet20 CHECKPOINT=$(DEMO)/base.pt
	$(TRTPRUNE) prune --lut engines/resnet20/lut.db --budget-ratio 0.5 --stages 2 --finetune-epochs 1 \
		--limit $(DEMO_FINETUNE_SAMPLES) --out $(DEMO)/run
	@cat $(DEMO)/run/report.md

# Latency table for MODEL at its default input (override INPUT=1x3x224x224, CHECKPOINT=..., MODE=network,
# BACKEND=openvino: the engine, one of trtprune's backends).
# Resumable: rerun after an interruption and it continues where it stopped.
lut:
	@$(MAKE) --no-print-directory install >/dev/null
	$(TRTPRUNE) lut $(MODEL) --backend $(BACKEND) --mode $(MODE) --step $(STEP) \
		$(if $(INPUT),--input $(INPUT)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) --out engines/$(MODEL)/lut.db

clean:
	rm -rf engines/demo .pytest_cache .ruff_cache
