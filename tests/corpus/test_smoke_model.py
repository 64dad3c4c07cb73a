import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_smoke_model_loads_and_chats(smoke_model):
    tok = AutoTokenizer.from_pretrained(smoke_model)
    model = AutoModelForCausalLM.from_pretrained(smoke_model)
    # vLLM's CPU attention needs head_dim >= 32.
    assert model.config.head_dim == 64
    text = tok.apply_chat_template([{"role": "user", "content": "Explain lists."}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok("def add(a, b):\n    return a + b\n")["input_ids"]
    assert tok.decode(ids) == "def add(a, b):\n    return a + b\n"
    torch.manual_seed(0)
    out = model.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)
    assert out.shape[1] == len(ids) + 5
