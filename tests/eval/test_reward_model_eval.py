"""openrlhf-eval --task reward_model: the released layouts of VL-RewardBench, MM-RLHF-RewardBench and Multimodal
RewardBench, hand-computed accuracy / Voting@K / position consistency from saved verdicts, bad-row messages,
and a short run of the tiny VLM through the CLI that --from-outputs re-scores to the same figures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from openrlhf.cli.eval import main
from openrlhf.data.prompts import r1_reward_judge_prompt
from openrlhf.eval.pairwise_data import read_pairs
from openrlhf.eval.pairwise_metrics import parse_verdict
from openrlhf.eval.reward_model import plan_orders, saved_results

REPO = Path(__file__).resolve().parents[2]
BAD = "<answer>1 or 2</answer>"  # names both positions: invalid
NONE = "I cannot decide."  # no answer at all: invalid


def say(position: int) -> str:
    """An output that prefers ``position`` (1 or 2), with a distracting digit in its reasoning."""
    return f"<think>Response {3 - position} is longer.</think><answer>{position}</answer>"


def png_bytes(color: str, size: int = 28) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: Path, color: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))


def write_vl_rewardbench(path: Path, rows: list[dict]) -> Path:
    """A parquet file with VL-RewardBench's columns (the Hub's Image column is a {bytes, path} struct)."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("query", pa.string()),
            ("response", pa.list_(pa.string())),
            ("image", image_type),
            ("human_ranking", pa.list_(pa.int64())),
            ("models", pa.list_(pa.string())),
            ("judge", pa.string()),
            ("rationale", pa.string()),
            ("query_source", pa.string()),
            ("ground_truth", pa.string()),
        ]
    )
    full = [
        {"models": ["model-a", "model-b"], "judge": "human", "rationale": "", "ground_truth": "", **r} for r in rows
    ]
    pq.write_table(pa.Table.from_pylist(full, schema=schema), path)
    return path


def vl_rows() -> list[dict]:
    return [
        {
            "id": "povid-1",
            "query": "What colour is the square?",
            "response": ["It is red.", "It is blue."],
            "image": {"bytes": png_bytes("red"), "path": "a.png"},
            "human_ranking": [0, 1],
            "query_source": "povid",
        },
        {
            "id": "povid-2",
            "query": "Is there a circle?",
            "response": ["Yes, a big one.", "No."],
            "image": {"bytes": png_bytes("green"), "path": "b.png"},
            "human_ranking": [1, 0],
            "query_source": "povid",
        },
        {
            "id": "mmmu-3",
            "query": "What is 2 + 3?",
            "response": ["6", "5"],
            "image": {"bytes": png_bytes("blue"), "path": "c.png"},
            "human_ranking": [1, 0],
            "query_source": "mmmu-pro",
        },
    ]


def write_mm_rlhf(folder: Path) -> Path:
    """mm_reward_bench.jsonl as released: several pairs share an id, chosen is preferred, one video row."""
    for name, color in (("mcq/a.png", "red"), ("long/b.png", "green"), ("short/c.png", "blue")):
        save_png(folder / name, color)

    def row(ident, image, chosen, rejected):
        return {
            "id": ident,
            "image": image,
            "prompt": f"Question {ident}",
            "chosen": chosen,
            "rejected": rejected,
            "chosen_reason": "right",
            "rejected_reason": "wrong",
        }

    rows = [
        row("q1", "mcq/a.png", "Answer: A", "Answer: B"),
        row("q1", "mcq/a.png", "Answer: A", "Answer: C"),
        row("q2", "long/b.png", "A long, careful answer.", "Short."),
        row("q3", "short/c.png", "Blue.", "Red."),
        {"id": "v1", "video": "video/clip1", "prompt": "What happens?", "chosen": "x", "rejected": "y"},
    ]
    path = folder / "mm_reward_bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_multimodal_rewardbench(folder: Path, rows: list[dict] | None = None) -> Path:
    """data/all_data.json as the repository's scripts leave it: a JSON list, images under data/images/."""
    save_png(folder / "images" / "nocaps" / "1.png", "red")
    save_png(folder / "images" / "pairs" / "7.png", "green")
    save_png(folder / "images" / "vlguard" / "3.png", "blue")

    def row(ident, image, better, category):
        return {
            "ID": ident,
            "Text": f"Prompt of {ident}",
            "Image": image,
            "Output1": f"first answer to {ident}",
            "Output2": f"second answer to {ident}",
            "Better": better,
            "Category": category,
        }

    rows = rows or [
        row("nocaps_1", "images/nocaps/1.png", "Output2", "open_generation/correctness_task"),
        row("pairs_7", "images/pairs/7.png", "Output1", "safety"),
        row("vlguard_3", "images/vlguard/3.png", "Output2", "safety"),
    ]
    path = folder / "all_data.json"
    path.write_text(json.dumps(rows, indent=2))
    return path


def score_saved(tmp_path: Path, pairs, orders, outputs, *, voting: int, order: str) -> dict:
    """Write saved outputs with the chosen verdicts and score them through the CLI (--from-outputs)."""
    saved = tmp_path / "saved_outputs.json"
    results = saved_results(pairs, orders, outputs)
    saved.write_text(json.dumps({"task": "reward_model", "voting": voting, "order": order, "results": results}))
    report_path = tmp_path / "scored.json"
    assert main(["--from-outputs", str(saved), "--task", "reward_model", "--out", str(report_path)]) == 0
    return json.loads(report_path.read_text())


def test_verdict_parsing_and_the_judge_prompt_of_the_training_rows():
    assert parse_verdict(say(1)) == 1 and parse_verdict(say(2)) == 2  # the digit in <think> does not count
    assert parse_verdict("<answer>Response 2 is better</answer>") == 2
    assert parse_verdict(BAD) is None and parse_verdict(NONE) is None
    first = json.loads((REPO / "examples" / "data" / "r1_reward.jsonl").read_text().splitlines()[0])
    text = json.loads(first["message"])[0]["content"][0]["text"]
    assert text == r1_reward_judge_prompt("What colour is the circle?", "It is red.", "It is blue.")


def test_vl_rewardbench_parquet_hand_computed_figures(tmp_path):
    pairs = read_pairs(write_vl_rewardbench(tmp_path / "test-00000-of-00001.parquet", vl_rows())).pairs
    assert [p.preferred for p in pairs] == [0, 1, 1]  # human_ranking [0, 1] -> 0; [1, 0] -> 1
    assert [p.source for p in pairs] == ["povid", "povid", "mmmu-pro"]
    assert isinstance(pairs[0].images[0], bytes) and Image.open(io.BytesIO(pairs[0].images[0])).size == (28, 28)
    orders = [["forward", "swapped"]] * 3
    # picks (response index): forward shows (r0, r1), so verdict 1 -> r0; swapped shows (r1, r0), so 1 -> r1
    outputs = [
        [[say(1), say(1), say(2)], [say(2), say(1), say(2)]],  # y=0: fwd picks 0,0,1; swp 0,1,0
        [[say(1), say(2), say(2)], [say(1), BAD, say(1)]],  # y=1: fwd 0,1,1; swp 1,-,1
        [[BAD, NONE, BAD], [say(2), NONE, say(1)]],  # y=1: fwd -,-,-; swp 0,-,1
    ]
    report = score_saved(tmp_path, pairs, orders, outputs, voting=3, order="both")
    assert report["pairs"] == 3 and report["judgements"] == 6 and report["samples"] == 18
    # first samples right: p1 fwd, p1 swp, p2 swp -> 3 / 6
    assert report["accuracy"] == pytest.approx(3 / 6)
    # votes: p1 fwd 0 (2:1) ok, p1 swp 0 (2:1) ok, p2 fwd 1 (2:1) ok, p2 swp 1 (2:0) ok,
    # p3 fwd no valid pick, p3 swp 1:1 tie -> 4 / 6
    assert report["accuracy_voting"] == pytest.approx(4 / 6)
    assert report["ties"] == 1 and report["no_vote"] == 1 and report["tie_rate"] == pytest.approx(1 / 6)
    # first picks fwd/swp: p1 0/0 same, p2 0/1 differ, p3 -/0 differ -> 1 / 3
    assert report["position_consistency"] == pytest.approx(1 / 3)
    # votes fwd/swp: p1 0/0, p2 1/1, p3 none/none -> 2 / 3
    assert report["position_consistency_voting"] == pytest.approx(2 / 3)
    assert report["invalid"] == 5 and report["invalid_rate"] == pytest.approx(5 / 18)  # p2 swp 1, p3 fwd 3, p3 swp 1
    assert report["accuracy_plus"] == pytest.approx(1 / 3)  # only p1 has both first samples right
    povid, mmmu = report["per_source"]["povid"], report["per_source"]["mmmu-pro"]
    assert povid["accuracy"] == pytest.approx(3 / 4) and povid["accuracy_voting"] == pytest.approx(4 / 4)
    assert povid["position_consistency"] == pytest.approx(1 / 2) and povid["invalid_rate"] == pytest.approx(1 / 12)
    assert mmmu["accuracy"] == 0.0 and mmmu["accuracy_voting"] == 0.0 and mmmu["position_consistency"] == 0.0
    assert mmmu["invalid_rate"] == pytest.approx(4 / 6)


def test_mm_rlhf_rewardbench_jsonl_hand_computed_figures(tmp_path):
    pair_set = read_pairs(write_mm_rlhf(tmp_path))
    pairs = pair_set.pairs
    assert len(pairs) == 4 and pair_set.skipped == {"video rows (the rollout engines take images only)": 1}
    assert [p.source for p in pairs] == ["mcq", "mcq", "long", "short"] and {p.preferred for p in pairs} == {0}
    assert pairs[0].images == (str(tmp_path / "mcq" / "a.png"),)
    orders = [["forward", "swapped"]] * 4
    outputs = [
        [[say(1)], [say(2)]],  # y=0: fwd picks 0 (right), swp picks 0 (right): same RESPONSE, other index
        [[say(1)], [say(1)]],  # y=0: fwd 0 (right), swp 1 (wrong): same INDEX, so not consistent
        [[say(1)], [say(2)]],  # y=0: right, right
        [[say(2)], [NONE]],  # y=0: fwd 1 (wrong), swp invalid
    ]
    report = score_saved(tmp_path, pairs, orders, outputs, voting=1, order="both")
    assert report["judgements"] == 8 and report["samples"] == 8
    assert report["accuracy"] == pytest.approx(5 / 8)  # 1+1 + 1+0 + 1+1 + 0+0
    assert report["accuracy_voting"] == pytest.approx(5 / 8)  # K = 1: the vote is the one pick
    assert report["position_consistency"] == pytest.approx(2 / 4)  # pairs 1 and 3
    assert report["invalid_rate"] == pytest.approx(1 / 8) and report["no_vote"] == 1 and report["ties"] == 0
    # Acc+ over question ids: q1 (pairs 1, 2) has a wrong judgement, q2 all right, q3 wrong -> 1 / 3
    assert report["groups"] == 3 and report["accuracy_plus"] == pytest.approx(1 / 3)
    mcq, long_, short = (report["per_source"][k] for k in ("mcq", "long", "short"))
    assert mcq["accuracy"] == pytest.approx(3 / 4) and mcq["position_consistency"] == pytest.approx(1 / 2)
    assert long_["accuracy"] == 1.0 and long_["position_consistency"] == 1.0
    assert short["accuracy"] == 0.0 and short["invalid_rate"] == pytest.approx(1 / 2)


def test_multimodal_rewardbench_json_one_order_per_pair(tmp_path):
    pairs = read_pairs(write_multimodal_rewardbench(tmp_path)).pairs
    assert [p.preferred for p in pairs] == [1, 0, 1]  # Better: Output2, Output1, Output2
    # 2_get_accuracy.py's categories: safety split by ID into bias (pairs*) and toxicity
    assert [p.source for p in pairs] == ["open_generation/correctness_task", "safety/bias", "safety/toxicity"]
    orders = [["swapped"], ["forward"], ["swapped"]]  # as --order random may draw them
    outputs = [
        [[say(1), say(2)]],  # y=1, swapped: picks 1, 0 -> first right, vote tie
        [[say(1), say(1)]],  # y=0, forward: picks 0, 0 -> right, right
        [[say(2), say(2)]],  # y=1, swapped: picks 0, 0 -> wrong, wrong
    ]
    report = score_saved(tmp_path, pairs, orders, outputs, voting=2, order="random")
    assert report["accuracy"] == pytest.approx(2 / 3)  # 1 + 1 + 0
    assert report["accuracy_voting"] == pytest.approx(1 / 3)  # tie + 1 + 0
    assert report["ties"] == 1 and report["invalid_rate"] == 0.0
    assert report["position_consistency"] is None and report["pairs_in_both_orders"] == 0  # no pair in both orders
    assert report["accuracy_plus"] == pytest.approx(2 / 3)
    assert set(report["per_source"]) == {"open_generation/correctness_task", "safety/bias", "safety/toxicity"}
    drawn = plan_orders(pairs * 10, "random", seed=5)
    assert drawn == plan_orders(pairs * 10, "random", seed=5) and {len(o) for o in drawn} == {1}
    assert {o[0] for o in drawn} == {"forward", "swapped"}
    assert plan_orders(pairs, "both", seed=5) == [["forward", "swapped"]] * 3


def test_bad_rows_name_file_row_and_field(tmp_path, capsys):
    rows = vl_rows()
    rows[1]["human_ranking"] = [0, 0]
    tie = write_vl_rewardbench(tmp_path / "tie.parquet", rows)
    with pytest.raises(ValueError, match=rf"{tie}: row 2: field 'human_ranking' must rank the two responses"):
        read_pairs(tie)
    rows = vl_rows()
    rows[2]["image"] = {"bytes": b"not a png", "path": "c.png"}
    broken = write_vl_rewardbench(tmp_path / "broken.parquet", rows)
    with pytest.raises(ValueError, match=rf"{broken}: row 3: field 'image' holds bytes that are not a readable image"):
        read_pairs(broken)

    mm = write_mm_rlhf(tmp_path / "mm")
    lines = mm.read_text().splitlines()
    row = json.loads(lines[1])
    del row["rejected"]
    lines[1] = json.dumps(row)
    mm.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{mm}: row 2: field 'rejected' is missing"):
        read_pairs(mm)

    mmrb = write_multimodal_rewardbench(tmp_path / "mmrb")
    data = json.loads(mmrb.read_text())
    data[1]["Better"] = "Output3"
    mmrb.write_text(json.dumps(data, indent=2))
    with pytest.raises(ValueError, match=rf"{mmrb}: row 2 \(line \d+\): field 'Better' must be 'Output1' or 'Output2'"):
        read_pairs(mmrb)
    data[1]["Better"], data[2]["Image"] = "Output1", "images/missing.png"
    mmrb.write_text(json.dumps(data, indent=2))
    with pytest.raises(ValueError, match=rf"{mmrb}: row 3 \(line \d+\): field 'Image' image 'images/missing.png' not"):
        read_pairs(mmrb)

    unknown = tmp_path / "other.jsonl"
    unknown.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ValueError, match="not a known pairwise layout"):
        read_pairs(unknown)

    # through the CLI: one line on stderr, exit 1 (the data is read before any model is loaded)
    argv = ["--task", "reward_model", "--actor.model_name_or_path", str(tmp_path), "--data.eval_paths", f"[{tie}]"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tie}: row 2: field 'human_ranking'" in err
    assert main([*argv, "--voting", "0"]) == 2
    assert "--voting '0'" in capsys.readouterr().err
    assert main([*argv, "--order", "sideways"]) == 2
    bad_outputs = tmp_path / "bad_outputs.json"
    bad_outputs.write_text(json.dumps({"results": [{"preferred": 2, "judgements": []}]}))
    assert main(["--from-outputs", str(bad_outputs), "--task", "reward_model"]) == 1
    assert f"{bad_outputs}: results[0]: preferred must be 0 or 1" in capsys.readouterr().err


def test_tiny_vlm_judges_through_the_cli_and_from_outputs_reproduces_it(tiny_vlm_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENRLHF_IMAGE_CACHE", str(tmp_path / "image_cache"))
    parquet = write_vl_rewardbench(tmp_path / "vl.parquet", vl_rows()[:2])
    mmrb = write_multimodal_rewardbench(tmp_path / "mmrb", None)
    data = json.loads(mmrb.read_text())[:1]
    mmrb.write_text(json.dumps(data))
    out = tmp_path / "result.json"
    argv = [
        "--task", "reward_model",
        "--actor.model_name_or_path", str(tiny_vlm_path),
        "--data.eval_paths", f"[{parquet},{mmrb}]",
        "--data.max_pixels", "12544",
        "--rollout.backend", "hf",
        "--rollout.max_new_tokens", "8",
        "--voting", "2",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "voting@2" in printed and "povid" in printed
    report = json.loads(out.read_text())
    assert report["pairs"] == 3 and report["judgements"] == 6 and report["samples"] == 12
    assert report["voting"] == 2 and report["order"] == "both" and report["temperature"] == 1.0
    assert set(report["per_source"]) == {"povid", "open_generation/correctness_task"}
    assert 0.0 <= report["invalid_rate"] <= 1.0 and report["pairs_in_both_orders"] == 3
    saved = json.loads((tmp_path / "result_outputs.json").read_text())
    assert saved["task"] == "reward_model" and len(saved["results"]) == 3
    assert all(len(j["outputs"]) == 2 for r in saved["results"] for j in r["judgements"])
    assert [j["order"] for j in saved["results"][0]["judgements"]] == ["forward", "swapped"]
    again_path = tmp_path / "again.json"
    assert (
        main(
            [
                "--from-outputs",
                str(tmp_path / "result_outputs.json"),
                "--task",
                "reward_model",
                "--out",
                str(again_path),
            ]
        )
        == 0
    )
    again = json.loads(again_path.read_text())
    figures = [k for k in report if k not in ("seconds", "generation_seconds", "report_path", "outputs_path")]
    assert {k: again[k] for k in figures} == {k: report[k] for k in figures}
