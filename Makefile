# mmdas: one command installs, one more tests.
#   make install   create .venv/ and install the pinned stack (mmcv 2.1.0 compiled with its ops)
#   make test      install if needed, then run the test suite
#   make demo      install if needed, then the detection demo (DAS vs vanilla Faster R-CNN)
#   make demo-cls  install if needed, then the classification demo (DAS-ResNet-18)
#   make bench     parameter/FLOP counts and latency benchmark
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
MMCV_VERSION := 2.1.0
STAMP := $(VENV)/.installed
REQS := tools/misc/install_mmcv.sh $(wildcard requirements/*.txt) setup.py
CONSTRAINTS := -c requirements/constraints.txt

.PHONY: install test demo demo-cls bench clean-venv

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

test: install
	$(PY) -m pytest tests

demo: install
	$(PY) tools/demo.py

demo-cls: install
	$(PY) tools/demo_cls.py

bench: install
	$(PY) tools/analysis/benchmark.py

clean-venv:
	rm -rf $(VENV)
