"""The experiment's prompt sets: which sources, deterministic subsamples and splits, length report.

Three ways in, most specific first:
1. user files (``harmful_file`` / ``harmless_file``): each split 60/20/20 into train/val/test;
2. the research sets in a data folder: Arditi's train/val splits for the direction and its
   selection, JailbreakBench (10 categories) and Arditi's harmless test for held-out tests, XSTest
   for over-refusal;
3. otherwise the project's curated contrastive pairs, split 60/20/20 by pair.
Every subsample is a deterministic function of the seed.
"""

from __future__ import annotations

from pathlib import Path

import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.prompts import (
    Prompt,
    PromptFileError,
    deterministic_split,
    load_curated_pairs,
    load_source,
    research_source,
    resolve_data_dir,
)
from neuroscope.prompt_checks import length_match_report, near_duplicates
from neuroscope.prompt_files import load_prompt_file

SPLIT = (0.6, 0.2, 0.2)
SET_NAMES = (
    "train_harmful",
    "train_harmless",
    "val_harmful",
    "val_harmless",
    "test_harmful",
    "test_harmless",
    "xstest_safe",
    "xstest_unsafe",
)


@dataclass
class ExperimentData:
    """Prompt sets of one experiment. ``xstest_*`` are empty when XSTest is not available."""

    train_harmful: list[Prompt]
    train_harmless: list[Prompt]
    val_harmful: list[Prompt]
    val_harmless: list[Prompt]
    test_harmful: list[Prompt]
    test_harmless: list[Prompt]
    xstest_safe: list[Prompt] = field(default_factory=list)
    xstest_unsafe: list[Prompt] = field(default_factory=list)
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[Prompt, Prompt]] = field(default_factory=list)  # matched train pairs, if any

    def __post_init__(self) -> None:
        for name in SET_NAMES[:6]:
            if not getattr(self, name):
                raise ExperimentError(f"the {name.replace('_', ' ')} set is empty; give more prompts")

    @staticmethod
    def texts(prompts: Sequence[Prompt]) -> list[str]:
        return [p.instruction for p in prompts]

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SET_NAMES}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description, "sources": self.sources}
        for name in SET_NAMES:
            out[name] = [_prompt_dict(p) for p in getattr(self, name)]
        out["pairs"] = [[_prompt_dict(a), _prompt_dict(b)] for a, b in self.pairs]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentData:
        sets = {name: [Prompt(**p) for p in d.get(name, [])] for name in SET_NAMES}
        pairs = [(Prompt(**a), Prompt(**b)) for a, b in d.get("pairs", [])]
        return cls(**sets, description=d.get("description", ""), sources=d.get("sources", {}), pairs=pairs)


def _prompt_dict(p: Prompt) -> dict[str, Any]:
    return {"instruction": p.instruction, "category": p.category, "source": p.source, "harmful": p.harmful}


def subsample(prompts: Sequence[Prompt], n: int, seed: int) -> list[Prompt]:
    """``n`` prompts drawn without replacement by a seeded shuffle (all of them if fewer)."""
    items = list(prompts)
    if len(items) <= n:
        return items
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:n])]


def load_experiment_data(config: ExperimentConfig) -> ExperimentData:
    """Loads and splits the prompt sets the configuration asks for.

    Raises:
        ExperimentError: A file is malformed, a source is missing, or a set ends up empty. The
            message names the file and the row where possible.
    """
    try:
        if config.harmful_file or config.harmless_file:
            return _from_files(config)
        folder = resolve_data_dir(config.data_dir or None)
        if folder is not None:
            return _from_research_sets(config, str(folder))
        if research_source() == "hub":  # online: the research sets, downloaded with `datasets`
            return _from_research_sets(config, None)
        return _from_curated(config)
    except PromptFileError as err:  # includes PromptSourceError
        raise ExperimentError(str(err)) from None


def _split3(prompts: Sequence[Prompt], seed: int) -> tuple[list[Prompt], list[Prompt], list[Prompt]]:
    train, val, test = deterministic_split(list(prompts), SPLIT, seed=seed)
    return train, val, test


def _from_files(config: ExperimentConfig) -> ExperimentData:
    if not (config.harmful_file and config.harmless_file):
        raise ExperimentError("give both --harmful and --harmless files (or neither)")
    harmful = load_prompt_file(config.harmful_file, harmful=True)
    harmless = load_prompt_file(config.harmless_file, harmful=False)
    h_train, h_val, h_test = _split3(harmful, config.seed)
    b_train, b_val, b_test = _split3(harmless, config.seed)
    return ExperimentData(
        train_harmful=subsample(h_train, config.n_train, config.seed),
        train_harmless=subsample(b_train, config.n_train, config.seed),
        val_harmful=subsample(h_val, config.n_val, config.seed),
        val_harmless=subsample(b_val, config.n_val, config.seed),
        test_harmful=subsample(h_test, config.n_test, config.seed),
        test_harmless=subsample(b_test, config.n_test_harmless, config.seed),
        description=f"user files, each split 60/20/20 (seed {config.seed})",
        sources={"harmful": Path(config.harmful_file).name, "harmless": Path(config.harmless_file).name},
    )


def _from_curated(config: ExperimentConfig) -> ExperimentData:
    pairs = load_curated_pairs()
    train, val, test = deterministic_split(pairs, SPLIT, seed=config.seed)
    train = subsample_pairs(train, config.n_train, config.seed)
    return ExperimentData(
        train_harmful=[h for h, _ in train],
        train_harmless=[b for _, b in train],
        val_harmful=subsample([h for h, _ in val], config.n_val, config.seed),
        val_harmless=subsample([b for _, b in val], config.n_val, config.seed),
        test_harmful=subsample([h for h, _ in test], config.n_test, config.seed),
        test_harmless=subsample([b for _, b in test], config.n_test_harmless, config.seed),
        description=f"NeuroScope curated contrastive pairs (data/), split 60/20/20 by pair (seed {config.seed})",
        sources={"all": "curated"},
        pairs=train,
    )


def subsample_pairs(pairs: Sequence[tuple[Prompt, Prompt]], n: int, seed: int) -> list[tuple[Prompt, Prompt]]:
    items = list(pairs)
    if len(items) <= n:
        return items
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:n])]


def _from_research_sets(config: ExperimentConfig, folder: str | None) -> ExperimentData:
    """The research sets from a local folder, or from the Hugging Face Hub when ``folder`` is None."""
    seed = config.seed
    train_h = subsample(load_source("arditi_harmful_train", folder), config.n_train, seed)
    test_h = subsample(load_source("jailbreakbench", folder), config.n_test, seed)
    # Held-out means held out: drop any training prompt that near-duplicates a test prompt.
    dup = near_duplicates(train_h, test_h)
    train_h = [p for i, p in enumerate(train_h) if i not in dup]
    xstest = load_source("xstest", folder) if config.n_xstest else []
    return ExperimentData(
        train_harmful=train_h,
        train_harmless=subsample(load_source("arditi_harmless_train", folder), config.n_train, seed),
        val_harmful=subsample(load_source("arditi_harmful_val", folder), config.n_val, seed),
        val_harmless=subsample(load_source("arditi_harmless_val", folder), config.n_val, seed),
        test_harmful=test_h,
        test_harmless=subsample(load_source("arditi_harmless_test", folder), config.n_test_harmless, seed),
        xstest_safe=subsample([p for p in xstest if not p.harmful], config.n_xstest, seed),
        xstest_unsafe=subsample([p for p in xstest if p.harmful], config.n_xstest, seed),
        description=(
            f"research sets from {'a local data folder' if folder else 'the Hugging Face Hub'}: Arditi et al. splits (train/val), JailbreakBench and "
            f"Arditi harmless test (held out), XSTest (over-refusal); seed {seed}"
        ),
        sources={
            "train": "arditi_harmful_train / arditi_harmless_train",
            "val": "arditi_harmful_val / arditi_harmless_val",
            "test": "jailbreakbench / arditi_harmless_test",
            "over-refusal": "xstest",
        },
    )


def _length_stats(lengths: list[int]) -> dict[str, float]:
    return {
        "n": len(lengths),
        "mean": statistics.fmean(lengths),
        "median": statistics.median(lengths),
        "min": min(lengths),
        "max": max(lengths),
    }


def length_report(data: ExperimentData, tokenizer: Any) -> dict[str, Any]:
    """Token lengths (no template) of every set, and the matched-pair report where pairs exist.

    A difference of means can pick up length instead of harmfulness; this shows whether the
    train sides are comparable.
    """
    report: dict[str, Any] = {"per_set": {}}
    for name in SET_NAMES:
        prompts = getattr(data, name)
        if prompts:
            lengths = [len(tokenizer.encode(p.instruction, add_special_tokens=False)) for p in prompts]
            report["per_set"][name] = _length_stats(lengths)
    tr_h, tr_b = report["per_set"]["train_harmful"], report["per_set"]["train_harmless"]
    report["train_mean_diff"] = tr_h["mean"] - tr_b["mean"]
    if data.pairs:
        paired = length_match_report(data.pairs, tokenizer)
        paired.pop("diffs", None)
        report["pairs"] = paired
    return report
