"""The HF rollout engine on the tiny Qwen2.5-VL: text and image rows in one batch, several images in order."""

from __future__ import annotations

import pytest
import torch

from openrlhf.models.vlm_inputs import build_mm_token_type_ids
from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.hf_engine import HFRolloutEngine

from .helpers import chat_request, random_image, teacher_forced_log_probs

TINY_MIN_PIXELS, TINY_MAX_PIXELS = 56 * 56, 112 * 112


@pytest.fixture(scope="module")
def engine(tiny_vlm_path):
    return HFRolloutEngine(
        str(tiny_vlm_path),
        generate_batch_size=4,
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        num_threads=1,
    )


@pytest.fixture(scope="module")
def images():
    return [random_image(0, 56, 56), random_image(1, 112, 56), random_image(2, 56, 112)]


@pytest.fixture(scope="module")
def mixed_requests(engine, images):
    tok = engine.tokenizer
    return [
        chat_request(tok, "What shape is this?", images[:1]),
        chat_request(tok, "Say hello."),
        chat_request(tok, "Which image is larger?", [images[1], images[2]]),
        chat_request(tok, "Count to three."),
    ]


def image_inputs(engine, request, images):
    """What the processor makes of one row: ids with expanded placeholders, pixels, grid sizes."""
    return engine.processor(text=[request.prompt_text], images=images, return_tensors="pt")


def recompute(engine, out, inputs):
    """Teacher-forced log-probs with the row's pixels and its image positions (mm_token_type_ids)."""
    ids = torch.tensor([out.prompt_token_ids + out.output_token_ids])
    tok = engine.tokenizer
    mm = build_mm_token_type_ids(
        ids, tok.convert_tokens_to_ids("<|image_pad|>"), tok.convert_tokens_to_ids("<|video_pad|>")
    )
    return teacher_forced_log_probs(
        engine.model,
        out.prompt_token_ids,
        out.output_token_ids,
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
        mm_token_type_ids=mm,
    )


def test_mixed_text_and_image_rows_in_one_call(engine, mixed_requests, images):
    results = engine.generate(mixed_requests, SamplingParams(n=2, max_new_tokens=8, seed=4))
    assert [len(outs) for outs in results] == [2, 2, 2, 2]
    image_pad = engine.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for request, outs in zip(mixed_requests, results, strict=True):
        for out in outs:
            assert len(out.log_probs) == len(out.output_token_ids) > 0
            if not request.images:
                assert out.prompt_token_ids == request.prompt_token_ids
                continue
            inputs = image_inputs(engine, request, request.images)
            # the prompt the model saw: placeholders expanded to one token per merged patch
            assert out.prompt_token_ids == inputs["input_ids"][0].tolist()
            expected_pads = int(inputs["image_grid_thw"].prod(-1).sum()) // 4
            assert out.prompt_token_ids.count(image_pad) == expected_pads
            torch.testing.assert_close(
                torch.tensor(out.log_probs), recompute(engine, out, inputs), atol=1e-4, rtol=1e-4
            )


def test_several_images_stay_in_order(engine, mixed_requests):
    """The log-probs match the images in the given order and not the swapped one."""
    request = mixed_requests[2]
    out = engine.generate([request], SamplingParams(max_new_tokens=8, seed=9))[0][0]
    in_order = image_inputs(engine, request, request.images)
    swapped = image_inputs(engine, request, request.images[::-1])
    got = torch.tensor(out.log_probs)
    torch.testing.assert_close(got, recompute(engine, out, in_order), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, recompute(engine, out, swapped), atol=1e-3)


def test_image_rows_are_deterministic_given_the_seed(engine, mixed_requests):
    params = SamplingParams(n=2, max_new_tokens=6, seed=21)
    first = engine.generate(mixed_requests, params)
    second = engine.generate(mixed_requests, params)
    assert [[o.output_token_ids for o in outs] for outs in first] == [
        [o.output_token_ids for o in outs] for outs in second
    ]


def test_stream_gives_text_rows_first_then_image_rows_as_generate_does(engine, mixed_requests):
    params = SamplingParams(n=2, max_new_tokens=6, seed=21)
    pieces = list(engine.generate_stream(mixed_requests, params))
    order = [index for piece in pieces for index, _ in piece]
    text_rows = [i for i, r in enumerate(mixed_requests) if not r.images]
    assert sorted(order) == list(range(len(mixed_requests))) and order[: len(text_rows)] == text_rows
    by_index = {index: outs for piece in pieces for index, outs in piece}
    whole = engine.generate(mixed_requests, params)
    assert [[o.output_token_ids for o in by_index[i]] for i in range(len(whole))] == [
        [o.output_token_ids for o in outs] for outs in whole
    ]


def test_placeholder_count_must_match_the_images(engine, mixed_requests, images):
    request = mixed_requests[0]
    bad = GenerationRequest(request.prompt_text, request.prompt_token_ids, images=images[:2])
    with pytest.raises(ValueError, match=r"request 0: prompt_text has 1 <\|image_pad\|> placeholder\(s\) for 2"):
        engine.generate([bad], SamplingParams())


def test_image_and_video_placeholders_are_never_sampled(engine, mixed_requests):
    """A model that all but insists on <|image_pad|>/<|video_pad|> still never samples them (every later
    forward would take a sampled placeholder for an image slot); the recorded log-probs stay those of the
    whole vocabulary (what the trainer scores), so the banned tokens' mass is visible in them."""
    tok = engine.tokenizer
    banned = [tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>")]
    assert sorted(banned) == engine.banned_ids

    def prefer_placeholders(_module, _inputs, logits):
        logits[..., banned] += 30.0
        return logits

    params = SamplingParams(n=2, max_new_tokens=6, temperature=1.0, seed=3)
    handle = engine.model.get_output_embeddings().register_forward_hook(prefer_placeholders)
    try:
        results = engine.generate(mixed_requests, params)
    finally:
        handle.remove()
    outputs = [o for per_request in results for o in per_request]
    assert all(len(o.output_token_ids) == 6 for o in outputs)  # nothing else ended them early
    assert not any(set(banned) & set(o.output_token_ids) for o in outputs)
    # with +30 on the placeholders nearly all the mass is theirs: each sampled token has a tiny log-prob
    assert max(lp for o in outputs for lp in o.log_probs) < -20.0
