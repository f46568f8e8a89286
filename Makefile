# Two entry points, each installing what it needs into .venv through constraints.txt.
#   make demo  - end-to-end distillation on the embedded default teacher (SevenNet-0)
#   make test  - the test suite
VENV    ?= .venv
PYTHON  ?= python3.11
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
DEMO_EXTRAS := sevennet,export
TEST_EXTRAS := dev,sevennet,xtb,export,cluster,orb,mace,metatomic,torchsim
# mace-torch pins e3nn==0.4.4 (sevenn needs >=0.5; MACE runs on 0.6): its deps come from the
# [mace] extra, the package itself without deps.
NODEPS_TEST := mace-torch==0.3.16

.PHONY: demo test install-demo install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip setuptools wheel

$(VENV)/.demo-installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(VENV)/.test-installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) -e ".[$(TEST_EXTRAS)]"
	$(PIP) --no-deps $(NODEPS_TEST)
	touch $@

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed

demo: install-demo
	$(VENV)/bin/mlffd distill configs/demo.yaml

test: install-test
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
