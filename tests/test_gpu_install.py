"""The GPU install resolves: pyproject.toml's ranges, vLLM 0.33.0's Requires-Dist and flash-attn's agree.

``INSTALL_GPU=1 bash scripts/install.sh`` installs ``.[reward,dev,gpu]`` after torch; pip must then find one
version of every package that the project (base dependencies and every extra), the real vLLM wheel
(its METADATA, fetched once: tests/vllm_wheel.py) and flash-attn's sdist all constrain. Markers are
evaluated for the GPU machines: Linux x86_64, CPython 3.11, no vLLM extras.

How "the ranges intersect" is decided, offline and without a registry: the intersection of specifier
sets is a union of intervals whose ends are versions named in the specifiers (``!=X.*`` and ``~=`` name
theirs too). So it is non-empty exactly when it holds an end, or a point just past an exclusive end;
the candidates are therefore every named version, each with one release component bumped (5.21 ->
5.21.0.1, 5.21.1, 5.22, 6), its ``.post1``, ``0`` and a huge version. The smallest admitted candidate is
the witness shown. This says the ranges are compatible, not that the witness is on the index; the pins
that decide a GPU install (torch==2.14.0, vllm==0.33.0, flash-attn==2.8.3.post2) are real releases.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
from email.parser import Parser
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_wheel import wheel_cache, wheel_metadata  # noqa: E402

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[1]
FLASH_ATTN = "2.8.3.post2"
GPU_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_version": "",
    "implementation_version": "3.11.7",
    "extra": "",
}
MUST_OVERLAP = ["torch", "transformers", "tokenizers", "pydantic", "fastapi", "openai", "numpy", "pillow"]


def active(lines: list[str]) -> dict[str, SpecifierSet]:
    """name -> the intersection of every requirement on it that applies on the GPU machines."""
    out: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(GPU_ENV):
            continue
        name = canonicalize_name(req.name)
        out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out


def project_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return active(lines)


def requires_dist(metadata_text: str) -> dict[str, SpecifierSet]:
    return active(Parser().parsestr(metadata_text).get_all("Requires-Dist") or [])


def candidates(specs: list[SpecifierSet]) -> list[Version]:
    named = set()
    for spec_set in specs:
        for spec in spec_set:
            try:
                named.add(Version(spec.version.removesuffix(".*")))
            except InvalidVersion:  # === arbitrary strings: not ranges
                continue
    out = set(named) | {Version("0"), Version("100000")}
    for version in named:
        release = list(version.release) + [0] * (4 - len(version.release))
        for i in range(4):
            bumped = release[:i] + [release[i] + 1]
            out.add(Version(".".join(map(str, bumped))))
        out.add(Version(f"{version.base_version}.post1"))
    return sorted(out)


def witness(specs: list[SpecifierSet]) -> Version | None:
    """The smallest version every specifier set admits (None: the ranges do not meet)."""
    for version in candidates(specs):
        if all(spec.contains(version, prereleases=False) for spec in specs):
            return version
    return None


def test_the_witness_search_finds_what_meets_and_refuses_what_does_not():
    s = SpecifierSet
    assert witness([s(">=5.16.1,<5.21"), s(">=5.0,<6")]) == Version("5.16.1")
    assert witness([s(">0.110"), s("<0.137.0,>=0.133.0")]) == Version("0.133.0")
    assert witness([s(">2.0,<2.1"), s("!=2.0.1")]) == Version("2.0.0.1")
    assert witness([s("~=6.30"), s("!=6.30.*,!=6.31.*,>=5.29.6")]) == Version("6.32")
    assert witness([s(">=0.140"), s("<0.137.0,>=0.133.0")]) is None
    assert witness([s("==2.13.0"), s("==2.14.0")]) is None
    assert witness([s("<5.0"), s(">=5.16.1,<5.21")]) is None


def test_every_range_the_project_and_vllm_share_meets():
    ours, vllm = project_requirements(), requires_dist(wheel_metadata())
    shared = sorted((set(ours) & set(vllm)) - {"vllm"})
    assert set(MUST_OVERLAP) <= set(shared), f"expected overlaps missing: {set(MUST_OVERLAP) - set(shared)}"
    report, conflicts = [], []
    for name in shared:
        found = witness([ours[name], vllm[name]])
        report.append(f"{name}: ours {ours[name] or 'any'} / vLLM {vllm[name] or 'any'} -> {found}")
        if found is None:
            conflicts.append(report[-1])
    print("\n".join(report))
    assert not conflicts, "pyproject.toml and vllm==0.33.0 cannot both be satisfied:\n" + "\n".join(conflicts)


def test_the_pins_of_the_gpu_extra_and_python():
    ours, vllm = project_requirements(), requires_dist(wheel_metadata())
    assert str(ours["vllm"]) == "==0.33.0" and str(ours["flash-attn"]) == f"=={FLASH_ATTN}"
    assert str(vllm["torch"]) == "==2.14.0"
    meta = Parser().parsestr(wheel_metadata())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    python = Version(GPU_ENV["python_full_version"])
    assert python in SpecifierSet(meta["Requires-Python"]) and python in SpecifierSet(project["requires-python"])


def test_the_transformers_the_cpu_suite_runs_on_is_one_vllm_accepts():
    vllm = requires_dist(wheel_metadata())
    installed = Version(importlib.metadata.version("transformers"))
    assert vllm["transformers"].contains(installed), (
        f"transformers {installed} is outside vLLM's {vllm['transformers']}"
    )
    assert project_requirements()["transformers"].contains(installed)


def test_install_script_puts_vllms_torch_first_on_a_gpu_machine():
    """The GPU branch installs exactly the torch vLLM pins, before the extras (so pip never swaps it)."""
    script = (REPO / "scripts" / "install.sh").read_text()
    pinned = str(requires_dist(wheel_metadata())["torch"]).removeprefix("==")
    start = script.index('if [ "${INSTALL_GPU:-0}" = 1 ]; then\n')
    gpu_branch = script[start : script.index("\nfi\n", start)]
    assert re.findall(r"TORCH_GPU=(\S+)", gpu_branch) == [pinned], f"install.sh's GPU branch; vLLM pins torch {pinned}"
    assert '$PIP install "torch==$TORCH_GPU"' in gpu_branch
    assert start < script.index('pip install --no-build-isolation -e ".[${EXTRAS}]"'.replace("pip", "$PIP"))


def flash_attn_sdist() -> Path:
    """flash-attn's sdist, downloaded once into the wheel cache. Preparing its metadata runs its setup.py:
    no build isolation and FLASH_ATTENTION_SKIP_CUDA_BUILD keep that to ~25 s, without nvcc or a GPU."""
    cache = wheel_cache()
    name = f"flash_attn-{FLASH_ATTN}.tar.gz"
    if not (cache / name).exists():
        cmd = [sys.executable, "-m", "pip", "download", f"flash-attn=={FLASH_ATTN}", "--no-deps"]
        cmd += ["--no-binary", ":all:", "--no-build-isolation", "-d", str(cache)]
        env = dict(os.environ, FLASH_ATTENTION_SKIP_CUDA_BUILD="TRUE")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode != 0 or not (cache / name).exists():
            raise RuntimeError(f"could not fetch flash-attn {FLASH_ATTN}: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return cache / name


def test_flash_attn_requirements_meet_vllm_and_the_project():
    with tarfile.open(flash_attn_sdist()) as tar:
        pkg_info = tar.extractfile(f"flash_attn-{FLASH_ATTN}/PKG-INFO").read().decode()
    flash = requires_dist(pkg_info)
    assert "torch" in flash, f"flash-attn's Requires-Dist changed: {sorted(flash)}"
    ours, vllm = project_requirements(), requires_dist(wheel_metadata())
    for name, spec in flash.items():
        specs = [spec] + [reqs[name] for reqs in (ours, vllm) if name in reqs]
        assert witness(specs) is not None, f"{name}: flash-attn {spec} conflicts with {specs[1:]}"
    assert witness([flash["torch"], vllm["torch"], ours["torch"]]) == Version("2.14.0")
