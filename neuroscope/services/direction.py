"""The current direction of each model: find it, load it and describe it for the views (its state and the
per-session store are in ``services.state``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.directions import CandidateScores, Selection, cosine_similarity_matrix, unit
from neuroscope.behaviours import REFUSAL, Behaviour, get_behaviour
from neuroscope.method.artifacts import ArtifactError, load_direction, save_direction
from neuroscope.method.config import ExperimentConfig
from neuroscope.method.direction import Candidates, compute_candidates, position_labels
from neuroscope.method.selection import induce_floor_for, score_candidates, select
from neuroscope.model.activations import (
    last_token_projections,
    mean_head_z,
    mean_resid_pre,
    projection_means,
)
from neuroscope.model.generate import generate
from neuroscope.services.checks import ResearchError, plain_text
from neuroscope.services.heads import MAX_HEAD_PROMPTS, describe_heads
from neuroscope.services.sets import CURATED, RESEARCH, ContrastiveSet, contrastive_set_names, load_contrastive_set
from neuroscope.services.state import DirectionResult
from neuroscope.types import Progress


DIRECTION_SCALE_LIMIT = 10.0  # a loaded direction larger than 10x the residual stream is refused


def direction_scale_problem(direction: Tensor, means: Tensor, layer: int) -> str | None:
    """Why a loaded direction cannot be this model's (norm over ``DIRECTION_SCALE_LIMIT`` x the largest mean
    residual norm at its layer, ``means`` [..., d] there), or None. The app and ``evaluate`` share it."""
    scale = float(means.norm(dim=-1).max())
    norm = float(direction.norm())
    if not math.isfinite(norm) or norm > DIRECTION_SCALE_LIMIT * scale:
        return (
            f"the file's direction has norm {norm:.3g}, more than {DIRECTION_SCALE_LIMIT:g}x this model's mean "
            f"residual norm at layer {layer} ({scale:.3g}): it was not computed on this model's activations"
        )
    return None


def _tick(progress: Progress | None, start: float, span: float) -> Progress | None:
    if progress is None:
        return None
    return lambda fraction, message: progress(start + span * min(max(fraction, 0.0), 1.0), message)


def find_direction(
    lm: Any,
    data: ContrastiveSet,
    max_layer_frac: float = 0.8,
    kl_threshold: float = 0.1,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> DirectionResult:
    """Arditi et al.'s recipe on a contrastive set: candidates, scores, selection, then description.

    Candidates are differences of mean layer inputs at every (layer, post-instruction position);
    each is scored on the validation prompts (bypass, induce, KL, first-token logits) and the
    lowest-bypass candidate passing the filters is chosen.
    """
    behaviour = get_behaviour(data.behaviour)
    check_behaviour_at_baseline(lm, behaviour, data.val_harmful, batch_size)
    candidates = compute_candidates(
        lm, data.train_harmful, data.train_harmless, batch_size=batch_size, progress=_tick(progress, 0.0, 0.25)
    )
    scored = score_candidates(
        lm,
        candidates,
        data.val_harmful,
        data.val_harmless,
        behaviour.token_ids(lm.tokenizer),
        max_layer_frac=max_layer_frac,
        batch_size=batch_size,
        progress=_tick(progress, 0.25, 0.5),
    )
    try:
        selection = select(
            scored,
            lm.n_layers,
            max_layer_frac=max_layer_frac,
            kl_threshold=kl_threshold,
            allow_no_bypass=True,
            induce_floor=induce_floor_for(scored, behaviour.name == REFUSAL),
            behaviour=behaviour.name,
        )
    except ValueError as err:
        raise ResearchError(f"no usable candidate direction: {err}") from None
    direction = candidates.direction(selection.layer_index, selection.pos_index)
    result = describe(
        lm,
        direction,
        selection.layer,
        selection.position,
        data,
        candidates=candidates,
        origin="computed",
        reason=selection.reason,
        progress=_tick(progress, 0.75, 0.25),
        batch_size=batch_size,
    )
    result.scores, result.selection = scored.scores, selection
    result.position_labels, result.kl_threshold, result.layer_cut = (
        candidates.position_labels,
        kl_threshold,
        scored.layer_cut,
    )
    return result


BASELINE_PROMPTS, BASELINE_TOKENS, BASELINE_MIN_RATE = 16, 24, 0.2


def check_behaviour_at_baseline(lm: Any, behaviour: Behaviour, positives: Sequence[str], batch_size: int = 16) -> float:
    """The share of ``positives`` whose greedy answer shows the behaviour, before anything is computed.

    Raises:
        ResearchError: Under ``BASELINE_MIN_RATE``: there is nothing for a direction to explain
            (e.g. SmolLM2-135M-Instruct answers harmful prompts). Untrained tiny models (wiring
            fixtures, labelled as such in the app) are not checked.
    """
    if lm.source == "tiny" or not positives:
        return math.nan
    sample = list(positives[:BASELINE_PROMPTS])
    answers = generate(lm, sample, max_new_tokens=BASELINE_TOKENS, batch_size=batch_size)
    shown = sum(map(behaviour.judge, answers))
    share = shown / len(sample)
    if share < BASELINE_MIN_RATE:
        raise ResearchError(
            f"this model {behaviour.shows} {share:.0%} of {behaviour.positive} prompts ({shown} of "
            f"{len(sample)} validation prompts, greedy, {BASELINE_TOKENS} tokens): there is no "
            f"{behaviour.name} to explain, so no direction is computed"
        )
    return share


def direction_from_file(
    lm: Any,
    path: str | Path,
    data: ContrastiveSet,
    batch_size: int = 16,
    progress: Progress | None = None,
    origin: str = "loaded",
) -> DirectionResult:
    """Loads a saved direction (``save_direction`` format) and describes it on a contrastive set.

    Raises:
        ResearchError: Not a direction file, or one for another model size.
    """
    try:
        direction, meta = load_direction(path)
    except ArtifactError as err:
        raise ResearchError(str(err).replace(str(path), Path(path).name)) from None
    if direction.shape != (lm.d_model,):
        raise ResearchError(f"the file holds a direction of size {direction.shape[0]}, this model needs {lm.d_model}")
    layer = meta.get("layer", lm.n_layers // 2)
    position = meta.get("position", -1)
    if type(layer) is not int or not 0 <= layer < lm.n_layers:  # a bool is no layer
        layer = lm.n_layers // 2
    if type(position) is not int or not -lm.n_post_instruction <= position < 0:
        position = -1
    P = lm.n_post_instruction
    tick = _tick(progress, 0.0, 0.4)
    mu_h = mean_resid_pre(
        lm,
        data.train_harmful,
        batch_size=batch_size,
        progress=None if tick is None else lambda d, t: tick(0.5 * d / t, "mean activations: harmful"),
    )
    mu_b = mean_resid_pre(
        lm,
        data.train_harmless,
        batch_size=batch_size,
        progress=None if tick is None else lambda d, t: tick(0.5 + 0.5 * d / t, "mean activations: harmless"),
    )
    candidates = Candidates(mu_h, mu_b, mu_h - mu_b, position_labels(lm))
    problem = direction_scale_problem(direction, torch.stack([mu_h[layer], mu_b[layer]]), layer)
    if problem:
        raise ResearchError(problem)
    source = plain_text(meta.get("model", "unknown model"))
    target = meta.get("mean_target")
    target = (
        torch.tensor(target, dtype=torch.float32)
        if isinstance(target, list)
        and len(target) == lm.n_layers
        and all(isinstance(x, (int, float)) and math.isfinite(x) for x in target)
        else None
    )
    return describe(
        lm,
        direction,
        layer,
        position,
        data,
        candidates=candidates,
        origin=origin,
        reason=f"loaded from a saved file (computed on {source}, layer {layer}, position {position}; "
        f"P={P} positions here)",
        progress=_tick(progress, 0.4, 0.6),
        batch_size=batch_size,
        mean_target=target,
    )


def describe(
    lm: Any,
    direction: Tensor,
    layer: int,
    position: int,
    data: ContrastiveSet,
    candidates: Candidates,
    origin: str,
    reason: str,
    batch_size: int = 16,
    progress: Progress | None = None,
    mean_target: Tensor | None = None,
) -> DirectionResult:
    """Computes what the views show about a direction: separation, cosines, head Δ and means.

    ``mean_target`` ([n_layers]) keeps the mean-ablation target the direction was saved with (the
    harmless mean of the data it was computed on) instead of re-measuring it on ``data``.
    """
    r = unit(direction.float())
    if progress:
        progress(0.0, "projecting held-out prompts on the direction")
    positive_proj = last_token_projections(lm, data.val_harmful, r, batch_size=batch_size)
    negative_proj = last_token_projections(lm, data.val_harmless, r, batch_size=batch_size)
    pos_index = candidates.n_positions + position
    per_layer = candidates.directions[:, pos_index].double()  # [L, d]
    labels = [f"layer {l}" for l in range(candidates.n_layers)]
    keep = per_layer.norm(dim=-1) > 0
    rows, labels = per_layer[keep], [lab for lab, k in zip(labels, keep.tolist()) if k]
    if origin == "loaded":
        rows, labels = torch.cat([rows, direction.double()[None]]), labels + ["loaded"]
    cosines = cosine_similarity_matrix(rows).float()
    if progress:
        progress(0.4, "head Δ and the harmless baseline (post-instruction positions)")
    stats = describe_heads(lm, data.train_harmful, data.train_harmless, r, batch_size)
    z_b = mean_head_z(lm, data.train_harmless, batch_size=batch_size)
    if progress:
        progress(0.8, "mean-ablation targets")
    target = (
        mean_target if mean_target is not None else projection_means(lm, data.train_harmless, r, batch_size=batch_size)
    )
    if progress:
        progress(1.0, "done")
    return DirectionResult(
        model_name=lm.name,
        direction=direction.detach().float().cpu(),
        layer=layer,
        position=position,
        origin=origin,
        description=data.description,
        reason=reason,
        positive_proj=positive_proj,
        negative_proj=negative_proj,
        layer_cosines=cosines,
        cosine_labels=labels,
        heads=stats,
        head_means=z_b.float(),
        mean_target=target.float(),
        position_labels=candidates.position_labels,
        head_prompts=(list(data.train_harmful[:MAX_HEAD_PROMPTS]), list(data.train_harmless[:MAX_HEAD_PROMPTS])),
        behaviour=data.behaviour,
    )


def from_experiment(lm: Any, result: Any, progress: Progress | None = None) -> DirectionResult:
    """The direction of a finished ``run_experiment`` as the current direction (scores included)."""
    sel, data = result.selection, result.data
    texts = lambda ps: [p.instruction for p in ps]  # noqa: E731
    sets = ContrastiveSet(
        texts(data.train_harmful),
        texts(data.train_harmless),
        texts(data.val_harmful),
        texts(data.val_harmless),
        data.description,
    )
    described = describe(
        lm,
        result.direction,
        int(sel["layer"]),
        int(sel["position"]),
        sets,
        result.candidates,
        origin="experiment",
        reason=sel["reason"],
        progress=progress,
    )
    L, P = result.candidates.n_layers, result.candidates.n_positions
    grid = {k: torch.full((L, P), math.nan, dtype=torch.float64) for k in ("bypass", "induce", "kl")}
    for row in sel["table"]:
        for k in grid:
            grid[k][row["layer"], P + row["position"]] = math.nan if row[k] is None else row[k]
    described.scores = CandidateScores(**grid)
    described.selection = select_from_record(sel, described.scores)
    described.layer_cut, described.kl_threshold = sel["layer_cut"], result.config.kl_threshold
    return described


def select_from_record(sel: dict[str, Any], scores: CandidateScores) -> Selection:
    """A ``Selection`` rebuilt from the pipeline's ``selection.json`` record."""
    return Selection(
        layer=int(sel["layer"]),
        position=int(sel["position"]),
        layer_index=int(sel["layer"]),
        pos_index=int(sel["pos_index"]),
        bypass=float(sel["bypass"]),
        induce=float(sel["induce"]),
        kl=float(sel["kl"]),
        reason=sel["reason"],
        filtered=scores.bypass.isnan(),
        fallback=bool(sel.get("fallback", False)),
    )


def works(result: DirectionResult | None) -> bool:
    """Whether a direction is known to remove its behaviour: its selection's bypass score (held-out
    prompts, direction ablated) is below 0, or it is a shipped direction (its model's experiment
    measured it)."""
    if result is None:
        return False
    if result.selection is not None:
        return result.selection.bypass < 0
    return result.origin.startswith("shipped")


def keep_current_reason(current: DirectionResult | None, new: DirectionResult) -> str | None:
    """Why ``new`` should not silently replace ``current`` (None: replace it).

    A computed direction whose own selection shows no bypass (held-out prompts still show the behaviour
    when it is ablated) does not replace one that works; the caller keeps the current direction, says
    so, and offers to use the new one anyway.
    """
    if new.selection is None or works(new) or not works(current):
        return None
    words = get_behaviour(new.behaviour)
    return (
        f"the new direction (layer {new.layer}, position {new.position}) does not remove {words.name.replace('_', ' ')} "
        f"on the held-out {words.positive} prompts when ablated (bypass score {new.selection.bypass:+.2f}; below 0 "
        f"would mean most are freed), so the current direction ({current.origin}, layer {current.layer}, position "
        f"{current.position}) is kept"
    )


def shipped_direction_file(lm: Any) -> Path | None:
    """The direction file shipped with ``lm``'s bundled model (demo model, refusal-tuned SmolLM2), or None."""
    from neuroscope.config import DEMO_DIRECTION, SMOLLM2_REFUSAL_DIR

    path = {"demo": DEMO_DIRECTION, "smollm2-refusal": SMOLLM2_REFUSAL_DIR / "direction.safetensors"}.get(lm.source)
    return path if path is not None and path.is_file() else None


def shipped_ablation_form(lm: Any) -> str:
    """The ablation form that frees ``lm``'s bundled model, as its own experiment measured it: ``"mean"``
    (projection -> harmless mean, the default) unless the recorded ``experiment.json`` beside the shipped
    direction shows the paper's zero form leaving fewer harmful prompts refused (the refusal-tuned
    SmolLM2: zero 0.04, mean 0.58), then ``"zero"``."""
    import json

    path = shipped_direction_file(lm)
    record = path.parent / "experiment.json" if path is not None else None
    if record is None or not record.is_file():
        return "mean"
    harmful = json.loads(record.read_text()).get("refusal_harmful", {})
    zero, mean = harmful.get("ablation", {}).get("mean"), harmful.get("mean_ablation", {}).get("mean")
    return "zero" if zero is not None and mean is not None and zero < mean else "mean"


def shipped_direction(lm: Any, batch_size: int = 16) -> DirectionResult | None:
    """The direction shipped with a bundled model, described on the default prompt set.

    So that a first visit's Interventions tab works on the first click, offline, without a data
    folder: the direction was selected by the experiment on the research sets (see its file's
    metadata); the views are described on whatever set this installation offers (research sets, or
    the curated pairs). None for any other model.
    """
    path = shipped_direction_file(lm)
    if path is None:
        return None
    name = RESEARCH if RESEARCH in contrastive_set_names() else CURATED
    paper = ExperimentConfig()  # the sizes the Direction tab's sliders start at: one provenance either way
    data = load_contrastive_set(name, paper.n_train, paper.n_val)
    origin = "shipped with the demo model" if lm.source == "demo" else f"shipped with {lm.name}"
    from neuroscope.services.described import cached_description  # described once, then read back

    return cached_description(
        lm,
        path,
        data.train_harmful + data.val_harmful,
        data.train_harmless + data.val_harmless,
        extra=f"{data.description}|{data.behaviour}|{origin}|{batch_size}",
        compute=lambda: direction_from_file(lm, path, data, batch_size=batch_size, origin=origin),
        cls=DirectionResult,
    )


def save_current(result: DirectionResult, path: str | Path) -> Path:
    """Writes the direction with its metadata in the pipeline's format; returns the path."""
    meta = {
        "model": result.model_name,
        "layer": result.layer,
        "position": result.position,
        "origin": result.origin,
        "data": result.description,
        "reason": result.reason,
        "mean_target": result.mean_target.tolist(),
    }
    save_direction(path, result.direction, meta)
    return Path(path)
