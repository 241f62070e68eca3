"""Artifacts on disk: atomic writes (a file appears only when complete), JSON and safetensors.

Every artifact is written to a hidden temporary file in the target folder and renamed into place,
so an interrupted run leaves either the whole file or nothing; that is what makes runs resumable.
Leftover temporaries (a killed process) are swept by :func:`sweep_temporaries`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from neuroscope.errors import UserError
from neuroscope import jsonio

TMP_PREFIX = ".tmp-"
DIRECTION_FORMAT = "neuroscope-direction/1"


class ArtifactError(UserError):
    """An artifact is missing, malformed or from another format; the message is for the user."""


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: os.umask is process-wide, and reading it means setting it for a moment, which
# would race with the app's other threads creating files.
_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600, and a writer may re-create the file: set ordinary permissions on what was written
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields a temporary folder next to ``path``; renames it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_temporaries(folder: str | Path) -> None:
    """Removes temporaries a killed run left behind."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for item in folder.glob(TMP_PREFIX + "*"):
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # strict JSON: NaN/inf become null
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return _jsonable({k: getattr(obj, k) for k in obj.__dataclass_fields__})
    return obj


def to_json(obj: Any) -> str:
    """Strict JSON text (tensors as lists, dataclasses as objects, NaN as null)."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> None:
    text = to_json(obj)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json_text(text: str) -> Any:
    """Parses JSON text (used to give freshly computed records the same plain form as loaded ones)."""
    return jsonio.loads(text)


def read_json(path: str | Path) -> Any:
    try:
        return jsonio.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: cannot read JSON artifact ({err})") from None


def save_tensors(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, Any] | None = None) -> None:
    """Safetensors file written atomically; ``metadata`` is stored as one JSON string."""
    meta = {"format": DIRECTION_FORMAT, "json": to_json(metadata or {})}
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=meta)


def load_tensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises several types for a corrupt header
        raise ArtifactError(f"{path}: not a readable safetensors file ({err})") from None
    if meta.get("format") != DIRECTION_FORMAT:
        raise ArtifactError(f"{path}: not a NeuroScope artifact (missing format tag)")
    try:
        record = jsonio.loads(meta.get("json", "{}"))
    except json.JSONDecodeError:
        raise ArtifactError(f"{path}: its metadata is not valid JSON") from None
    if not isinstance(record, dict):
        raise ArtifactError(f"{path}: its metadata is not a JSON object")
    return tensors, record


def save_direction(path: str | Path, direction: Tensor, metadata: dict[str, Any]) -> None:
    """Saves a refusal direction [d_model] (unnormalised difference of means) with its metadata.

    Metadata should say where it came from: model, layer, position, data, sizes; the pipeline
    adds the harmless projection means (``mean_target``, [n_layers]) used by mean ablation.
    """
    if direction.ndim != 1 or not torch.isfinite(direction).all():
        raise ArtifactError(f"a direction must be a finite [d_model] vector, got shape {tuple(direction.shape)}")
    save_tensors(path, {"direction": direction.float()}, metadata)


MAX_DIRECTION_NORM = 1e5  # residual streams of real models stay orders of magnitude below this


def load_direction(path: str | Path) -> tuple[Tensor, dict[str, Any]]:
    """Returns ``(direction [d_model] float32, metadata)``.

    Raises:
        ArtifactError: Missing, corrupt or not a direction file.
    """
    tensors, meta = load_tensors(path)
    if "direction" not in tensors or tensors["direction"].ndim != 1:
        raise ArtifactError(f"{path}: holds no [d_model] 'direction' tensor")
    direction = tensors["direction"].float()
    norm = float(tensors["direction"].double().norm())
    if not torch.isfinite(direction).all() or norm == 0 or not math.isfinite(norm):
        raise ArtifactError(f"{path}: the direction is zero or not finite")
    if norm > MAX_DIRECTION_NORM:
        raise ArtifactError(
            f"{path}: the direction's norm is {norm:.3g}, beyond any residual stream "
            f"(limit {MAX_DIRECTION_NORM:g}); not a difference of mean activations"
        )
    return direction, meta
