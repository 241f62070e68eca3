"""One prompt under interventions: baseline, direction ablated, direction added; streamed or whole."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from torch import Tensor

from neuroscope.behaviours import REFUSAL, get_behaviour
from neuroscope.analysis.metrics import is_clean_refusal, refusal_score
from neuroscope.config import Settings
from neuroscope.model.activations import (
    last_token_projections,
)
from neuroscope.model.chat import PromptError, clean_instruction
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import decode_completion, generate, stream_ids
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, Intervention

from neuroscope.types import Progress
from neuroscope.services.state import DirectionResult
from neuroscope.services.checks import ResearchError, as_float, as_int


MAX_STRENGTH = 50.0  # |strength| beyond this only produces noise; a typo guard, not a science limit


@dataclass
class Generation:
    """One condition's answer to the prompt and how much it leans towards refusal."""

    condition: str
    answer: str
    shows: bool  # the answer shows the behaviour (for refusal: it is a refusal)
    clean_refusal: bool
    log_odds: float  # first-token log-odds of the behaviour (refusal: the same score as the Explorer)
    projections: Tensor  # [L] last-position layer input on the unit direction
    behaviour: str = REFUSAL

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.log_odds)) if self.log_odds > -700 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "answer": self.answer,
            "refused": self.shows,  # the API's key, kept for every behaviour
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
