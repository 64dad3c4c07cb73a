import json

import numpy as np
import torch


def test_export_loads_in_transformers_and_generates(smoke_run, packed):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = smoke_run / "final"
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    assert model.config.model_type == "llama" and model.config.eos_token_id == tok.eos_token_id == 0

    # The exported weights are the trained ones: the loss on validation windows matches the run's last val_loss
    # (random weights would give ~ln(512) = 6.2).
    val = np.fromfile(packed / "val.bin", dtype=np.uint16).astype(np.int64)
    T = 64
    windows = (len(val) - 1) // T
    offs = np.linspace(0, windows - 1, min(windows, 20 * 8)).astype(np.int64) * T
    x = torch.from_numpy(np.stack([val[o : o + T + 1] for o in offs]))
    with torch.no_grad():
        logits = model(input_ids=x[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()
    logged = [json.loads(ln) for ln in (smoke_run / "train_log.jsonl").read_text().splitlines()]
    assert abs(loss - [e for e in logged if "val_loss" in e][-1]["val_loss"]) < 1e-4

    prompt = tok("# Sums a list\n\nThis section sums a", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, prompt["input_ids"].shape[1] :])
    assert out.shape[1] > prompt["input_ids"].shape[1] and text.strip()
