"""The exported model serves in vLLM (the CPU build). Engine start costs ~30 s, so this test is
marked ``vllm``: run it alone with ``pytest -m vllm tests/pretrain``. vLLM starts workers with
``spawn``, so the engine is built in a fresh interpreter under ``__main__``."""

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
from vllm import LLM, SamplingParams

if __name__ == "__main__":
    llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, gpu_memory_utilization=0.2, seed=0)
    outs = llm.generate(json.loads(sys.argv[2]), SamplingParams(temperature=0.0, max_tokens=12, seed=0))
    print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in outs]))
"""


@pytest.mark.vllm
def test_export_loads_in_vllm_and_generates(smoke_run, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = smoke_run / "final"
    prompts = ["# Sums a list\n\nThis section sums a", "def reverses_tree_7(xs):\n"]
    (tmp_path / "run.py").write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(final), json.dumps(prompts)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    got = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])

    # Greedy decoding agrees with transformers on the same weights (float32 both).
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    for prompt, ids in zip(prompts, got):
        assert len(ids) >= 1
        enc = tok(prompt, return_tensors="pt")
        ref = model.generate(**enc, max_new_tokens=12, do_sample=False)[0, enc["input_ids"].shape[1]:].tolist()
        n = min(len(ids), len(ref), 4)
        assert ids[:n] == ref[:n], (tok.decode(ids), tok.decode(ref))
