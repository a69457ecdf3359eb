# mmdas: one command installs, one more tests. How long each target takes: docs/development.md.
#   make install      create .venv/ and install the pinned stack (mmcv 2.1.0 compiled with its ops)
#   make test         install if needed, lint, run the test suite, then the numeric tests again
#                     with another CPU's rounding (OTHER_CPU below; what CI runs: .ci/run)
#   make test-fast    the tests not marked slow (no training runs, no extra processes)
#   make test-other-cpu  the whole suite with another CPU's rounding, once
#   make lint         flake8, isort and yapf in check mode (configured in setup.cfg)
#   make format       rewrite the code with isort and yapf
#   make demo         install if needed, then the detection demo (DAS vs vanilla Faster R-CNN)
#   make demo-cls     install if needed, then the classification demo (DAS and plain ResNet-18)
#   make demo-seeds   both demos over seeds 0, 1, 2 on the test splits: docs/results.md's mean, spread
#                     and paired differences
#   make tune-cls     the classification demo's learning rates, chosen on val
#   make controls     the controls of the classification demo's gap on the harder shapes set: no
#                     gate, DAS, a wider plain net (DAS's parameters within 5 %), SE, CBAM; rate
#                     and length chosen on val, seeds 0-4 on test (slow: several hours here)
#   make controls-det the detection demo's two arms at 1x, 2x and 4x fine-tunes (150 / 300 / 600
#                     iterations) from one vanilla detector per seed, seeds $(SEEDS)
#   make compare      every module (the controls' runs shared) under the same protocol, then
#                     docs/comparison.md's tables regenerated from its JSON (slower still)
#   make bench        latency, memory and ONNX Runtime benchmarks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
MMCV_VERSION := 2.1.0
STAMP := $(VENV)/.installed
REQS := tools/misc/install_mmcv.sh $(wildcard requirements/*.txt) setup.py
CONSTRAINTS := -c requirements/constraints.txt
LINTED := mmdas tools tests configs projects setup.py conftest.py

SEEDS ?= 0 1 2 3 4
# Another CPU's rounding on this one: PyTorch's own kernels scalar instead of AVX2/AVX-512,
# oneDNN's convolutions at most AVX2 (a change on an AVX-512 machine, none on an AVX2 one).
# It does not reach MKL's matrix products or ONNX Runtime, which choose by the CPU itself. The
# numeric tests (the deformable conv against mmcv and torchvision, the gates, ONNX Runtime
# against PyTorch and mmdet, the export check failing files with a real difference; not the
# tests marked slow) run again under it in `make test`.
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2
NUMERIC_TESTS := tests/test_ops tests/test_models/test_das_gate.py tests/test_models/test_gates.py \
	tests/test_models/test_with_cp.py tests/test_deployment
# The tests run in TEST_WORKERS processes (pytest-xdist), one thread each (conftest.py).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal
# The experiment bench (demos, comparison, benchmarks): projects/das_bench, outside the package.
BENCH := PYTHONPATH=projects/das_bench $(PY) projects/das_bench/tools

.PHONY: install test test-fast test-other-cpu lint format demo demo-cls demo-seeds tune-cls controls controls-det compare \
	bench clean-venv

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/build.txt $(CONSTRAINTS)
	$(PIP) install -q -r requirements/mminstall.txt $(CONSTRAINTS)
	tools/misc/install_mmcv.sh $(PY) $(MMCV_VERSION)
	$(PIP) install -q -r requirements/runtime.txt -r requirements/optional.txt \
	  -r requirements/tests.txt "mmcv==$(MMCV_VERSION)" $(CONSTRAINTS)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PIP) check
	$(PY) -c "from mmcv.ops import ModulatedDeformConv2d; import mmdet, mmpretrain, mmseg, onnxruntime, pytorch_grad_cam, mmdas; print('mmdas stack OK')" \
	  || { echo "ERROR: mmcv was installed without its compiled ops (from mmcv.ops import ModulatedDeformConv2d failed)"; exit 1; }
	touch $(STAMP)

lint: install
	$(VENV)/bin/flake8 $(LINTED)
	$(VENV)/bin/isort --check-only --diff $(LINTED)
	$(VENV)/bin/yapf --diff --recursive --parallel $(LINTED)

format: install
	$(VENV)/bin/isort $(LINTED)
	$(VENV)/bin/yapf --in-place --recursive --parallel $(LINTED)

test: lint
	$(PYTEST)
	$(OTHER_CPU) $(PYTEST) -m "not slow" $(NUMERIC_TESTS)

test-fast: install
	$(PYTEST) -m "not slow"

test-other-cpu: install
	$(OTHER_CPU) $(PYTEST)

demo: install
	$(BENCH)/demo.py

demo-cls: install
	$(BENCH)/demo_cls.py

demo-seeds: install
	$(BENCH)/demo.py --seeds 0 1 2
	$(BENCH)/demo_cls.py --seeds 0 1 2

tune-cls: install
	$(BENCH)/tune_demo_cls.py

controls: install
	$(BENCH)/compare_gates.py --sections accuracy --gates none DAS wide SE CBAM

controls-det: install
	$(BENCH)/demo.py --finetune-iters 150 300 600 --seeds $(SEEDS)

compare: install
	$(BENCH)/compare_gates.py --sections cost latency growth accuracy detection
	$(BENCH)/compare_gates.py --report --docs docs/comparison.md

bench: install
	$(BENCH)/benchmark.py --before aef62b0

clean-venv:
	rm -rf $(VENV)
