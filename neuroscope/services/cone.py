"""The refusal cone on the loaded model (Wollschläger et al., ICML 2025): ablate k = 1..4 dimensions.

Two families of candidate subspaces at one layer and position, both starting from the difference-of-means
direction (k = 1 is Arditi et al.'s direction): its principal components (how harmful prompts spread
around the harmless mean, outside the direction) and the directions of neighbouring layers, orthonormalised.
Each subspace is ablated (zero form, every layer and write) on held-out harmful prompts — refusal judged on
the greedy answer — and on harmless prompts for the first-token KL; random k-dimensional subspaces are the
control. The answer: does a second, third, fourth dimension remove refusal that the first leaves?
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from neuroscope.analysis.cone import layer_basis, pca_basis, random_basis
from neuroscope.analysis.metrics import Interval, bootstrap_ci, is_refusal, rate_with_ci
from neuroscope.method.data import ExperimentData
from neuroscope.model.activations import resid_pre_at
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate
from neuroscope.model.interventions import SubspaceAblation
from neuroscope.services.checks import ResearchError
from neuroscope.services.harmfulness import MAX_PROMPTS, Steps, check_sizes, default_site, study_data
from neuroscope.types import Progress

FAMILIES = {
    "pca": "difference of means + principal components",
    "layers": "difference of means at this and neighbouring layers",
    "random": "random subspaces (control)",
}
MAX_K = 8


@dataclass
class ConePoint:
    k: int
    refused: Interval
    kl: Interval
    flags: list[bool]


@dataclass
class ConeStudy:
    model: str
    layer: int
    position: int
    layer_reason: str
    baseline: Interval
    curves: dict[str, list[ConePoint]]  # family -> points for k = 1..k_max
    data: str
    seconds: float

    def gain(self) -> tuple[ConePoint, Interval]:
        """The best subspace of more than one dimension (fewest refused, either family) and its paired gain
        over the single direction: the interval of refused(k = 1) - refused(best) over the same prompts."""
        first = self.curves["pca"][0]
        best = min(
            (p for name in ("pca", "layers") for p in self.curves[name][1:]),
            key=lambda p: p.refused.mean,
            default=first,
        )
        diffs = torch.tensor(first.flags, dtype=torch.float64) - torch.tensor(best.flags, dtype=torch.float64)
        return best, bootstrap_ci(diffs, seed=0)

    def one_is_enough(self) -> bool:
        """No subspace of more dimensions leaves fewer prompts refused beyond the paired interval."""
        return not self.gain()[1].lo > 0

    def summary(self) -> str:
        first = self.curves["pca"][0]
        best, g = self.gain()
        last = {name: pts[-1] for name, pts in self.curves.items()}
        lines = [
            f"Baseline: {self.baseline:.2f} of held-out harmful prompts refused. Ablating one direction (layer "
            f"{self.layer}, position {self.position}) leaves {first.refused:.2f} (harmless KL {first.kl.mean:.2f}); "
            f"k = {last['pca'].k} dimensions leave {last['pca'].refused:.2f} (principal components) and "
            f"{last['layers'].refused:.2f} (neighbouring layers); random {last['random'].k}-dimensional subspaces "
            f"leave {last['random'].refused:.2f}."
        ]
        if self.one_is_enough():
            lines.append(
                f"One direction is enough on this model: the best extra dimensions (k = {best.k}) change the "
                f"refused share by {0.0 - g.mean:+.2f} [{0.0 - g.hi:+.2f}, {0.0 - g.lo:+.2f}] (paired), an interval "
                "that includes 0."
            )
        else:
            lines.append(
                f"One direction is not enough on this model: k = {best.k} dimensions free {g.mean:.2f} "
                f"[{g.lo:.2f}, {g.hi:.2f}] more of the harmful prompts than the single direction (paired), at a "
                f"harmless first-token KL of {best.kl:.2f} against {first.kl.mean:.2f} for one direction."
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        best, g = self.gain()
        return {
            "model": self.model,
            "layer": self.layer,
            "position": self.position,
            "layer_reason": self.layer_reason,
            "baseline": self.baseline.to_dict(),
            "curves": {
                name: [{"k": p.k, "refused": p.refused.to_dict(), "kl": p.kl.to_dict()} for p in pts]
                for name, pts in self.curves.items()
            },
            "families": FAMILIES,
            "one_is_enough": self.one_is_enough(),
            "gain": {"k": best.k, **g.to_dict()},
            "summary": self.summary(),
            "data": self.data,
            "seconds": round(self.seconds, 1),
        }


def _kl(base: Tensor, other: Tensor) -> Tensor:
    """Per-prompt KL(base || other) of the first answer token ([N, vocab] logits)."""
    p = torch.log_softmax(base.double(), -1)
    q = torch.log_softmax(other.double(), -1)
    return (p.exp() * (p - q)).sum(-1)


def _bases(h: Tensor, b: Tensor, layer: int, k_max: int) -> dict[str, Tensor]:
    """The two families' orthonormal bases from the training activations ``h``, ``b`` [N, L, D]."""
    try:
        return {
            "pca": pca_basis(h[:, layer], b[:, layer], k_max),
            "layers": layer_basis(h.mean(0) - b.mean(0), layer, k_max),
        }
    except ValueError as err:
        raise ResearchError(f"cannot build the subspaces: {err}") from None


def _site(
    lm: Any, k_max: object, n_train: object, n_test: object, n_random: object, layer: object, position: object
) -> tuple[int, int, str]:
    """Checks the sizes; returns (layer, position, why): the default site unless either was chosen."""
    check_sizes(n_train, n_test)
    if type(k_max) is not int or not 1 <= k_max <= MAX_K:
        raise ResearchError(f"dimensions must be an integer in 1..{MAX_K}, got {k_max!r}")
    if type(n_random) is not int or not 1 <= n_random <= 16:
        raise ResearchError(f"random subspaces per k must be an integer in 1..16, got {n_random!r}")
    at_layer, at_position, reason = default_site(lm)
    if layer is None and position is None:
        layer, position = at_layer, at_position
    else:
        reason = "chosen"
        layer = at_layer if layer is None else layer
        position = -1 if position is None else position
    if type(layer) is not int or not 0 <= layer < lm.n_layers:
        raise ResearchError(f"layer must be in 0..{lm.n_layers - 1}, got {layer!r}")
    if type(position) is not int or not -lm.n_post_instruction <= position <= -1:
        raise ResearchError(
            f"position must be in -{lm.n_post_instruction}..-1 (a post-instruction token), got {position!r}"
        )
    return layer, position, reason


def refusal_cone(
    lm: Any,
    k_max: int = 4,
    n_train: int = 64,
    n_test: int = 32,
    n_random: int = 2,
    layer: int | None = None,
    position: int | None = None,
    max_new_tokens: int = 24,
    data_dir: str = "",
    seed: int = 0,
    batch_size: int = 16,
    progress: Progress | None = None,
    data: ExperimentData | None = None,
) -> ConeStudy:
    """Runs the study. Raises ``ResearchError`` for bad sizes, layer or position."""
    start = time.perf_counter()
    layer, position, reason = _site(lm, k_max, n_train, n_test, n_random, layer, position)
    data = study_data(data, data_dir, n_train, n_test, 0, seed)
    texts = lambda ps: [p.instruction for p in ps]  # noqa: E731
    harmful, harmless = texts(data.test_harmful), texts(data.test_harmless)
    steps = Steps(progress, 2 + 2 * k_max - 1 + n_random * k_max)  # activations, then one run per subspace
    h = resid_pre_at(lm, texts(data.train_harmful), [position], batch_size, progress=steps.tick("activations: harmful"))
    steps.next()
    b = resid_pre_at(
        lm, texts(data.train_harmless), [position], batch_size, progress=steps.tick("activations: harmless")
    )
    steps.next()
    h, b = h[:, :, 0].double(), b[:, :, 0].double()  # [N, L, D]
    if k_max > min(len(h), lm.d_model):
        raise ResearchError(f"k = {k_max} dimensions need at least {k_max} harmful training prompts")
    bases = _bases(h, b, layer, k_max)
    base_logits = next_token_logits(lm, harmless, batch_size=batch_size)

    def measure(basis: Tensor, what: str) -> tuple[list[bool], Tensor]:
        ablation = [SubspaceAblation(basis)]
        answers = generate(lm, harmful, max_new_tokens, ablation, batch_size=batch_size, progress=steps.tick(what))
        kl = _kl(base_logits, next_token_logits(lm, harmless, ablation, batch_size=batch_size))
        steps.next()
        return [is_refusal(a) for a in answers], kl

    baseline = [is_refusal(a) for a in generate(lm, harmful, max_new_tokens, batch_size=batch_size)]
    curves: dict[str, list[ConePoint]] = {}
    shared_first = None
    for name, basis in bases.items():
        points = []
        for k in range(1, k_max + 1):
            if k == 1 and shared_first is not None:  # both families start from the same direction
                flags, kl = shared_first
            else:
                flags, kl = measure(basis[:k], f"{FAMILIES[name]}: k = {k}")
                if k == 1:
                    shared_first = (flags, kl)
            points.append(ConePoint(k, rate_with_ci(flags, seed=seed), bootstrap_ci(kl, seed=seed), flags))
        curves[name] = points
    gen = torch.Generator().manual_seed(seed)
    points = []
    for k in range(1, k_max + 1):
        flags, kls = [], []
        for r in range(n_random):
            f, kl = measure(random_basis(lm.d_model, k, gen), f"random subspace {r + 1}/{n_random}: k = {k}")
            flags += f
            kls.append(kl)
        points.append(ConePoint(k, rate_with_ci(flags, seed=seed), bootstrap_ci(torch.cat(kls), seed=seed), flags))
    curves["random"] = points
    steps.finish()
    return ConeStudy(
        model=lm.name,
        layer=layer,
        position=position,
        layer_reason=reason,
        baseline=rate_with_ci(baseline, seed=seed),
        curves=curves,
        data=data.description,
        seconds=time.perf_counter() - start,
    )


__all__ = ["FAMILIES", "MAX_K", "MAX_PROMPTS", "ConePoint", "ConeStudy", "refusal_cone"]
