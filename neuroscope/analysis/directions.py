"""Refusal directions: difference of means, projection, ablation, addition and selection.

Follows Arditi et al. (2024), "Refusal in language models is mediated by a single direction":
candidate directions are differences of mean residuals (harmful - harmless) for every layer and
post-instruction position; one is chosen by its bypass / induce / KL scores (`select_direction`).

`ablate` and `add` are the intervention formulas the model layer calls inside its traced forward
passes, so they keep the input's device, stay differentiable and avoid data-dependent Python
branches. Everything else is `@torch.no_grad()` statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from neuroscope.analysis._checks import require_finite, stat_dtype

__all__ = [
    "CandidateScores",
    "DirectionStats",
    "Selection",
    "ablate",
    "add",
    "cosine_similarity_matrix",
    "difference_of_means",
    "direction_stats",
    "layer_cut",
    "project",
    "select_direction",
    "unit",
]


@torch.no_grad()
def difference_of_means(harmful_mean: Tensor, harmless_mean: Tensor) -> Tensor:
    """Candidate refusal directions: mean harmful activation minus mean harmless activation.

    Args:
        harmful_mean: [..., d_model], e.g. [n_layers, n_post_instruction, d_model].
        harmless_mean: same shape as `harmful_mean`.

    Returns:
        float64 [..., d_model], on the inputs' device. Not normalised: the norm is the size of
        the mean shift, which `add` uses as the natural steering strength.
    """
    if harmful_mean.shape != harmless_mean.shape:
        raise ValueError(
            f"harmful_mean {tuple(harmful_mean.shape)} and harmless_mean "
            f"{tuple(harmless_mean.shape)} must have the same shape"
        )
    require_finite(harmful_mean, "harmful_mean")
    require_finite(harmless_mean, "harmless_mean")
    return harmful_mean.double() - harmless_mean.double()


@torch.no_grad()
def unit(v: Tensor) -> Tensor:
    """Scale vectors to unit L2 norm along the last axis.

    Args:
        v: [..., d].

    Returns:
        [..., d] in v's dtype (at least float32); the norm is taken in float64.

    Raises:
        ValueError: if any vector has zero (or non-finite) norm.
    """
    require_finite(v, "v")
    v64 = v.double()
    norm = v64.norm(dim=-1, keepdim=True)
    if (norm == 0).any():
        raise ValueError(f"cannot normalise a zero vector ({int((norm == 0).sum())} of them in v)")
    return (v64 / norm).to(stat_dtype(v))


def project(x: Tensor, unit_direction: Tensor) -> Tensor:
    """Scalar projection of activations onto a unit direction, <x, r_hat>.

    Args:
        x: [..., d_model].
        unit_direction: [d_model], unit norm (not checked: this runs inside forward passes).

    Returns:
        [...] in x's dtype promoted to at least float32, on x's device.
    """
    dtype = stat_dtype(x)
    return x.to(dtype) @ unit_direction.to(device=x.device, dtype=dtype)


def ablate(x: Tensor, unit_direction: Tensor, target: float | Tensor = 0.0, strength: float = 1.0) -> Tensor:
    """Set the component of x along a unit direction to `target`; leave the rest untouched.

    x' = x + (target - strength * <x, r_hat>) r_hat. With target = 0 this is Arditi's directional
    ablation x - (x . r_hat) r_hat; a tensor target gives the mean-ablation form (projection ->
    mean). A ``strength`` lambda other than 1 scales the component by (1 - lambda) instead of
    removing it (lambda > 1 reflects it): the hook form of the weight edit W <- W - lambda r r^T W.
    This is THE ablation formula: the model layer calls it inside its interventions. The sum is
    done in float32 (or float64) and cast back to x's dtype once, so a bf16 residual keeps only
    the final rounding error. The direction is re-normalised in that precision, so one stored
    in bf16 (norm off by ~1e-3) still removes the whole component. Differentiable; no
    data-dependent branches.

    Args:
        x: [..., d_model].
        unit_direction: [d_model], (nearly) unit norm; a zero vector gives NaN.
        target: float, or a tensor broadcastable to x[..., 0] (e.g. [] or [batch, 1]).
        strength: lambda, the share of the component taken away (1 = all of it).

    Returns:
        [..., d_model] in x's dtype and on x's device.
    """
    if unit_direction.shape != x.shape[-1:]:
        raise ValueError(f"unit_direction {tuple(unit_direction.shape)} does not match x {tuple(x.shape)}")
    dtype = stat_dtype(x)
    r = unit_direction.to(device=x.device, dtype=dtype)
    r = r / r.norm()
    xf = x.to(dtype)
    if isinstance(target, Tensor):
        target = target.to(device=x.device, dtype=dtype)
    coeff = target - (xf @ r if strength == 1 else strength * (xf @ r))
    return (xf + coeff.unsqueeze(-1) * r).to(x.dtype)


def add(x: Tensor, direction: Tensor, strength: float | Tensor = 1.0) -> Tensor:
    """Activation addition: x + strength * direction at every position.

    Args:
        x: [..., d_model].
        direction: [d_model]; not normalised here (Arditi add the raw difference of means).
        strength: float, or a tensor broadcastable to x[..., 0].

    Returns:
        [..., d_model] in x's dtype and on x's device.
    """
    if direction.shape != x.shape[-1:]:
        raise ValueError(f"direction {tuple(direction.shape)} does not match x {tuple(x.shape)}")
    dtype = stat_dtype(x)
    d = direction.to(device=x.device, dtype=dtype)
    if isinstance(strength, Tensor):
        strength = strength.to(device=x.device, dtype=dtype).unsqueeze(-1)
    return (x.to(dtype) + strength * d).to(x.dtype)


@torch.no_grad()
def cosine_similarity_matrix(dirs: Tensor) -> Tensor:
    """Pairwise cosine similarities between directions.

    Args:
        dirs: [K, d].

    Returns:
        float64 [K, K], symmetric, ones on the diagonal.

    Raises:
        ValueError: on a zero-norm direction or non-finite values.
    """
    if dirs.ndim != 2:
        raise ValueError(f"dirs must be [K, d], got {tuple(dirs.shape)}")
    u = unit(dirs.double())
    return (u @ u.T).clamp(-1.0, 1.0)


@dataclass(frozen=True)
class DirectionStats:
    """How well one direction separates harmful from harmless activations.

    Attributes:
        norm: L2 norm of the (unnormalised) direction.
        harmful_mean: mean projection of harmful activations on the unit direction.
        harmless_mean: mean projection of harmless activations.
        cohens_d: (harmful_mean - harmless_mean) / pooled standard deviation (NaN if it is 0).
        auroc: P(harmful projection > harmless projection), ties counted half.
    """

    norm: float
    harmful_mean: float
    harmless_mean: float
    cohens_d: float
    auroc: float


@torch.no_grad()
def direction_stats(direction: Tensor, harmful: Tensor, harmless: Tensor) -> DirectionStats:
    """Separation statistics of activations projected on a direction.

    Args:
        direction: [d_model], any norm (normalised here).
        harmful: [N, d_model] activations of harmful prompts (N >= 2).
        harmless: [M, d_model] activations of harmless prompts (M >= 2).

    Returns:
        DirectionStats, computed in float64.
    """
    if harmful.ndim != 2 or harmless.ndim != 2 or len(harmful) < 2 or len(harmless) < 2:
        raise ValueError(
            f"harmful and harmless must be [N>=2, d_model], got {tuple(harmful.shape)} and {tuple(harmless.shape)}"
        )
    r = unit(direction.double())
    a = project(harmful.double(), r)
    b = project(harmless.double(), r)
    require_finite(a, "harmful projections")
    require_finite(b, "harmless projections")
    n, m = len(a), len(b)
    pooled_var = ((n - 1) * a.var() + (m - 1) * b.var()) / (n + m - 2)
    gap = a.mean() - b.mean()
    cohens_d = float(gap / pooled_var.sqrt()) if pooled_var > 0 else math.nan
    diff = a[:, None] - b[None, :]
    auroc = float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())
    return DirectionStats(
        norm=float(direction.double().norm()),
        harmful_mean=float(a.mean()),
        harmless_mean=float(b.mean()),
        cohens_d=cohens_d,
        auroc=auroc,
    )


@dataclass
class CandidateScores:
    """Selection scores of the candidate directions, one per (layer, post-instruction position).

    NaN marks a candidate that was not scored (e.g. a layer skipped because it would be pruned
    anyway); `select_direction` discards it.

    Attributes:
        bypass: [L, P] refusal score on val harmful with the candidate ablated (lower = better).
        induce: [L, P] refusal score on val harmless with the candidate added.
        kl: [L, P] first-token KL(baseline || ablated) on val harmless.
        layers: L layer indices of the rows (default 0..L-1).
        positions: P position labels of the columns (default -P..-1, i.e. post-instruction).
    """

    bypass: Tensor
    induce: Tensor
    kl: Tensor
    layers: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bypass.ndim != 2:
            raise ValueError(f"bypass must be [L, P], got {tuple(self.bypass.shape)}")
        shape = self.bypass.shape
        for name in ("induce", "kl"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} {tuple(getattr(self, name).shape)} != bypass {tuple(shape)}")
        n_layers, n_pos = shape
        self.layers = list(self.layers) or list(range(n_layers))
        self.positions = list(self.positions) or list(range(-n_pos, 0))
        if len(self.layers) != n_layers or len(self.positions) != n_pos:
            raise ValueError(
                f"{len(self.layers)} layer labels and {len(self.positions)} position labels "
                f"for scores of shape {tuple(shape)}"
            )


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and why.

    Attributes:
        layer: layer label of the chosen candidate.
        position: position label of the chosen candidate.
        layer_index: row of the chosen candidate in the score tensors.
        pos_index: column of the chosen candidate in the score tensors.
        bypass, induce, kl: its scores.
        reason: one human-readable sentence.
        filtered: [L, P] bool, True where a candidate was discarded by the filters that were
            applied (after relaxation, if any).
        fallback: True if the paper's filters left nothing and some were relaxed.
    """

    layer: int
    position: int
    layer_index: int
    pos_index: int
    bypass: float
    induce: float
    kl: float
    reason: str
    filtered: Tensor
    fallback: bool = False

    @property
    def kept(self) -> Tensor:
        """[L, P] bool: candidates that survived the filters."""
        return ~self.filtered


def layer_cut(n_layers: int, max_layer_frac: float) -> int:
    """First layer the selection discards: candidates at layers >= floor(frac * n_layers) are too
    close to the unembedding (Arditi et al. keep the first 80 %)."""
    return math.floor(n_layers * max_layer_frac + 1e-9)


def _filter_masks(
    scores: CandidateScores,
    n_layers: int,
    max_layer_frac: float,
    kl_threshold: float,
    bypass_ceiling: float | None = None,
    induce_floor: float = 0.0,
) -> dict[str, Tensor]:
    """Per-filter discard masks, each [L, P] bool (True = discarded)."""
    shape = scores.bypass.shape
    cut = layer_cut(n_layers, max_layer_frac)
    late = torch.tensor([lay >= cut for lay in scores.layers]).unsqueeze(1).expand(shape)
    nan = scores.bypass.isnan() | scores.induce.isnan() | scores.kl.isnan()
    return {
        "late_layer": late,
        "nan": nan,
        "kl": scores.kl.double() > kl_threshold,
        "induce": scores.induce.double() <= induce_floor,
        # ablating it must lower the harmful prompts' refusal score below their baseline
        "no_bypass": (scores.bypass.double() >= bypass_ceiling)
        if bypass_ceiling is not None
        else torch.zeros(shape, dtype=torch.bool),
    }


@torch.no_grad()
def select_direction(
    scores: CandidateScores,
    n_layers: int,
    max_layer_frac: float = 0.8,
    kl_threshold: float = 0.1,
    require_positive_induce: bool = True,
    allow_fallback: bool = False,
    bypass_ceiling: float | None = None,
    induce_floor: float = 0.0,
) -> Selection:
    """Arditi et al.'s selection: the lowest bypass score among the candidates that pass the filters.

    Filters: layer >= floor(max_layer_frac * n_layers) (too close to the unembedding), KL > kl_threshold
    (ablation changes harmless behaviour), induce <= 0 (adding it does not induce refusal; only
    if `require_positive_induce`), and any NaN score. Ties go to the earliest (layer, position).

    Fallback (only with `allow_fallback=True`): if nothing survives, drop the induce filter, then
    also the KL filter (the layer and NaN filters always stay); the result has `fallback=True` and
    says what was relaxed in `reason`.

    Args:
        scores: CandidateScores with bypass / induce / kl of shape [L, P].
        n_layers: number of layers of the model (not L: the scores may cover a subset).
        max_layer_frac: layers at or beyond this fraction of the depth are discarded.
        kl_threshold: largest allowed KL.
        require_positive_induce: discard candidates whose induce score is <= 0.
        allow_fallback: relax filters instead of raising when nothing survives.
        bypass_ceiling: the harmful prompts' baseline refusal score; a candidate whose ablation does
            not lower it below this is never chosen, fallback or not (it is not a refusal direction).
        induce_floor: the induce score a candidate must exceed (0, the paper's, for refusal: adding
            the direction makes refusal more likely than not).

    Returns:
        Selection.

    Raises:
        ValueError: if no candidate survives (and fallback is off or cannot help).
    """
    if n_layers <= 0 or not 0 < max_layer_frac <= 1:
        raise ValueError(f"need n_layers > 0 and 0 < max_layer_frac <= 1, got {n_layers}, {max_layer_frac}")
    masks = _filter_masks(scores, n_layers, max_layer_frac, kl_threshold, bypass_ceiling, induce_floor)
    steps = [["late_layer", "nan", "no_bypass", "kl"] + (["induce"] if require_positive_induce else [])]
    if allow_fallback:
        if require_positive_induce:
            steps.append(["late_layer", "nan", "no_bypass", "kl"])
        steps.append(["late_layer", "nan", "no_bypass"])
    for step, names in enumerate(steps):
        filtered = torch.zeros(scores.bypass.shape, dtype=torch.bool)
        for name in names:
            filtered |= masks[name]
        if not filtered.all():
            return _pick(scores, filtered, names, fallback=step > 0)
    counts = ", ".join(f"{name}: {int(m.sum())}" for name, m in masks.items())
    raise ValueError(
        f"no candidate direction survives the filters (discarded per filter: {counts}; "
        f"{scores.bypass.numel()} candidates). Relax kl_threshold / require_positive_induce or "
        "pass allow_fallback=True."
    )


def _pick(scores: CandidateScores, filtered: Tensor, names: list[str], fallback: bool) -> Selection:
    """Lowest bypass score among the unfiltered candidates of [L, P] scores."""
    bypass = scores.bypass.double().masked_fill(filtered, math.inf)
    flat = int(torch.argmin(bypass.flatten()))  # first minimum: earliest (layer, position)
    li, pi = divmod(flat, bypass.shape[1])
    layer, position = scores.layers[li], scores.positions[pi]
    n_kept = int((~filtered).sum())
    reason = (
        f"lowest bypass score among {n_kept}/{filtered.numel()} candidates passing filters "
        f"[{', '.join(names)}]: layer {layer}, position {position}"
    )
    if fallback:
        reason = "FALLBACK (paper filters left no candidate): " + reason
    return Selection(
        layer=layer,
        position=position,
        layer_index=li,
        pos_index=pi,
        bypass=float(scores.bypass[li, pi]),
        induce=float(scores.induce[li, pi]),
        kl=float(scores.kl[li, pi]),
        reason=reason,
        filtered=filtered,
        fallback=fallback,
    )
