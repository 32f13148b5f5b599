"""Images reach the policy: a DeepSpeed policy worker on Ray scores image rows with their pixels and M-RoPE.

The worker's log-probs of [prompt | response] rows (text-only, one-image and two-image rows mixed, cut
into micro-batches of 2) equal a plain single-sample forward of the Hugging Face model (which builds its
own M-RoPE positions), and change when the image changes.
"""

from __future__ import annotations

import pytest
import torch

from openrlhf.config_loading import build_config
from openrlhf.data.sample import Sample
from openrlhf.data.synthetic import Shape, draw_shapes_image
from openrlhf.models.loading import load_model
from openrlhf.models.vlm_inputs import ImageTokenMismatchError, PromptTooLongError
from openrlhf.rollout.base import GenerationOutput
from openrlhf.rollout.prompt_encoder import PromptEncoder
from openrlhf.trainer.experience_maker import Rollout, build_experience

RESPONSE = [15, 200, 301, 77, 42, 9]  # fixed response token ids (any ids of the 2048-token vocabulary)


def _image(path, colour: str, box=(8, 8, 30, 30), size: int = 56) -> str:
    draw_shapes_image([Shape("square", colour, box)], size).convert("RGB").save(path)
    return str(path)


def _user(*parts) -> list[dict]:
    return [{"role": "user", "content": list(parts)}]


def _samples(tmp_path, first_colour: str = "red") -> list[Sample]:
    red = _image(tmp_path / f"a_{first_colour}.png", first_colour)
    blue = _image(tmp_path / "b.png", "blue", (20, 20, 50, 50), size=84)
    img, txt = {"type": "image"}, {"type": "text", "text": "What colour is the square?"}
    return [
        Sample(_user(img, txt), images=[red], source="mem", line=1),
        Sample([{"role": "user", "content": "What is 2 + 3?"}], source="mem", line=2),
        Sample(_user(img, {"type": "text", "text": "and"}, img, txt), images=[blue, red], source="mem", line=3),
        Sample(_user(img, txt), images=[blue], source="mem", line=4),
    ]


def _config(model_path, **data):
    return build_config(
        {
            "actor": {"model_name_or_path": str(model_path), "num_gpus_per_node": 1},
            "data": {"max_pixels": 12544, "prompt_max_len": 256, **data},
            "train": {"micro_rollout_batch_size": 2, "micro_train_batch_size": 2, "output_dir": "unused"},
            "ds": {"zero_stage": 2},
        }
    )


def _experience(cfg, samples):
    encoder = PromptEncoder(cfg)
    prompts = [encoder.encode(s) for s in samples]
    outputs = [GenerationOutput(p.request.prompt_token_ids, RESPONSE, "", [0.0] * len(RESPONSE)) for p in prompts]
    return prompts, build_experience(Rollout(prompts, outputs, 1), encoder.tokenizer.pad_token_id)


def _plain_forward(model, prompt) -> torch.Tensor:
    """log p(response) of one unpadded row: the HF model's own forward (its own rope index), no project helpers."""
    ids = torch.tensor([prompt.request.prompt_token_ids + RESPONSE])
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if prompt.multimodal is not None:
        kwargs["pixel_values"] = prompt.multimodal["pixel_values"]
        kwargs["image_grid_thw"] = prompt.multimodal["image_grid_thw"]
        # what the processor returns beside the ids (image tokens 1, text 0): the model builds M-RoPE from it
        kwargs["mm_token_type_ids"] = (ids == model.config.image_token_id).long()
    with torch.no_grad():
        logits = model(**kwargs).logits[0, -len(RESPONSE) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(RESPONSE).unsqueeze(-1)).squeeze(-1)


@pytest.fixture(scope="module")
def policy(vlm_ray, tiny_vlm_path):
    from openrlhf.trainer.ray_setup import worker_env
    from openrlhf.workers.placement import BundleSpec, WorkerGroup, create_placement_group
    from openrlhf.workers.policy_worker import PolicyWorker

    cfg = _config(tiny_vlm_path)
    spec = BundleSpec(cpus=cfg.train.cpus_per_worker, gpus=0.0)
    pg = create_placement_group(1, spec, name="vlm-policy-test")
    group = WorkerGroup(
        PolicyWorker,
        1,
        pg,
        spec=spec,
        env_vars=worker_env(),
        name="policy",
        init_kwargs={"cfg_dict": cfg.model_dump(mode="json"), "total_optimizer_steps": 1},
    )
    yield cfg, group
    group.shutdown()
    from ray.util.placement_group import remove_placement_group

    remove_placement_group(pg)


def test_policy_logprobs_of_mixed_rows_equal_plain_single_forwards_and_follow_the_image(
    policy, tiny_vlm_path, tmp_path
):
    cfg, group = policy
    prompts, exp = _experience(cfg, _samples(tmp_path))
    assert [m is None for m in exp.multimodal] == [False, True, False, False]
    assert int(exp.multimodal[2]["image_counts"][0]) == 2
    worker = group.call("compute_log_probs", exp)[0]
    assert worker.shape == (4, len(RESPONSE))

    model = load_model(tiny_vlm_path).eval()
    plain = torch.stack([_plain_forward(model, p) for p in prompts])
    torch.testing.assert_close(worker, plain, atol=2e-4, rtol=1e-4)

    # Rows in another order (so other micro-batch cuts) give each row the same values.
    order = [3, 1, 2, 0]
    shuffled = group.call("compute_log_probs", exp.select(order))[0]
    torch.testing.assert_close(shuffled, worker[order], atol=1e-5, rtol=1e-5)

    # Another image in row 0 (a green instead of a red square): its log-probs move, the others do not.
    _, changed_exp = _experience(cfg, _samples(tmp_path, first_colour="green"))
    changed = group.call("compute_log_probs", changed_exp)[0]
    assert (changed[0] - worker[0]).abs().max() > 1e-3
    torch.testing.assert_close(changed[1], worker[1])
    torch.testing.assert_close(changed[3], worker[3])


def test_truncated_image_prompt_fails_before_generation_naming_the_row(tiny_vlm_path, tmp_path):
    samples = _samples(tmp_path)
    encoder = PromptEncoder(_config(tiny_vlm_path, prompt_max_len=20))
    encoder.encode(samples[1])  # the short text row fits
    with pytest.raises(PromptTooLongError, match=r"mem:3: prompt is \d+ tokens \(with its image tokens"):
        encoder.encode(samples[2])
    # A prompt cut by hand (the trap the check exists for) fails with the counts, before any model call.
    prompts, exp = _experience(_config(tiny_vlm_path), samples)
    from openrlhf.models.logprobs import forward_inputs

    cut = exp.sequences[2:3].clone()
    image_id = load_model(tiny_vlm_path).config.image_token_id
    cut[cut == image_id] = 0
    with pytest.raises(ImageTokenMismatchError, match="holds 0 image tokens"):
        forward_inputs(load_model(tiny_vlm_path), cut, exp.attention_mask[2:3], exp.multimodal[2])


def test_image_rows_need_a_vision_model(tiny_lm_path, tmp_path):
    encoder = PromptEncoder(_config(tiny_lm_path))
    with pytest.raises(ValueError, match="mem:1: the row has images but .* is text-only"):
        encoder.encode(_samples(tmp_path)[0])
