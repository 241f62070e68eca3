"""The research service behind the Direction and Interventions tabs (no gradio here).

It holds the *current refusal direction* of each loaded model — data, so one per model, shared
by every session — together with what the views need to show it: candidate scores, per-layer
candidates for the cosine matrix, held-out projections for the separation plot, each head's
mean-difference projection on the direction (head Δ) and the mean per-head ``z`` used by head
mean ablation. Interventions are per request: each call builds its own intervention objects and
runs under the model's lock, so two users never see each other's edits.

Data flow: prompts -> model layer (means, logits, generations) -> pure analysis -> plain tensors
and dataclasses, which ``neuroscope.ui`` turns into figures.
"""

from __future__ import annotations

import contextvars
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from neuroscope.behaviours import REFUSAL, Behaviour, behaviour_names, get_behaviour
from neuroscope.errors import UserError
from neuroscope.analysis.directions import CandidateScores, Selection, cosine_similarity_matrix, unit
from neuroscope.analysis.heads import (
    RANKING_RULE,
    HeadDeparture,
    HeadStats,
    head_departures,
    head_stats,
    head_values,
    rank_heads,
)
from neuroscope.analysis.metrics import is_clean_refusal, refusal_score
from neuroscope.config import Settings
from neuroscope.experiment.artifacts import ArtifactError, load_direction, save_direction
from neuroscope.experiment.config import ExperimentConfig, ExperimentError
from neuroscope.experiment.data import load_experiment_data, subsample
from neuroscope.experiment.direction import Candidates, compute_candidates, position_labels
from neuroscope.experiment.selection import induce_floor_for, score_candidates, select
from neuroscope.model.activations import (
    last_token_projections,
    mean_head_z,
    mean_resid_pre,
    post_instruction_z,
    projection_means,
)
from neuroscope.model.capture import capture
from neuroscope.model.chat import PromptError, clean_instruction
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import decode_completion, generate, stream_ids
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, HeadAblation, Intervention
from neuroscope.prompts import (
    NO_RESEARCH_SETS,
    PromptFileError,
    deterministic_split,
    load_curated_pairs,
    research_source,
)

Progress = Callable[[float, str], None]

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
UPLOADED = "Uploaded files (harmful + harmless)"
MAX_HEAD_PROMPTS = 64  # prompts per side behind the head Δ, its baseline and the patching pairs
DIRECTION_SCALE_LIMIT = 10.0  # a loaded direction larger than 10x the residual stream is refused
MAX_STRENGTH = 50.0  # |strength| beyond this only produces noise; a typo guard, not a science limit


class ResearchError(UserError):
    """A research request cannot be served; the message is for the user."""


# --------------------------------------------------------------------------- prompt sets


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


def behaviour_set_name(behaviour: Behaviour) -> str:
    """The contrastive-set name a bundled behaviour is offered under."""
    return f"{behaviour.title} (bundled behaviour: {behaviour.name})"


def behaviour_pairs(name: str, seed: int = 0) -> tuple[Behaviour, list, list, list]:
    """A bundled behaviour's (positive, negative) pairs split 60/20/20: ``(behaviour, train, val, test)``."""
    behaviour = get_behaviour(name)
    train, val, test = deterministic_split(list(behaviour.pairs), (0.6, 0.2, 0.2), seed=seed)
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
        _positive_int(n_train, "training prompts per side"),
        _positive_int(n_val, "validation prompts per side"),
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
    for b in behaviour_names():
        if b != REFUSAL and name in (b, behaviour_set_name(get_behaviour(b))):
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


# --------------------------------------------------------------------------- the direction


@dataclass
class DirectionResult:
    """The current refusal direction of a model and everything its views show.

    Shapes: ``L`` layers, ``P`` post-instruction positions, ``H`` heads, ``D`` head dim, ``d`` d_model.
    """

    model_name: str
    direction: Tensor  # [d] float32, unnormalised difference of means (its norm is the addition scale)
    layer: int  # the layer whose input it was read from (and where addition steers by default)
    position: int  # negative post-instruction position it was read at
    origin: str  # "computed" or "loaded"
    description: str  # data it was computed / described with
    reason: str  # why this candidate (selection sentence, or the file's metadata)
    harmful_proj: Tensor  # [N, L] held-out harmful prompts, last position, on the unit direction
    harmless_proj: Tensor  # [M, L]
    layer_cosines: Tensor  # [K, K] cosine between the per-layer candidates (+ the loaded one)
    cosine_labels: list[str]  # [K]
    heads: HeadStats  # THE head Δ ([L, H]) and the harmless baseline of the per-prompt callout
    head_means: Tensor  # [L, H, D] mean z over the harmless training prompts (head mean ablation)
    mean_target: Tensor  # [L] mean projection of harmless prompts (mean-ablation target)
    scores: CandidateScores | None = None  # selection scores ([L, P]); None for a loaded direction
    selection: Selection | None = None
    position_labels: list[str] = field(default_factory=list)
    kl_threshold: float = 0.1
    layer_cut: int | None = None
    head_prompts: tuple[list[str], list[str]] = ((), ())  # (harmful, harmless) behind ``heads``: patching pairs
    behaviour: str = REFUSAL  # what the direction is a direction of (``neuroscope.behaviours``)
    causal: dict[str, Any] | None = None  # the head attribution record, once computed (``heads_record``)
    created: float = field(default_factory=time.time)

    @property
    def unit_direction(self) -> Tensor:
        return unit(self.direction)

    @property
    def head_delta(self) -> Tensor:
        """[L, H] Δ along the direction (``HeadStats.delta_projection``; ``RANKING_RULE``)."""
        return self.heads.delta_projection.float()

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the direction (no local paths)."""
        out = {
            "model": self.model_name,
            "origin": self.origin,
            "layer": self.layer,
            "position": self.position,
            "norm": round(float(self.direction.norm()), 6),
            "data": self.description,
            "reason": self.reason,
        }
        if self.selection is not None:
            out.update(
                bypass=round(self.selection.bypass, 6),
                induce=round(self.selection.induce, 6),
                kl=round(self.selection.kl, 6),
            )
        gap = (self.harmful_proj.mean(0) - self.harmless_proj.mean(0)).tolist()
        out["separation_by_layer"] = [round(g, 6) for g in gap]
        return out


# The visitor a handler runs for (the app sets it from gradio's session hash; None outside a request).
current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("neuroscope_session", default=None)


class DirectionStore:
    """The current direction per model, shared, or per visitor session in public mode (thread-safe).

    ``per_session=False`` (a local app): one direction per model that every tab and window shares.
    ``per_session=True`` (public mode): what a visitor computes or loads is theirs alone, kept for
    the ``max_sessions`` most recent visitors; every visitor sees the shared direction (the one the
    app started with) until they set their own, and no visitor can change it.
    """

    def __init__(self, per_session: bool = False, max_sessions: int = 64) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, DirectionResult] = {}
        self._sessions: OrderedDict[tuple[str, str], DirectionResult] = OrderedDict()
        self.per_session = per_session
        self.max_sessions = max_sessions

    def _session(self) -> str | None:
        return current_session.get() if self.per_session else None

    def set(self, result: DirectionResult) -> None:
        """Sets the current direction: the visitor's own in public mode, else the shared one."""
        session = self._session()
        with self._lock:
            if session is None:
                self._shared[result.model_name] = result
                return
            key = (result.model_name, session)
            self._sessions[key] = result
            self._sessions.move_to_end(key)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def set_shared(self, result: DirectionResult) -> None:
        """The direction every visitor starts with (the app's start-up direction)."""
        with self._lock:
            self._shared[result.model_name] = result

    def forget(self, session: str) -> None:
        """Drops a visitor's direction (their page was closed)."""
        with self._lock:
            for key in [k for k in self._sessions if k[1] == session]:
                del self._sessions[key]

    def peek(self, lm: Any) -> DirectionResult | None:
        session = self._session()
        with self._lock:
            if session is not None and (lm.name, session) in self._sessions:
                return self._sessions[(lm.name, session)]
            return self._shared.get(lm.name)

    def get(self, lm: Any) -> DirectionResult:
        """The current direction, or a ``ResearchError`` telling the user how to get one."""
        found = self.peek(lm)
        if found is None:
            raise ResearchError(
                "no refusal direction yet: compute one (or load a saved one) in the 'Refusal direction' tab first"
            )
        return found


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
    if not isinstance(layer, int) or not 0 <= layer < lm.n_layers:
        layer = lm.n_layers // 2
    if not isinstance(position, int) or not -lm.n_post_instruction <= position < 0:
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
    scale = float(torch.maximum(mu_h[layer].norm(dim=-1), mu_b[layer].norm(dim=-1)).max())
    if float(direction.norm()) > DIRECTION_SCALE_LIMIT * scale:
        raise ResearchError(
            f"the file's direction has norm {float(direction.norm()):.3g}, more than "
            f"{DIRECTION_SCALE_LIMIT:g}x this model's mean residual norm at layer {layer} ({scale:.3g}): "
            "it was not computed on this model's activations"
        )
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
    harmful_proj = last_token_projections(lm, data.val_harmful, r, batch_size=batch_size)
    harmless_proj = last_token_projections(lm, data.val_harmless, r, batch_size=batch_size)
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
        harmful_proj=harmful_proj,
        harmless_proj=harmless_proj,
        layer_cosines=cosines,
        cosine_labels=labels,
        heads=stats,
        head_means=z_b.float(),
        mean_target=target.float(),
        position_labels=candidates.position_labels,
        head_prompts=(list(data.train_harmful[:MAX_HEAD_PROMPTS]), list(data.train_harmless[:MAX_HEAD_PROMPTS])),
        behaviour=data.behaviour,
    )


def _o_proj_weights(lm: Any) -> Tensor:
    return torch.stack([lm.o_proj_weight(l).detach().double().cpu() for l in range(lm.n_layers)])


def describe_heads(
    lm: Any, harmful: Sequence[str], harmless: Sequence[str], direction: Tensor, batch_size: int = 16
) -> HeadStats:
    """Head Δ and the harmless baseline on (at most ``MAX_HEAD_PROMPTS`` of) each set: computed once
    per model and direction and kept in its ``DirectionResult``."""
    r, W_O = unit(direction.double()), _o_proj_weights(lm)
    harmful, harmless = list(harmful[:MAX_HEAD_PROMPTS]), list(harmless[:MAX_HEAD_PROMPTS])
    return head_stats(
        head_values(post_instruction_z(lm, harmful, batch_size), W_O, r),
        head_values(post_instruction_z(lm, harmless, batch_size), W_O, r),
    )


def prompt_head_values(lm: Any, z: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """One prompt's head values from a capture's ``z`` ([L, H, S, D]): ``(projection, norm)``, [L, H] each."""
    P = lm.n_post_instruction
    z_post = z[:, :, -P:].double().mean(dim=2)[None]  # [1, L, H, D]
    proj, norm = head_values(z_post, _o_proj_weights(lm), unit(direction.double()))
    return proj[0], norm[0]


def head_callout(lm: Any, direction: Tensor, stats: HeadStats, z: Tensor, k: int = 3) -> list[HeadDeparture]:
    """The k heads whose output on this prompt departs most from the harmless baseline (|z|).

    Args:
        direction: [d_model] the direction ``stats`` was computed along.
        stats: Its head Δ and harmless baseline (``describe_heads``).
        z: [L, H, S, D] the prompt's capture.
    """
    proj, norm = prompt_head_values(lm, z, direction)
    return head_departures(proj, norm, stats, k)


def head_attribution(
    lm: Any, result: DirectionResult, n_prompts: object = 32, batch_size: int = 16, progress: Progress | None = None
) -> dict[str, Any]:
    """Activation patching, attribution patching and the Δ measures of every head (the experiment's
    step 6 on this direction's prompts); kept in ``result.causal``.

    Raises:
        ResearchError: Too few prompts.
    """
    from neuroscope.experiment.heads import analyse_heads, heads_record

    n = _positive_int(n_prompts, "prompts per side")
    harmful, harmless = result.head_prompts
    n = min(n, len(harmful), len(harmless))
    if n < 4:
        raise ResearchError("head attribution needs at least 4 prompts per side; compute the direction on a larger set")
    half = n // 2  # patch on one half, test the top-k sets on the other
    h = analyse_heads(
        lm,
        result.direction,
        harmful[:half],
        harmless[:half],
        harmful[half:n],
        get_behaviour(result.behaviour).token_ids(lm.tokenizer),
        ks=(1, 2, 4, 8),
        n_random=4,
        n_permutations=200,
        batch_size=batch_size,
        progress=progress,
    )
    result.causal = heads_record(h)
    return result.causal


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


def shipped_direction(lm: Any, batch_size: int = 16) -> DirectionResult | None:
    """The direction shipped with the bundled demo model, described on the default prompt set.

    So that a first visit's Interventions tab works on the first click, offline, without a data
    folder: the direction was selected by the experiment on the research sets (see its file's
    metadata); the views are described on whatever set this installation offers (research sets, or
    the curated pairs). None for any other model.
    """
    from neuroscope.config import DEMO_DIRECTION

    if lm.source != "demo" or not DEMO_DIRECTION.is_file():
        return None
    name = RESEARCH if RESEARCH in contrastive_set_names() else CURATED
    data = load_contrastive_set(name, 64, 16)
    return direction_from_file(lm, DEMO_DIRECTION, data, batch_size=batch_size, origin="shipped with the demo model")


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


# --------------------------------------------------------------------------- interventions on one prompt


@dataclass
class Generation:
    """One condition's answer to the prompt and how much it leans towards refusal."""

    condition: str
    answer: str
    refused: bool
    clean_refusal: bool
    log_odds: float  # first-token log-odds of the behaviour (refusal: the same score as the Explorer)
    projections: Tensor  # [L] last-position layer input on the unit direction
    behaviour: str = REFUSAL  # ``refused`` means "shows this behaviour"

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.log_odds)) if self.log_odds > -700 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "answer": self.answer,
            "refused": self.refused,
            "clean_refusal": self.clean_refusal,
            "refusal_log_odds": round(self.log_odds, 6),
            "refusal_probability": round(self.probability, 6),
            "projection_by_layer": [round(p, 6) for p in self.projections.tolist()],
        }


def check_prompt(lm: Any, prompt: object, settings: Settings) -> str:
    """Validated instruction (raises ``PromptError``: empty, control characters, too long)."""
    text = clean_instruction(prompt, settings.max_prompt_tokens)
    lm.encode_chat([text], max_tokens=settings.max_prompt_tokens)
    return text


def check_new_tokens(value: object, settings: Settings) -> int:
    n = as_int(value, "answer length")
    if not 1 <= n <= settings.max_new_tokens_limit:
        raise PromptError(f"answer length must be between 1 and {settings.max_new_tokens_limit} tokens, got {n}")
    return n


def run_condition(
    lm: Any,
    text: str,
    condition: str,
    interventions: Sequence[Intervention],
    direction: Tensor,
    max_new_tokens: int,
    settings: Settings,
    behaviour: str = REFUSAL,
) -> Generation:
    """Answer, verdict, first-token refusal score and per-layer projection under interventions."""
    answer = generate(
        lm, [text], max_new_tokens=max_new_tokens, interventions=interventions, max_tokens=settings.max_prompt_tokens
    )[0]
    return _scored(lm, text, condition, interventions, direction, answer, behaviour)


def stream_condition(
    lm: Any,
    text: str,
    condition: str,
    interventions: Sequence[Intervention],
    direction: Tensor,
    max_new_tokens: int,
    settings: Settings,
    behaviour: str = REFUSAL,
) -> Iterator[str | Generation]:
    """``run_condition`` token by token: yields the answer so far after each token, then the ``Generation``."""
    answer = ""
    for ids in stream_ids(
        lm, text, max_new_tokens=max_new_tokens, interventions=interventions, max_tokens=settings.max_prompt_tokens
    ):
        answer = decode_completion(lm, ids)
        yield answer
    yield _scored(lm, text, condition, interventions, direction, answer, behaviour)


def _scored(
    lm: Any,
    text: str,
    condition: str,
    interventions: Sequence[Intervention],
    direction: Tensor,
    answer: str,
    behaviour: str = REFUSAL,
) -> Generation:
    b = get_behaviour(behaviour)
    logits = next_token_logits(lm, [text], interventions=interventions)
    score = float(refusal_score(logits, b.token_ids(lm.tokenizer))[0])
    proj = last_token_projections(lm, [text], direction, interventions=interventions)[0]
    clean = is_clean_refusal(answer) if behaviour == REFUSAL else b.judge(answer)
    return Generation(condition, answer, b.judge(answer), clean, score, proj, behaviour)


def intervention_conditions(
    lm: Any, result: DirectionResult, layer: object, strength: object, mean_ablation: bool = False
) -> list[tuple[str, list[Intervention]]]:
    """Baseline, direction ablated (every layer) and direction added (one layer), validated.

    Raises:
        ResearchError: A layer outside the model or a strength outside ±``MAX_STRENGTH``.
    """
    layer = as_int(layer, "layer")
    if not 0 <= layer < lm.n_layers:
        raise ResearchError(f"layer must be an integer in 0..{lm.n_layers - 1}, got {layer}")
    strength = as_float(strength, "strength")
    if abs(strength) > MAX_STRENGTH:
        raise ResearchError(f"strength must lie in -{MAX_STRENGTH:g}..{MAX_STRENGTH:g}, got {strength:g}")
    return [
        ("baseline", []),
        (
            "direction ablated" + (" (mean)" if mean_ablation else ""),
            [DirectionAblation(result.direction, target=result.mean_target if mean_ablation else None)],
        ),
        (f"direction added (layer {layer}, ×{strength:g})", [DirectionAddition(result.direction, layer, strength)]),
    ]


def stream_interventions(
    lm: Any,
    result: DirectionResult,
    prompt: object,
    settings: Settings,
    layer: object,
    strength: object,
    max_new_tokens: object,
    mean_ablation: bool = False,
) -> Iterator[tuple[int, str | Generation]]:
    """The three runs of ``compare_interventions``, one after another, token by token.

    Yields:
        ``(run index, answer so far)`` after every token, then ``(run index, Generation)`` when a run ends.
    """
    text = check_prompt(lm, prompt, settings)
    n_new = check_new_tokens(max_new_tokens, settings)
    conditions = intervention_conditions(lm, result, layer, strength, mean_ablation)
    for i, (name, ivs) in enumerate(conditions):
        for item in stream_condition(lm, text, name, ivs, result.direction, n_new, settings, result.behaviour):
            yield i, item


def compare_interventions(
    lm: Any,
    result: DirectionResult,
    prompt: object,
    settings: Settings,
    layer: object,
    strength: object,
    max_new_tokens: object,
    mean_ablation: bool = False,
    progress: Progress | None = None,
) -> list[Generation]:
    """Baseline, direction ablated (every layer) and direction added (one layer): three generations."""
    text = check_prompt(lm, prompt, settings)
    n_new = check_new_tokens(max_new_tokens, settings)
    conditions = intervention_conditions(lm, result, layer, strength, mean_ablation)
    out = []
    for i, (name, ivs) in enumerate(conditions):
        if progress:
            progress(i / len(conditions), f"generating: {name}")
        out.append(run_condition(lm, text, name, ivs, result.direction, n_new, settings, result.behaviour))
    return out


def parse_heads(labels: object, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """``["L1H2", ...]`` (or one comma-separated string) -> sorted ``(layer, head)`` pairs.

    Raises:
        ResearchError: A label that is not ``L<layer>H<head>`` or names a head that does not exist.
    """
    if labels is None:
        return []
    if isinstance(labels, str):
        labels = [part for part in labels.replace(";", ",").split(",")]
    if not isinstance(labels, (list, tuple, set)):
        raise ResearchError(f"heads must be a list of labels like L2H5, got {type(labels).__name__}")
    heads = set()
    for label in labels:
        raw = str(label).strip().upper()
        if not raw:
            continue
        try:
            l_text, h_text = raw[1:].split("H")
            if not raw.startswith("L"):
                raise ValueError
            layer, head = int(l_text), int(h_text)
        except ValueError:
            raise ResearchError(f"cannot read head {label!r}: write heads as L<layer>H<head>, e.g. L2H5") from None
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ResearchError(
                f"head L{layer}H{head} does not exist (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})"
            )
        heads.add((layer, head))
    return sorted(heads)


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


MEASURES = {
    "Δ along the direction": RANKING_RULE,
    "activation patching": "the change of the refusal log-odds when the head's post-instruction output on a "
    "harmful prompt is patched from a harmless one, most negative first",
}


def top_heads(result: DirectionResult, k: object, measure: str = "Δ along the direction") -> list[tuple[int, int]]:
    """The top k heads by a measure of ``MEASURES`` (signed; the rule is stated there).

    Raises:
        ResearchError: Bad k, unknown measure, or patching not computed yet.
    """
    k = as_int(k, "k")
    total = result.head_delta.numel()
    if not 0 <= k <= total:
        raise ResearchError(f"k must be between 0 and {total}, got {k}")
    if measure == "Δ along the direction":
        return rank_heads(result.heads.delta_projection, k)
    if measure == "activation patching":
        if result.causal is None:
            raise ResearchError("compute the causal head maps first (button 'Compute head attribution')")
        return [tuple(x) for x in result.causal["ranking"][:k]]
    raise ResearchError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}")


def ablate_heads(
    lm: Any,
    result: DirectionResult,
    prompt: object,
    heads: Sequence[tuple[int, int]],
    settings: Settings,
    max_new_tokens: object,
) -> tuple[Generation, Generation]:
    """Baseline vs the chosen heads mean-ablated (``z`` replaced by its harmless-prompt mean, as the pipeline does)."""
    text = check_prompt(lm, prompt, settings)
    n_new = check_new_tokens(max_new_tokens, settings)
    if not heads:
        raise ResearchError("choose at least one head to ablate (tick it in the grid, or use 'select top-k by Δ')")
    base = run_condition(lm, text, "baseline", [], result.direction, n_new, settings, result.behaviour)
    iv = HeadAblation(tuple(heads), result.head_means)
    ablated = run_condition(
        lm, text, f"{len(heads)} head(s) mean-ablated", [iv], result.direction, n_new, settings, result.behaviour
    )
    return base, ablated


def head_attention(
    lm: Any, prompt: object, layer: object, head: object, settings: Settings
) -> tuple[Tensor, list[str]]:
    """Attention probabilities ``[S, S]`` of one head on the prompt, and the token strings."""
    text = check_prompt(lm, prompt, settings)
    layer, head = lm.check_layer(as_int(layer, "layer")), lm.check_head(as_int(head, "head"))
    cache = capture(
        lm, [text], attention_layers=[layer], top_k=0, gradients=False, max_tokens=settings.max_prompt_tokens
    )[0]
    return cache.attention[layer][head], cache.tokens


# --------------------------------------------------------------------------- input checks


def plain_text(value: object, limit: int = 80) -> str:
    """A file's metadata string made safe to show in Markdown: letters, digits and plain punctuation only."""
    text = re.sub(r"[^\w .,:/@+()-]", "", str(value))[:limit].strip()
    return text or "unnamed"


def as_float(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResearchError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ResearchError(f"{name} must be a finite number, got {value!r}")
    return x


def as_int(value: object, name: str) -> int:
    x = as_float(value, name)
    if x != int(x):
        raise ResearchError(f"{name} must be a whole number, got {value!r}")
    return int(x)


def _positive_int(value: object, name: str) -> int:
    n = as_int(value, name)
    if n < 1:
        raise ResearchError(f"{name} must be at least 1, got {n}")
    return n
