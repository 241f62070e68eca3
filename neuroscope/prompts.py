"""Prompt sets for refusal experiments: research sources, the curated pairs, splits.

Research sets are never vendored. :func:`load_source` reads them through the ``datasets``
library from a local folder (``data_dir`` argument, else the ``NEUROSCOPE_DATA_DIR`` env var)
laid out like the shared datasets folder (``advbench/``, ``jailbreakbench/``,
``refusal_direction/{raw,processed,splits}/`` ...), or, when no folder is configured, from the
Hugging Face Hub. The project's own contrastive pairs (``data/contrastive_pairs.jsonl``, MIT)
are always available offline.

User prompt files are read by ``neuroscope.prompt_files``; overlap and length checks on prompt sets are in
``neuroscope.prompt_checks``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroscope.config import environment
from neuroscope.errors import UserError
from neuroscope import jsonio
from neuroscope.text import text_problem

ENV_DATA_DIR = "NEUROSCOPE_DATA_DIR"
CURATED_PAIRS_PATH = Path(__file__).resolve().parent.parent / "data" / "contrastive_pairs.jsonl"

# Recognised prompt columns / keys in user files, most specific first (matched case-insensitively).
INSTRUCTION_KEYS = ("instruction", "prompt", "goal", "behavior", "forbidden_prompt")
CATEGORY_KEY = "category"


@dataclass(frozen=True)
class Prompt:
    """One instruction with its provenance.

    Attributes:
        instruction: The user turn, without any chat template.
        category: Source-specific category label, if the source has one.
        source: Name of the source it came from (a SOURCES key or a file path).
        harmful: True for harmful, False for harmless, None when unknown.
    """

    instruction: str
    category: str | None = None
    source: str = ""
    harmful: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError("Prompt.instruction must be a non-empty string")


class PromptFileError(UserError):
    """A prompt file or source cannot be read; the message is meant for the end user."""


class PromptSourceError(PromptFileError):
    """A named prompt source is unknown, missing from the data folder, or not downloadable."""


# --------------------------------------------------------------------------- source registry


@dataclass(frozen=True)
class _HubSpec:
    """Where a source lives on the Hugging Face Hub (used only when no data folder is set)."""

    path: str
    split: str
    column: str
    name: str | None = None
    category_column: str | None = None
    row_filter: Callable[[dict[str, Any]], bool] | None = None


@dataclass(frozen=True)
class _SourceSpec:
    """How to read one named source from a local data folder (and optionally from the Hub)."""

    description: str
    files: tuple[str, ...]  # candidate paths relative to the data folder; first existing wins
    column: str
    harmful: bool | None
    category_column: str | None = None
    extra_columns: tuple[str, ...] = ()
    row_filter: Callable[[dict[str, Any]], bool] | None = None
    harmful_of_row: Callable[[dict[str, Any]], bool] | None = None
    hub: _HubSpec | None = None


def _harmbench_keep(row: dict[str, Any]) -> bool:
    """Arditi et al.'s HarmBench filter: drop copyright behaviours and contextual ones."""
    return row["FunctionalCategory"] != "copyright" and "context" not in (row["Tags"] or "")


def _xstest_unsafe(row: dict[str, Any]) -> bool:
    """XSTest's unsafe prompts are exactly the ``contrast_*`` types."""
    return str(row["type"]).startswith("contrast_")


def _empty_input(row: dict[str, Any]) -> bool:
    return not (row.get("input") or "").strip()


_RD = "refusal_direction"
_HB_COLS = ("FunctionalCategory", "Tags")


def _arditi(split: str, harmful: bool) -> _SourceSpec:
    kind = "harmful" if harmful else "harmless"
    licence = "Apache-2.0 repo; data MIT upstreams" if harmful else "Alpaca-derived, CC BY-NC 4.0"
    return _SourceSpec(
        description=f"Arditi et al. 2024 {kind} {split} split ({licence})",
        files=(f"{_RD}/splits/{kind}_{split}.json",),
        column="instruction",
        category_column="category",
        harmful=harmful,
    )


_SPECS: dict[str, _SourceSpec] = {
    "advbench": _SourceSpec(
        "AdvBench harmful behaviors, 520 goals, no categories (Zou et al. 2023; MIT)",
        ("advbench/harmful_behaviors.csv", f"{_RD}/raw/advbench.csv"),
        "goal",
        True,
        hub=_HubSpec("walledai/AdvBench", "train", "prompt"),
    ),
    "jailbreakbench": _SourceSpec(
        "JailbreakBench JBB-Behaviors harmful, 100 goals, 10 categories x 10 (Chao et al. 2024; MIT)",
        ("jailbreakbench/behaviors.csv", f"{_RD}/raw/jailbreakbench.csv"),
        "Goal",
        True,
        category_column="Category",
        hub=_HubSpec("JailbreakBench/JBB-Behaviors", "harmful", "Goal", "behaviors", "Category"),
    ),
    "jailbreakbench_benign": _SourceSpec(
        "JailbreakBench benign twins of the 100 harmful behaviors, same categories (MIT)",
        ("jailbreakbench/benign-behaviors.csv",),
        "Goal",
        False,
        category_column="Category",
        hub=_HubSpec("JailbreakBench/JBB-Behaviors", "benign", "Goal", "behaviors", "Category"),
    ),
    "harmbench_val": _SourceSpec(
        "HarmBench val standard behaviors, Arditi's filter -> 41 (Mazeika et al. 2024; MIT)",
        ("harmbench/harmbench_behaviors_text_val.csv", f"{_RD}/raw/harmbench_val.csv"),
        "Behavior",
        True,
        category_column="SemanticCategory",
        extra_columns=_HB_COLS,
        row_filter=_harmbench_keep,
    ),
    "harmbench_test": _SourceSpec(
        "HarmBench test standard behaviors, Arditi's filter -> 159 (Mazeika et al. 2024; MIT)",
        ("harmbench/harmbench_behaviors_text_test.csv", f"{_RD}/raw/harmbench_test.csv"),
        "Behavior",
        True,
        category_column="SemanticCategory",
        extra_columns=_HB_COLS,
        row_filter=_harmbench_keep,
    ),
    "strongreject": _SourceSpec(
        "StrongREJECT forbidden prompts, 313, 6 categories (Souly et al. 2024; MIT, unverified)",
        (f"{_RD}/raw/strongreject.csv",),
        "forbidden_prompt",
        True,
        category_column="category",
        hub=_HubSpec("walledai/StrongREJECT", "train", "prompt", category_column="category"),
    ),
    "malicious_instruct": _SourceSpec(
        "MaliciousInstruct, 100 prompts (Huang et al. 2023; no licence file upstream)",
        (f"{_RD}/raw/malicious_instruct.txt", f"{_RD}/processed/malicious_instruct.json"),
        "text",
        True,
        hub=_HubSpec("walledai/MaliciousInstruct", "train", "prompt"),
    ),
    "tdc2023": _SourceSpec(
        "TDC 2023 red-teaming behaviors, dev+test = 100 (MIT, unverified)",
        (f"{_RD}/processed/tdc2023.json",),
        "instruction",
        True,
        hub=_HubSpec("walledai/TDC23-RedTeaming", "train", "prompt"),
    ),
    "alpaca": _SourceSpec(
        "Alpaca instructions with empty input, 31,323 harmless (Taori et al. 2023; CC BY-NC 4.0)",
        (f"{_RD}/processed/alpaca.json",),
        "instruction",
        False,
        hub=_HubSpec("tatsu-lab/alpaca", "train", "instruction", row_filter=_empty_input),
    ),
    "xstest": _SourceSpec(
        "XSTest, 250 safe + 200 unsafe contrast prompts, category = type (Roettger et al. 2024; CC BY 4.0)",
        ("xstest/xstest_prompts.csv", "xstest/xstest_v2_prompts.csv"),
        "prompt",
        None,
        category_column="type",
        harmful_of_row=_xstest_unsafe,
        hub=_HubSpec("walledai/XSTest", "test", "prompt", category_column="type"),
    ),
    **{f"arditi_harmful_{s}": _arditi(s, True) for s in ("train", "val", "test")},
    **{f"arditi_harmless_{s}": _arditi(s, False) for s in ("train", "val", "test")},
}

_CURATED_SOURCES = {
    "curated": "NeuroScope contrastive pairs, harmful then harmless (project data/, MIT)",
    "curated_harmful": "Harmful side of the NeuroScope contrastive pairs (MIT)",
    "curated_harmless": "Harmless side of the NeuroScope contrastive pairs (MIT)",
}

SOURCES: dict[str, str] = {
    **{name: spec.description for name, spec in _SPECS.items()},
    **_CURATED_SOURCES,
}


# --------------------------------------------------------------------------- loading sources


# The research sets beside the checkout, where the tests, CI and the lab recipes find them.
SIBLING_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NO_DATA_DIR = "none"  # NEUROSCOPE_DATA_DIR=none (or --data-dir none): no local folder, not even the sibling one


def resolve_data_dir(explicit: str | Path | None = None) -> Path | None:
    """Choose the local data folder: the explicit argument, else ``$NEUROSCOPE_DATA_DIR``, else
    ``../shared/datasets`` beside the checkout when it exists, else None.

    Args:
        explicit: A folder given on the command line or in config; ``"none"`` means no folder.

    Returns:
        The folder, or None (sources then come from the Hub when it is reachable).

    Raises:
        PromptSourceError: The chosen folder does not exist.
    """
    chosen = explicit if explicit not in (None, "") else environment(ENV_DATA_DIR) or None
    if isinstance(chosen, str) and chosen.strip().lower() == NO_DATA_DIR:
        return None
    if chosen is None:
        return SIBLING_DATA_DIR if SIBLING_DATA_DIR.is_dir() else None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "data_dir" if explicit not in (None, "") else f"${ENV_DATA_DIR}"
        raise PromptSourceError(f"{origin} points to {path}, which is not a directory")
    return path


def research_source(data_dir: str | Path | None = None) -> str | None:
    """Where the research prompt sets can come from now: ``"local"`` (a data folder), ``"hub"`` (the
    Hugging Face Hub is reachable and allowed), or None (neither: only the curated pairs).

    Raises:
        PromptSourceError: The configured folder does not exist.
    """
    from neuroscope.hub import hub_offline, hub_reachable

    if resolve_data_dir(data_dir) is not None:
        return "local"
    if not hub_offline() and hub_reachable():
        return "hub"
    return None


NO_RESEARCH_SETS = (
    "the research prompt sets need a data folder (NEUROSCOPE_DATA_DIR, --data-dir or ../shared/datasets) or the Hugging "
    "Face Hub, and neither is available here; the curated pairs are bundled"
)


def load_source(name: str, data_dir: str | Path | None = None) -> list[Prompt]:
    """Load a named prompt source (see :data:`SOURCES`).

    Args:
        name: A key of :data:`SOURCES`.
        data_dir: Local data folder; falls back to ``$NEUROSCOPE_DATA_DIR``, then to the Hub.

    Returns:
        The prompts in the source's own order.

    Raises:
        PromptSourceError: Unknown name, file missing from the data folder, or Hub failure.
    """
    if name in _CURATED_SOURCES:
        return _curated_source(name)
    if name not in _SPECS:
        raise PromptSourceError(f"unknown prompt source {name!r}; known: {', '.join(SOURCES)}")
    spec = _SPECS[name]
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        return _load_local(name, spec, folder)
    return _load_hub(name, spec)


def _curated_source(name: str) -> list[Prompt]:
    pairs = load_curated_pairs()
    harmful = [h for h, _ in pairs]
    harmless = [b for _, b in pairs]
    return {"curated": harmful + harmless, "curated_harmful": harmful}.get(name, harmless)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import ``datasets`` with progress bars and info logs off, restoring them afterwards."""
    import datasets
    from datasets.utils import logging as ds_logging

    bars_were_on = not datasets.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
        ds_logging.set_verbosity(verbosity)


def _read_local_rows(path: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Read a local CSV / JSON / text file with ``datasets``; CSV cells stay strings."""
    suffix = path.suffix.lower()
    with _quiet_datasets() as datasets:
        if suffix == ".csv":
            features = datasets.Features({c: datasets.Value("string") for c in columns})
            ds = datasets.load_dataset(
                "csv",
                data_files=str(path),
                split="train",
                usecols=list(columns),
                features=features,
                keep_default_na=False,
            )
        elif suffix == ".json":
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        elif suffix == ".txt":
            ds = datasets.load_dataset("text", data_files=str(path), split="train")
        else:
            raise PromptSourceError(f"{path}: unsupported file type {suffix!r}")
        return ds.to_list()


def _load_local(name: str, spec: _SourceSpec, folder: Path) -> list[Prompt]:
    path = next((folder / f for f in spec.files if (folder / f).is_file()), None)
    if path is None:
        tried = ", ".join(str(folder / f) for f in spec.files)
        raise PromptSourceError(f"source {name!r} not found in data folder {folder} (looked for {tried})")
    column = "instruction" if path.suffix == ".json" else spec.column
    category = None if path.suffix == ".txt" else spec.category_column
    columns = [c for c in (column, category, *spec.extra_columns) if c]
    try:
        rows = _read_local_rows(path, columns)
    except PromptSourceError:
        raise
    except Exception as exc:  # datasets wraps parser errors in many types
        raise PromptSourceError(f"source {name!r}: could not read {path}: {exc}") from exc
    return _rows_to_prompts(rows, name, spec, column, category)


def _load_hub(name: str, spec: _SourceSpec) -> list[Prompt]:
    hint = f"set {ENV_DATA_DIR} or pass --data-dir to a local copy of the prompt datasets"
    if spec.hub is None:
        raise PromptSourceError(f"source {name!r} is not on the Hugging Face Hub; {hint}")
    hub = spec.hub
    try:
        with _quiet_datasets() as datasets:
            rows = datasets.load_dataset(hub.path, hub.name, split=hub.split).to_list()
    except Exception as exc:  # offline, missing dataset, gated repo ...
        raise PromptSourceError(
            f"could not download source {name!r} from the Hugging Face Hub ({hub.path}): "
            f"{type(exc).__name__}: {exc}. To work offline, {hint}"
        ) from exc
    if hub.row_filter is not None:
        rows = [r for r in rows if hub.row_filter(r)]
    hub_spec = _SourceSpec(
        spec.description, (), hub.column, spec.harmful, hub.category_column, harmful_of_row=spec.harmful_of_row
    )
    return _rows_to_prompts(rows, name, hub_spec, hub.column, hub.category_column)


def _rows_to_prompts(
    rows: Iterable[dict[str, Any]], name: str, spec: _SourceSpec, column: str, category: str | None
) -> list[Prompt]:
    prompts = []
    for row in rows:
        if spec.row_filter is not None and not spec.row_filter(row):
            continue
        text = (row.get(column) or "").strip()
        if not text:
            continue  # blank lines in text files
        label = row.get(category) if category else None
        harmful = spec.harmful_of_row(row) if spec.harmful_of_row else spec.harmful
        prompts.append(Prompt(text, str(label) if label else None, name, harmful))
    return prompts


# --------------------------------------------------------------------------- user prompt files


def deterministic_split(
    prompts: Sequence[Prompt], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> tuple[list[Prompt], ...]:
    """Shuffle with a fixed seed and cut into consecutive parts.

    The parts are disjoint (by position), cover the input, and depend only on the input order,
    ``fractions`` and ``seed``.

    Args:
        prompts: Items to split.
        fractions: Non-negative part sizes summing to 1.
        seed: Seed of the private ``random.Random`` used for the shuffle.

    Returns:
        One list per fraction.
    """
    if not fractions or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    bounds, acc = [0], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * len(order)))
    bounds[-1] = len(order)
    return tuple([prompts[i] for i in order[a:b]] for a, b in zip(bounds[:-1], bounds[1:]))


# --------------------------------------------------------------------------- near duplicates


MAX_FILE_PROMPT_CHARS = 8_192  # one instruction from a file (512 tokens x 16 characters)


def check_instruction(path: Path, where: str, value: Any) -> str:
    """One instruction from a file (a prompt file or the curated pairs), checked as typed text is."""
    if not isinstance(value, str):
        raise PromptFileError(f"{path}: {where}: instruction must be a string, got {type(value).__name__}")
    if not value.strip():
        raise PromptFileError(f"{path}: {where}: instruction is empty")
    if len(value) > MAX_FILE_PROMPT_CHARS:
        raise PromptFileError(
            f"{path}: {where}: the instruction is {len(value):,} characters long; the limit is "
            f"{MAX_FILE_PROMPT_CHARS:,}"
        )
    problem = text_problem(value.strip())  # the same rule as for a typed prompt
    if problem is not None:
        raise PromptFileError(f"{path}: {where}: the instruction {problem}")
    return value.strip()


def load_curated_pairs(path: str | Path | None = None) -> list[tuple[Prompt, Prompt]]:
    """Load the project's matched (harmful, harmless) pairs from ``data/contrastive_pairs.jsonl``.

    Args:
        path: Another file in the same format (one ``{"id", "category", "harmful",
            "harmless"}`` object per line); defaults to the project's set.

    Returns:
        (harmful, harmless) Prompt pairs, sharing the pair's category, source ``"curated"``.

    Raises:
        PromptFileError: Missing file or a malformed line.
    """
    path = Path(path) if path is not None else CURATED_PAIRS_PATH
    if not path.is_file():
        raise PromptFileError(f"{path}: curated pairs file not found")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            pairs.append(_pair_from_line(path, lineno, line))
    if not pairs:
        raise PromptFileError(f"{path}: contains no pairs")
    return pairs


def _pair_from_line(path: Path, lineno: int, line: str) -> tuple[Prompt, Prompt]:
    try:
        item = jsonio.loads(line)
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(item, dict) or not {"harmful", "harmless"} <= item.keys():
        raise PromptFileError(f"{path}: line {lineno}: expected an object with 'harmful' and 'harmless'")
    where = f"line {lineno}"
    category = item.get("category") or None
    harmful = check_instruction(path, where, item["harmful"])
    harmless = check_instruction(path, where, item["harmless"])
    return Prompt(harmful, category, "curated", True), Prompt(harmless, category, "curated", False)
