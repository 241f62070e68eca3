"""A cache of described shipped directions, so that the app starts in seconds on a bundled model.

Describing a direction (``direction.describe``: projections, cosines, head Δ, head means) takes five
passes over 160 prompts: about 90 s for the refusal-tuned SmolLM2 on 2 CPU cores, every start. The
result depends only on the model's weights, the direction file, the prompts and this code's format,
so it is stored once under ``config.cache_dir()/described`` (a ``.safetensors`` of the tensors and
a ``.json`` of the rest) keyed by a hash of all four, and read back exactly (float32 tensors
round-trip bit for bit). A corrupt or foreign entry is ignored and recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from neuroscope.analysis.heads import HeadStats
from neuroscope.config import cache_dir
from neuroscope.method.artifacts import atomic_path

FORMAT = 2  # bump when DirectionResult or describe() changes what it holds
TENSORS = ("direction", "positive_proj", "negative_proj", "layer_cosines", "head_means", "mean_target")
SCALARS = (
    "model_name", "layer", "position", "origin", "description", "reason", "cosine_labels", "position_labels",
    "kl_threshold", "layer_cut", "behaviour",
)  # fmt: skip
log = logging.getLogger(__name__)


def weights_fingerprint(lm: Any) -> str:
    """A hash of the model's weights: every parameter's shape and a strided sample of its values (cheap;
    a different model or adapter changes it)."""
    h = hashlib.sha256()
    for name, p in sorted(lm.hf.named_parameters()):
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].float().cpu()
        h.update(name.encode() + str(tuple(p.shape)).encode() + sample.numpy().tobytes())
    return h.hexdigest()[:24]


# The code a description comes from: editing any of it invalidates every entry (no stale numbers).
CODE = (
    "services/direction.py", "services/state.py", "services/heads.py", "analysis/heads.py", "analysis/directions.py", "model/activations.py",
    "model/forward.py", "model/chat.py",
)  # fmt: skip


def code_fingerprint() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in CODE:
        path = root / rel
        h.update(path.read_bytes() if path.is_file() else rel.encode())
    return h.hexdigest()[:16]


def key_for(lm: Any, direction_file: Path, harmful: list[str], harmless: list[str], extra: str) -> str:
    h = hashlib.sha256()
    for part in (
        str(FORMAT),
        code_fingerprint(),
        weights_fingerprint(lm),
        direction_file.read_bytes().hex(),
        json.dumps([harmful, harmless]),
        extra,
    ):
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]


def _save(folder: Path, key: str, result: Any) -> None:
    tensors = {name: getattr(result, name).detach().float().contiguous().cpu() for name in TENSORS}
    stats = result.heads
    for f in dataclasses.fields(stats):
        value = getattr(stats, f.name)
        if isinstance(value, torch.Tensor):
            tensors[f"heads.{f.name}"] = value.detach().contiguous().cpu()
    meta = {name: getattr(result, name) for name in SCALARS}
    meta["heads.n"] = [stats.n_harmful, stats.n_harmless]
    meta["head_prompts"] = [list(p) for p in result.head_prompts]
    with atomic_path(folder / f"{key}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(folder / f"{key}.json") as tmp:
        tmp.write_text(json.dumps(meta))


def _load(folder: Path, key: str, cls: type) -> Any | None:
    tensors_file, meta_file = folder / f"{key}.safetensors", folder / f"{key}.json"
    if not (tensors_file.is_file() and meta_file.is_file()):
        return None
    try:
        tensors, meta = load_file(str(tensors_file)), json.loads(meta_file.read_text())
        stats = HeadStats(
            **{
                f.name: tensors[f"heads.{f.name}"]
                for f in dataclasses.fields(HeadStats)
                if f"heads.{f.name}" in tensors
            },
            n_harmful=int(meta["heads.n"][0]),
            n_harmless=int(meta["heads.n"][1]),
        )
        return cls(
            **{name: tensors[name] for name in TENSORS},
            **{name: meta[name] for name in SCALARS},
            heads=stats,
            head_prompts=tuple(list(p) for p in meta["head_prompts"]),
        )
    except Exception as err:  # a corrupt or older entry: describe again
        log.warning("ignoring the cached direction description %s: %s", key, err)
        return None


def cached_description(lm: Any, direction_file: Path, harmful: list[str], harmless: list[str], extra: str,
                       compute: Callable[[], Any], cls: type, folder: Path | None = None) -> Any:  # fmt: skip
    """``compute()``'s DirectionResult, from the cache when this exact description was stored before."""
    folder = folder or cache_dir() / "described"
    key = key_for(lm, direction_file, harmful, harmless, extra)
    found = _load(folder, key, cls)
    if found is not None:
        return found
    result = compute()
    try:
        _save(folder, key, result)
    except OSError as err:  # a read-only cache: still serve, just slower next time
        log.warning("cannot cache the direction description in %s: %s", folder, err)
    return result
