"""The experiment's settings: one typed, validated dataclass with every default and its help text."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

from neuroscope.errors import UserError


class ExperimentError(UserError):
    """The experiment cannot run as configured; the message is one line meant for the user."""


def _f(default, help_: str):
    return field(default=default, metadata={"help": help_})


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides what an experiment computes (and so what its artifacts mean).

    Sizes are upper bounds: a set smaller than its size is used whole. Defaults keep
    ``experiment --model demo`` to a few minutes on two CPU cores.
    """

    data_dir: str = _f("", "Folder with the research prompt sets ('' = $NEUROSCOPE_DATA_DIR, else the curated pairs).")
    harmful_file: str = _f(
        "", "User file of harmful prompts (replaces the default harmful sets; split train/val/test)."
    )
    harmless_file: str = _f(
        "", "User file of harmless prompts (replaces the default harmless sets; split train/val/test)."
    )
    n_train: int = _f(128, "Prompts per side for the difference of means.")
    n_val: int = _f(32, "Prompts per side for candidate scoring (logit refusal score, KL).")
    n_test: int = _f(100, "Held-out harmful prompts generated from (JailbreakBench: all 100).")
    n_test_harmless: int = _f(64, "Held-out harmless prompts generated from.")
    n_xstest: int = _f(50, "XSTest prompts per label (safe / unsafe) for over-refusal.")
    n_head_prompts: int = _f(48, "Prompts per side for the per-prompt head statistics and permutation test.")
    seed: int = _f(0, "Seed of every subsample, split, random control and bootstrap.")
    max_new_tokens: int = _f(32, "Generated tokens per answer in the final evaluation.")
    batch_size: int = _f(16, "Prompts per forward / generation batch.")
    max_layer_frac: float = _f(0.8, "Candidates at layers >= this fraction of the depth are discarded.")
    kl_threshold: float = _f(0.1, "Candidates whose ablation KL on harmless exceeds this are discarded.")
    strength: float = _f(1.0, "Activation-addition multiplier of the (unnormalised) direction.")
    head_ks: tuple[int, ...] = _f(
        (1, 2, 4, 8, 16, 32), "Numbers of top heads mean-ablated (clipped to the head count)."
    )
    n_random_head_sets: int = _f(8, "Random head sets per k (the control).")
    max_patch_heads: int = _f(
        256, "Activation-patch every head up to this many; beyond, the top candidates by attribution patching."
    )
    n_permutations: int = _f(1000, "Label permutations for the head-ranking test.")
    n_boot: int = _f(2000, "Bootstrap resamples per interval.")
    n_equivalence: int = _f(8, "Prompts on which hook ablation and orthogonalised weights are compared.")
    edit_strengths: tuple[float, ...] = _f(
        (1.0, 1.25, 1.5, 1.75, 2.0),
        "Weight-edit strengths lambda swept on the "
        "frontier (zero form W <- W - lambda r r^T W; the exact mean form is always a point).",
    )
    edit_tolerance: float = _f(
        0.05,
        "Chosen edit: the least validation KL among points whose validation refusal is "
        "within this (absolute) of the sweep's lowest.",
    )
    export_model: bool = _f(False, "Also save the chosen weight edit (save_pretrained) under the output folder.")
    beyond: bool = _f(
        False,
        "Also run harmfulness vs refusal, the refusal cone, the jailbreak template families and a short suffix "
        "search on this run's prompts and direction (docs/beyond-one-direction.md) and add them to the report.",
    )

    def __post_init__(self) -> None:
        for name in (
            "n_train",
            "n_val",
            "n_test",
            "n_test_harmless",
            "n_head_prompts",
            "max_new_tokens",
            "batch_size",
            "n_permutations",
            "n_boot",
            "n_random_head_sets",
            "max_patch_heads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExperimentError(f"{name} must be a positive integer, got {value!r}")
        for name in ("n_xstest", "n_equivalence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ExperimentError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("strength", "kl_threshold", "max_layer_frac"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ExperimentError(f"{name} must be a finite number, got {value!r}")
        if not 0 < self.max_layer_frac <= 1:
            raise ExperimentError(f"max_layer_frac must be in (0, 1], got {self.max_layer_frac}")
        if self.kl_threshold <= 0:
            raise ExperimentError(f"kl_threshold must be positive, got {self.kl_threshold}")
        strengths = tuple(self.edit_strengths)
        if not strengths or any(
            isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not 0 < x <= 4
            for x in strengths
        ):
            raise ExperimentError(f"edit_strengths must be numbers in (0, 4], got {self.edit_strengths!r}")
        object.__setattr__(self, "edit_strengths", tuple(sorted({float(x) for x in strengths})))
        if (
            isinstance(self.edit_tolerance, bool)
            or not isinstance(self.edit_tolerance, (int, float))
            or not 0 <= self.edit_tolerance <= 1
        ):
            raise ExperimentError(f"edit_tolerance must be in [0, 1], got {self.edit_tolerance!r}")
        ks = tuple(self.head_ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ExperimentError(f"head_ks must be positive integers, got {self.head_ks!r}")
        object.__setattr__(self, "head_ks", tuple(sorted(set(ks))))

    def to_dict(self) -> dict:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExperimentError(f"unknown experiment settings: {', '.join(unknown)}")
        values = dict(values)
        for name in ("head_ks", "edit_strengths"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def fingerprint(self, model_name: str) -> str:
        """A short hash of the settings and the model: a resumed run must match it."""
        # ``beyond`` only adds a step; it changes nothing the other artifacts mean, so a run can be resumed with it
        settings = {k: v for k, v in self.to_dict().items() if k != "beyond"}
        blob = json.dumps({"model": model_name, **settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @staticmethod
    def help_table() -> list[tuple[str, str, str]]:
        return [(f.name, repr(f.default), f.metadata["help"]) for f in dataclasses.fields(ExperimentConfig)]
