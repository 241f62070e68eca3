"""Step 2: candidate refusal directions, one per (layer, post-instruction position)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor

from neuroscope.analysis.directions import difference_of_means
from neuroscope.model.activations import mean_resid_pre
from neuroscope.types import Progress


@dataclass
class Candidates:
    """Mean activations and their differences.

    Attributes:
        harmful_mean, harmless_mean: [n_layers, n_post, d_model] float64 mean layer inputs.
        directions: [n_layers, n_post, d_model] float64, harmful - harmless (unnormalised).
        position_labels: n_post labels, e.g. "-5: <|eot_id|>".
    """

    harmful_mean: Tensor
    harmless_mean: Tensor
    directions: Tensor
    position_labels: list[str]

    @property
    def n_layers(self) -> int:
        return self.directions.shape[0]

    @property
    def n_positions(self) -> int:
        return self.directions.shape[1]

    def direction(self, layer: int, pos_index: int) -> Tensor:
        """[d_model] float32 candidate at a layer and a position column (0..n_post-1)."""
        return self.directions[layer, pos_index].float()


def position_labels(lm: Any) -> list[str]:
    ids = lm.post_instruction_ids
    n = len(ids)
    return [f"{i - n}: {tok!r}" for i, tok in enumerate(lm.token_strings(ids))]


def compute_candidates(
    lm: Any, harmful: Sequence[str], harmless: Sequence[str], batch_size: int = 16, progress: Progress | None = None
) -> Candidates:
    """Difference of mean residuals (float64, batched) at every layer and post-instruction token.

    Args:
        lm: A ``LoadedModel``.
        harmful, harmless: Training instructions.
        batch_size: Prompts per forward pass.
        progress: ``progress(fraction, message)``.

    Returns:
        Candidates on the CPU.
    """

    def tick(part: float, label: str):
        return None if progress is None else (lambda done, total: progress(part + 0.5 * done / total, label))

    mu_h = mean_resid_pre(lm, list(harmful), batch_size=batch_size, progress=tick(0.0, "mean activations: harmful"))
    mu_b = mean_resid_pre(lm, list(harmless), batch_size=batch_size, progress=tick(0.5, "mean activations: harmless"))
    return Candidates(mu_h, mu_b, difference_of_means(mu_h, mu_b), position_labels(lm))
