"""The package as `pip install .` builds it: the YAML configs ship inside it (openrlhf/configs/), so
`openrlhf-train` finds its demo config without a checkout; the checkout's configs/ is the same folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_config(tmp_path):
    # a copy of what the wheel is built from, so the build's own build/ folder stays out of the checkout
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ruff_cache")
    for name in ("openrlhf", "remote_rm"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("openrlhf*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (REPO / "openrlhf" / "configs").glob("*.yaml"))
    assert "demo_text.yaml" in configs and len(configs) >= 10
    assert {f"openrlhf/configs/{name}" for name in configs} <= names
    assert "openrlhf/cli/common.py" in names


def test_checkout_configs_is_the_package_folder():
    assert (REPO / "configs").resolve() == (REPO / "openrlhf" / "configs").resolve()
    from openrlhf.config_loading import CONFIG_DIR, default_config_path

    assert CONFIG_DIR == (REPO / "openrlhf" / "configs").resolve()
    assert default_config_path("demo_text.yaml") == str(CONFIG_DIR / "demo_text.yaml")
