"""The contrastive prompt sets the Direction tab offers: curated pairs, the research sets, uploads, behaviours."""

from __future__ import annotations

from dataclasses import dataclass


from neuroscope.behaviours import REFUSAL, Behaviour, behaviour_names, get_behaviour
from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.method.data import load_experiment_data, subsample
from neuroscope.prompts import (
    NO_RESEARCH_SETS,
    PromptFileError,
    deterministic_split,
    load_curated_pairs,
    research_source,
)

from neuroscope.services.checks import ResearchError, positive_int


CURATED = "Curated contrastive pairs (bundled)"
RESEARCH = "Research sets (Arditi et al. splits)"
CURATED_NOTE = (
    "**What the curated pairs can show.** 132 hand-written minimal pairs (a harmful request and a harmless "
    "twin sharing most of its words), bundled so that the method runs anywhere: the candidate scores, the "
    "separation and the cosine map. On the demo model the direction they give does **not** remove refusal: "
    "ablated, the example prompts are still refused (too few pairs, too alike, for a 6-layer keyword model). "
    "For causal claims use the research sets (offered when a data folder or the Hugging Face Hub is "
    "available) or the direction the demo model ships with (loaded at start-up)."
)


def curated_note(source: str, has_shipped: bool) -> str:
    """What the curated pairs can show, worded for the model in use (the measured failure is the demo model's)."""
    if source == "demo":
        return CURATED_NOTE
    return (
        "**What the curated pairs can show.** 132 hand-written minimal pairs (a harmful request and a harmless "
        "twin sharing most of its words), bundled so that the method runs anywhere: the candidate scores, the "
        "separation and the cosine map. Whether the direction they give removes refusal on this model is for "
        "the Interventions tab to show; on the bundled demo model it does not (too few pairs, too alike). "
        "For causal claims use the research sets (offered when a data folder or the Hugging Face Hub is "
        "available)" + (" or the direction this model ships with (loaded at start-up)." if has_shipped else ".")
    )


UPLOADED = "Uploaded files (harmful + harmless)"


@dataclass
class ContrastiveSet:
    """Instructions used to find and describe a direction: train (means) and held-out val."""

    train_harmful: list[str]
    train_harmless: list[str]
    val_harmful: list[str]
    val_harmless: list[str]
    description: str
    behaviour: str = REFUSAL  # what the "harmful" (positive) side shows: refusal, or a bundled behaviour


def contrastive_set_names(public: bool = False) -> list[str]:
    """Sets this installation can offer: curated always; the research sets when they can be loaded
    (a data folder, or the Hugging Face Hub when online); uploads outside public mode."""
    names = [CURATED] + [behaviour_set_name(get_behaviour(b)) for b in behaviour_names() if b != REFUSAL]
    try:
        if research_source() is not None:
            names.append(RESEARCH)
    except PromptFileError:
        pass
    if not public:
        names.append(UPLOADED)
    return names


def set_behaviour(name: str) -> str:
    """The behaviour a contrastive set's positive side shows: a bundled behaviour's name, else refusal."""
    for b in behaviour_names():
        if b != REFUSAL and name in (b, behaviour_set_name(get_behaviour(b))):
            return b
    return REFUSAL


def behaviour_set_name(behaviour: Behaviour) -> str:
    """The contrastive-set name a bundled behaviour is offered under."""
    return f"{behaviour.title} (bundled behaviour: {behaviour.name})"


def behaviour_pairs(name: str, seed: int = 0) -> tuple[Behaviour, list, list, list]:
    """A bundled behaviour's (positive, negative) pairs split 60/20/20: ``(behaviour, train, val, test)``."""
    behaviour = get_behaviour(name)
    if behaviour.name == REFUSAL:  # refusal's bundled pairs are the curated ones (split as CURATED splits them)
        pairs = [(h.instruction, b.instruction) for h, b in load_curated_pairs()]
    else:
        pairs = list(behaviour.pairs)
    train, val, test = deterministic_split(pairs, (0.6, 0.2, 0.2), seed=seed)
    return behaviour, train, val, test


def load_contrastive_set(
    name: str,
    n_train: int,
    n_val: int,
    seed: int = 0,
    harmful_file: str | None = None,
    harmless_file: str | None = None,
) -> ContrastiveSet:
    """Loads and splits a contrastive set (deterministic for a seed).

    Raises:
        ResearchError: Unknown set, missing files, or a malformed file (the message says where).
    """
    n_train, n_val = (
        positive_int(n_train, "training prompts per side"),
        positive_int(n_val, "validation prompts per side"),
    )
    if name == CURATED:
        train, val, _test = deterministic_split(load_curated_pairs(), (0.6, 0.2, 0.2), seed=seed)
        train, val = subsample(train, n_train, seed), subsample(val, n_val, seed)
        return ContrastiveSet(
            [h.instruction for h, _ in train],
            [b.instruction for _, b in train],
            [h.instruction for h, _ in val],
            [b.instruction for _, b in val],
            f"curated contrastive pairs: {len(train)} train / {len(val)} validation pairs (seed {seed})",
        )
    b = set_behaviour(name)
    if b != REFUSAL:
        behaviour, train, val, _test = behaviour_pairs(b, seed)
        train, val = subsample(train, n_train, seed), subsample(val, n_val, seed)
        return ContrastiveSet(
            [p for p, _ in train],
            [q for _, q in train],
            [p for p, _ in val],
            [q for _, q in val],
            f"{behaviour.title}: {len(train)} train / {len(val)} validation pairs (seed {seed})",
            behaviour=b,
        )
    if name in (RESEARCH, UPLOADED):
        if name == UPLOADED and not (harmful_file and harmless_file):
            raise ResearchError("upload both a harmful and a harmless prompt file (txt, csv, json or jsonl)")
        if name == RESEARCH and _research_source_or_none() is None:
            raise ResearchError(NO_RESEARCH_SETS)
        config = ExperimentConfig(
            n_train=n_train,
            n_val=n_val,
            seed=seed,
            n_xstest=0,
            harmful_file=harmful_file or "" if name == UPLOADED else "",
            harmless_file=harmless_file or "" if name == UPLOADED else "",
        )
        try:
            data = load_experiment_data(config)
        except (ExperimentError, PromptFileError) as err:
            raise ResearchError(str(err)) from None
        texts = lambda ps: [p.instruction for p in ps]  # noqa: E731
        description = "uploaded prompt files, split 60/20/20" if name == UPLOADED else "Arditi et al. train/val splits"
        return ContrastiveSet(
            texts(data.train_harmful),
            texts(data.train_harmless),
            texts(data.val_harmful),
            texts(data.val_harmless),
            f"{description}: {len(data.train_harmful)}+"
            f"{len(data.train_harmless)} train, {len(data.val_harmful)}+{len(data.val_harmless)} validation",
        )
    raise ResearchError(f"unknown contrastive set {name!r}; choose one of: {', '.join([CURATED, RESEARCH, UPLOADED])}")


def _research_source_or_none() -> str | None:
    try:
        return research_source()
    except PromptFileError:
        return None
