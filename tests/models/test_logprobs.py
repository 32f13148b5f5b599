"""Per-token log-probs: padding-invariant, image-dependent, equal to plain forwards, split-safe."""

from __future__ import annotations

import pytest
import torch

from openrlhf.models.loading import load_model, load_processor, load_tokenizer
from openrlhf.models.logprobs import (
    compute_token_log_probs,
    entropy_from_logits,
    generate_inputs,
    log_probs_from_logits,
)
from openrlhf.models.vlm_inputs import concat_multimodal, encode_prompt, split_multimodal, take_multimodal

from .helpers import image_prompt, noise_image, pad_rows, shapes_image

ATOL = 1e-5


def _naive_log_probs(logits, labels, temperature=1.0):
    return torch.log_softmax(logits.double() / temperature, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_log_probs_and_entropy_match_log_softmax_in_value_and_gradient(temperature):
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 5, 11, generator=gen) * 3).requires_grad_(True)
    labels = torch.randint(0, 11, (3, 5), generator=gen)
    weights = torch.randn(3, 5, generator=gen)
    for chunk in (4, 11 * 2, 1 << 25):  # one position per chunk, two, everything at once
        lp = log_probs_from_logits(logits, labels, temperature, chunk_elements=chunk)
        ent = entropy_from_logits(logits, temperature, chunk_elements=chunk)
        assert lp.dtype == torch.float32 and lp.shape == (3, 5)
        ref = _naive_log_probs(logits, labels, temperature)
        probs = torch.softmax(logits.double() / temperature, -1)
        ref_ent = -(probs * probs.log()).sum(-1)
        torch.testing.assert_close(lp.double(), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(ent.double(), ref_ent, atol=1e-5, rtol=0)
        (grad,) = torch.autograd.grad(((lp + ent) * weights).sum(), logits)
        (ref_grad,) = torch.autograd.grad(((ref + ref_ent) * weights).sum(), logits)
        torch.testing.assert_close(grad.double(), ref_grad.double(), atol=1e-5, rtol=0)


def test_bf16_logits_give_fp32_logprobs():
    logits = torch.randn(2, 4, 32).to(torch.bfloat16)
    labels = torch.randint(0, 32, (2, 4))
    lp = log_probs_from_logits(logits, labels)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp.double(), _naive_log_probs(logits.float(), labels), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="labels shape"):
        log_probs_from_logits(logits, labels[:, :3])


@pytest.fixture(scope="module")
def lm(tiny_lm_path):
    return load_model(tiny_lm_path).eval(), load_tokenizer(tiny_lm_path)


def test_lm_padded_batch_equals_unpadded_single_forwards(lm):
    model, tok = lm
    texts = ["1 + 2 = 3", "What is 12 * 12? <think>144</think><answer>144</answer>", "Hi"]
    rows = [torch.tensor(tok(t)["input_ids"]) for t in texts]
    ids, mask = pad_rows(rows, tok.pad_token_id, left=2, right=3)  # left pads, and right pads after responses
    with torch.no_grad():
        batch_lp, batch_ent = compute_token_log_probs(model, ids, mask, return_entropy=True)
        assert batch_lp.shape == batch_ent.shape == (3, ids.shape[1] - 1)
        for i, row in enumerate(rows):
            single, single_ent = compute_token_log_probs(
                model, row[None], torch.ones_like(row)[None], return_entropy=True
            )
            valid = mask[i, 1:].bool() & mask[i, :-1].bool()  # target and its context both real tokens
            torch.testing.assert_close(batch_lp[i][valid], single[0], atol=ATOL, rtol=0)
            torch.testing.assert_close(batch_ent[i][valid], single_ent[0], atol=ATOL, rtol=0)
            # and the plain model forward, log_softmax + gather, agrees
            logits = model(input_ids=row[None]).logits
            torch.testing.assert_close(single[0].double(), _naive_log_probs(logits[0, :-1], row[1:]), atol=ATOL, rtol=0)


def test_lm_response_slice_and_gradients(lm):
    model, tok = lm
    rows = [torch.tensor(tok(t)["input_ids"]) for t in ["Compute 3 + 4.", "Compute 10 - 2 please."]]
    ids, mask = pad_rows(rows, tok.pad_token_id)
    with torch.no_grad():
        full, _ = compute_token_log_probs(model, ids, mask)
        tail, _ = compute_token_log_probs(model, ids, mask, num_response_tokens=4, temperature=1.0)
        hot, _ = compute_token_log_probs(model, ids, mask, num_response_tokens=4, temperature=0.5)
    assert tail.shape == (2, 4)
    torch.testing.assert_close(tail, full[:, -4:], atol=ATOL, rtol=0)
    assert not torch.allclose(hot, tail)
    with pytest.raises(ValueError, match="num_response_tokens"):
        compute_token_log_probs(model, ids, mask, num_response_tokens=ids.shape[1])
    model.zero_grad()
    lp, _ = compute_token_log_probs(model, ids, mask, num_response_tokens=4)
    lp.sum().backward()
    grad = model.model.layers[0].self_attn.q_proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.zero_grad()


@pytest.fixture(scope="module")
def vlm(tiny_vlm_path):
    return load_model(tiny_vlm_path).eval(), load_processor(tiny_vlm_path)


def _vlm_samples(processor):
    tok = processor.tokenizer
    specs = [
        ("How many circles? ", [noise_image(0, 60, 90)], "<think>two</think><answer>2</answer>"),
        ("Compare the two pictures.", [noise_image(1, 112, 112), noise_image(2, 56, 70)], "<answer>yes</answer>"),
        ("What is 2 + 2?", [], "<answer>4</answer>"),  # a text-only row inside a multimodal batch
        ("Which color?", [shapes_image("red")], "<answer>red</answer>"),
    ]
    return [encode_prompt(processor, image_prompt(tok, q, len(imgs)) + resp, imgs) for q, imgs, resp in specs]


def _batch(encs, pad_id, left=0):
    ids, mask = pad_rows([e["input_ids"][0] for e in encs], pad_id, left=left)
    return ids, mask, concat_multimodal([take_multimodal(e) for e in encs])


def test_vlm_left_padded_batch_equals_single_and_plain_forward(vlm):
    model, processor = vlm
    encs = _vlm_samples(processor)
    ids, mask, mm = _batch(encs, processor.tokenizer.pad_token_id, left=3)
    num = 8
    with torch.no_grad():
        batch_lp, _ = compute_token_log_probs(model, ids, mask, num_response_tokens=num, multimodal=mm)
        for i, enc in enumerate(encs):
            single, _ = compute_token_log_probs(
                model, enc["input_ids"], enc["attention_mask"], num_response_tokens=num, multimodal=take_multimodal(enc)
            )
            torch.testing.assert_close(batch_lp[i], single[0], atol=ATOL, rtol=0)
            # a plain forward as the Hugging Face docs write it (the model builds its own M-RoPE ids)
            plain = model(**{k: v for k, v in enc.items() if k != "image_counts"}).logits[0]
            ref = _naive_log_probs(plain[-num - 1 : -1], enc["input_ids"][0, -num:])
            torch.testing.assert_close(single[0].double(), ref, atol=ATOL, rtol=0)


def test_vlm_logprobs_depend_on_the_image_and_on_mrope_positions(vlm):
    model, processor = vlm
    text = image_prompt(processor.tokenizer, "Which color?") + "<answer>red</answer>"
    red = encode_prompt(processor, text, [shapes_image("red")])
    blue = encode_prompt(processor, text, [shapes_image("blue")])
    assert torch.equal(red["input_ids"], blue["input_ids"])
    with torch.no_grad():
        lp_red, _ = compute_token_log_probs(
            model, red["input_ids"], red["attention_mask"], multimodal=take_multimodal(red)
        )
        lp_blue, _ = compute_token_log_probs(
            model, blue["input_ids"], blue["attention_mask"], multimodal=take_multimodal(blue)
        )
        # same image, but the text positions Qwen2-VL would use without M-RoPE: must differ
        flat = model(
            input_ids=red["input_ids"], pixel_values=red["pixel_values"], image_grid_thw=red["image_grid_thw"]
        ).logits[0]
    tokens = red["input_ids"][0].tolist()
    first_pad = tokens.index(processor.tokenizer.convert_tokens_to_ids("<|image_pad|>"))
    image_end = tokens.index(processor.tokenizer.convert_tokens_to_ids("<|vision_end|>"))
    after = slice(image_end, None)  # predictions made after the image
    assert (lp_red[0, after] - lp_blue[0, after]).abs().max() > 1e-4
    assert torch.equal(lp_red[0, :first_pad], lp_blue[0, :first_pad])  # predictions before the image agree
    flat_lp = _naive_log_probs(flat[:-1], red["input_ids"][0, 1:])
    assert (flat_lp[after] - lp_red[0, after].double()).abs().max() > 1e-4


def test_vlm_micro_batches_of_split_pixel_values_give_identical_results(vlm):
    model, processor = vlm
    encs = _vlm_samples(processor)
    ids, mask, mm = _batch(encs, processor.tokenizer.pad_token_id)
    with torch.no_grad():
        whole, _ = compute_token_log_probs(model, ids, mask, multimodal=mm, num_response_tokens=6)
        parts = [slice(0, 1), slice(1, 3), slice(3, 4)]
        pieces = split_multimodal(mm, parts)
        assert [int(p["image_counts"].sum()) for p in pieces] == [1, 2, 1]
        micro = torch.cat(
            [
                compute_token_log_probs(model, ids[s], mask[s], multimodal=p, num_response_tokens=6)[0]
                for s, p in zip(parts, pieces, strict=True)
            ]
        )
        # an arbitrary row order (shuffled mini-batches) also lines up
        order = [3, 0, 2, 1]
        (shuffled_mm,) = split_multimodal(mm, [order])
        shuffled, _ = compute_token_log_probs(
            model, ids[order], mask[order], multimodal=shuffled_mm, num_response_tokens=6
        )
    torch.testing.assert_close(micro, whole, atol=ATOL, rtol=0)
    torch.testing.assert_close(shuffled, whole[order], atol=ATOL, rtol=0)
    rejoined = concat_multimodal(pieces)
    assert all(torch.equal(rejoined[k], mm[k]) for k in ("pixel_values", "image_grid_thw", "image_counts"))


def test_vlm_rows_without_their_images_fail_with_the_counts(vlm, lm):
    model, processor = vlm
    encs = _vlm_samples(processor)
    ids, mask, mm = _batch(encs, processor.tokenizer.pad_token_id)
    (first,) = split_multimodal(mm, [slice(0, 1)])
    with pytest.raises(ValueError, match="image_counts"):
        compute_token_log_probs(model, ids[:2], mask[:2], multimodal=first)
    with pytest.raises(ValueError, match="text-only"):
        compute_token_log_probs(lm[0], ids[:1], mask[:1], multimodal=first)


def test_vlm_batched_greedy_generation_equals_single_prompts(vlm):
    model, processor = vlm
    tok = processor.tokenizer
    encs = [
        encode_prompt(processor, image_prompt(tok, "Which color?"), [shapes_image("red")]),
        encode_prompt(processor, image_prompt(tok, "Two?", 2), [noise_image(1, 112, 112), noise_image(2, 56, 56)]),
        encode_prompt(processor, image_prompt(tok, "No picture here.", 0), []),
    ]
    ids, mask, mm = _batch(encs, tok.pad_token_id)
    with torch.no_grad():
        batch = model.generate(**generate_inputs(model, ids, mask, mm), max_new_tokens=6, do_sample=False)
        for i, enc in enumerate(encs):
            single = model.generate(
                **generate_inputs(model, enc["input_ids"], enc["attention_mask"], take_multimodal(enc)),
                max_new_tokens=6,
                do_sample=False,
            )
            assert batch[i, ids.shape[1] :].tolist() == single[0, enc["input_ids"].shape[1] :].tolist()
