"""Step 3: score every candidate (bypass, induce, KL) with the logit refusal score and choose one.

Scoring uses first-token logits only (no generation), on the validation sets: bypass = mean
refusal score of harmful prompts with the candidate ablated everywhere; induce = mean refusal
score of harmless prompts with the candidate added at its own layer; KL = first-token
KL(baseline || ablated) on harmless prompts. Layers the selection discards anyway
(>= ``max_layer_frac`` of the depth) are not scored (NaN), which saves a fifth of the work.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from neuroscope.analysis.directions import CandidateScores, Selection, layer_cut, select_direction
from neuroscope.analysis.metrics import kl_divergence, refusal_score
from neuroscope.method.direction import Candidates
from neuroscope.model.forward import next_token_logits
from neuroscope.model.interventions import DirectionAblation, DirectionAddition
from neuroscope.types import Progress


@dataclass
class ScoredCandidates:
    """Candidate scores plus the unintervened reference scores they compare with."""

    scores: CandidateScores
    baseline_harmful: float  # mean refusal score of val harmful, no intervention
    baseline_harmless: float  # mean refusal score of val harmless, no intervention
    layer_cut: int  # first discarded layer


@torch.no_grad()
def score_candidates(
    lm: Any,
    candidates: Candidates,
    val_harmful: Sequence[str],
    val_harmless: Sequence[str],
    refusal_ids: Sequence[int],
    max_layer_frac: float = 0.8,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> ScoredCandidates:
    """Bypass / induce / KL of every candidate at layers below the cut.

    Returns:
        ScoredCandidates; scores are [n_layers, n_post] float64 with NaN at unscored layers.
    """
    L, P = candidates.n_layers, candidates.n_positions
    cut = layer_cut(L, max_layer_frac)
    bypass = torch.full((L, P), math.nan, dtype=torch.float64)
    induce, kl = bypass.clone(), bypass.clone()
    harmful, harmless = list(val_harmful), list(val_harmless)
    base_h = next_token_logits(lm, harmful, batch_size=batch_size)
    base_b = next_token_logits(lm, harmless, batch_size=batch_size)
    total = max(1, cut * P)
    for layer in range(cut):
        for p in range(P):
            r = candidates.direction(layer, p)
            if float(r.norm()) == 0:
                continue  # identical means (e.g. a position before any difference): unscorable
            abl = DirectionAblation(r)
            bypass[layer, p] = refusal_score(next_token_logits(lm, harmful, [abl], batch_size), refusal_ids).mean()
            abl_b = next_token_logits(lm, harmless, [abl], batch_size)
            kl[layer, p] = kl_divergence(base_b, abl_b).mean()
            added = next_token_logits(lm, harmless, [DirectionAddition(r, layer, 1.0)], batch_size)
            induce[layer, p] = refusal_score(added, refusal_ids).mean()
            if progress is not None:
                progress(
                    (layer * P + p + 1) / total, f"scoring candidate layer {layer}, {candidates.position_labels[p]}"
                )
    scores = CandidateScores(bypass=bypass, induce=induce, kl=kl, layers=list(range(L)), positions=list(range(-P, 0)))
    return ScoredCandidates(
        scores, float(refusal_score(base_h, refusal_ids).mean()), float(refusal_score(base_b, refusal_ids).mean()), cut
    )


def select(
    scored: ScoredCandidates,
    n_layers: int,
    max_layer_frac: float = 0.8,
    kl_threshold: float = 0.1,
    max_kl_relaxation: float = 8.0,
    allow_no_bypass: bool = False,
    induce_floor: float = 0.0,
    behaviour: str = "refusal",
) -> Selection:
    """Arditi's rule: lowest bypass among candidates below the layer cut, KL <= threshold, induce > 0.

    Never a candidate whose ablation leaves the harmful refusal score at or above its baseline:
    such a direction does not mediate refusal, whatever else it does. The experiment refuses to go
    on without one; the app (``allow_no_bypass=True``, for exploring models that do not refuse)
    takes the least bad candidate and says in capitals, in ``reason``, that it is not one.
    ``induce_floor`` replaces the paper's 0 for behaviours whose first-token score is a weaker proxy
    (see ``induce_floor_for``). ``behaviour`` names what the direction is of in the messages.

    The paper's KL threshold (0.1) was set for 7-70B models; a small model's refusal direction
    can cost more KL. When no candidate passes, the KL threshold is doubled (up to
    ``max_kl_relaxation`` times) while still requiring a positive induce score, since a
    direction that cannot induce refusal is not a refusal direction. Only if that fails too do
    the analysis layer's fallbacks apply. Every relaxation is stated in ``reason``.
    """
    pick = functools.partial(
        select_direction,
        scored.scores,
        n_layers,
        max_layer_frac=max_layer_frac,
        require_positive_induce=True,
        induce_floor=induce_floor,
    )
    threshold = kl_threshold
    while threshold <= kl_threshold * max_kl_relaxation + 1e-12:
        try:
            sel = pick(kl_threshold=threshold, allow_fallback=False, bypass_ceiling=scored.baseline_harmful)
        except ValueError:
            threshold *= 2
            continue
        if threshold != kl_threshold:
            sel = dataclasses.replace(
                sel,
                fallback=True,
                reason=(
                    f"KL threshold relaxed from {kl_threshold:g} to {threshold:g} (no candidate with an induce score "
                    f"above {induce_floor:+.2f} had KL <= {kl_threshold:g}): " + sel.reason
                ),
            )
        return sel
    try:
        return pick(kl_threshold=kl_threshold, allow_fallback=True, bypass_ceiling=scored.baseline_harmful)
    except ValueError as err:
        if allow_no_bypass:
            sel = pick(kl_threshold=kl_threshold, allow_fallback=True)
            return dataclasses.replace(
                sel,
                fallback=True,
                reason=(
                    f"NO CANDIDATE LOWERS {behaviour.upper()} WHEN ABLATED (baseline {scored.baseline_harmful:+.2f} "
                    f"log-odds): this is the least bad candidate, not a {behaviour} direction; " + sel.reason
                ),
            )
        raise ValueError(
            f"no candidate lowers the {behaviour} score when ablated (baseline "
            f"{scored.baseline_harmful:+.2f}); the prompt sets may not separate {behaviour} on this model "
            f"({err})"
        ) from None


INDUCE_GAP_SHARE = 0.25


def induce_floor_for(scored: ScoredCandidates, paper: bool) -> float:
    """The induce score a candidate must beat: 0 (Arditi et al., refusal), or for another behaviour a
    quarter of the way from the negative prompts' baseline score to the positive prompts' one (its
    first-token score rarely reaches 0 even on the prompts that show it)."""
    if paper:
        return 0.0
    return scored.baseline_harmless + INDUCE_GAP_SHARE * (scored.baseline_harmful - scored.baseline_harmless)


def candidate_table(scored: ScoredCandidates, selection: Selection, labels: Sequence[str]) -> list[dict]:
    """One row per candidate: layer, position, label, scores, kept, chosen."""
    s = scored.scores
    rows = []
    for li, layer in enumerate(s.layers):
        for pi, pos in enumerate(s.positions):
            rows.append(
                {
                    "layer": layer,
                    "position": pos,
                    "label": labels[pi],
                    "bypass": float(s.bypass[li, pi]),
                    "induce": float(s.induce[li, pi]),
                    "kl": float(s.kl[li, pi]),
                    "kept": bool(selection.kept[li, pi]),
                    "chosen": li == selection.layer_index and pi == selection.pos_index,
                }
            )
    return rows


def verify_by_generation(
    lm: Any,
    candidates: Candidates,
    scored: ScoredCandidates,
    sel: Selection,
    val_harmful: Sequence[str],
    judge: Callable[[str], bool],
    max_new_tokens: int,
    batch_size: int = 16,
    tries: int = 5,
) -> tuple[Selection, dict[str, Any]]:
    """Checks the chosen candidate where it matters: greedy answers to the validation harmful prompts.

    The logit score can fall while the answers still refuse (or refuse more). Candidates are tried in
    the selection's order (the chosen one, then the other kept ones by bypass score); the first whose
    ablation lowers the judged rate below the baseline rate is kept, every rejected one is recorded.

    Returns:
        ``(selection, record)``; ``record`` has the baseline rate, the kept candidate's rate and the
        rejected candidates with theirs.

    Raises:
        ValueError: No tried candidate lowers the rate.
    """
    from neuroscope.model.generate import generate

    prompts = list(val_harmful)
    base = sum(map(judge, generate(lm, prompts, max_new_tokens, batch_size=batch_size))) / len(prompts)
    s = scored.scores
    order = [(sel.layer_index, sel.pos_index)]
    kept = [
        (float(s.bypass[i, j]), i, j)
        for i in range(s.bypass.shape[0])
        for j in range(s.bypass.shape[1])
        if bool(sel.kept[i, j]) and (i, j) != order[0]
    ]
    order += [(i, j) for _, i, j in sorted(kept)]
    rejected = []
    for li, pi in order[:tries]:
        layer, position = s.layers[li], s.positions[pi]
        answers = generate(
            lm,
            prompts,
            max_new_tokens,
            interventions=[DirectionAblation(candidates.direction(layer, pi))],
            batch_size=batch_size,
        )
        rate = sum(map(judge, answers)) / len(prompts)
        if rate < base:
            record = {"baseline_rate": base, "ablated_rate": rate, "rejected": rejected, "n_prompts": len(prompts)}
            if (li, pi) == (sel.layer_index, sel.pos_index):
                return sel, record
            note = "; ".join(
                f"layer {r['layer']}, position {r['position']} ({r['ablated_rate']:.0%})" for r in rejected
            )
            return dataclasses.replace(
                sel,
                layer=layer,
                position=position,
                layer_index=li,
                pos_index=pi,
                bypass=float(s.bypass[li, pi]),
                induce=float(s.induce[li, pi]),
                kl=float(s.kl[li, pi]),
                reason=(
                    f"{sel.reason}; rejected because ablating them did not lower the validation refusal rate "
                    f"(baseline {base:.0%}): {note}; kept layer {layer}, position {position} ({rate:.0%})"
                ),
            ), record
        rejected.append({"layer": layer, "position": position, "ablated_rate": rate})
    tried = "; ".join(f"layer {r['layer']}, position {r['position']}: {r['ablated_rate']:.0%}" for r in rejected)
    raise ValueError(
        f"ablating none of the {len(rejected)} best candidates lowers the validation harmful prompts' "
        f"refusal rate below its baseline {base:.0%} ({tried}); these prompt sets do not isolate a "
        "refusal direction on this model"
    )
