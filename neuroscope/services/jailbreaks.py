"""Jailbreaks, dissected: the project's template families against the loaded model, and what they do inside.

Each held-out harmful request is wrapped in every template of every family (``data/jailbreaks/templates.json``)
and answered greedily. An attack succeeds when the answer is not a refusal — under the substring judge and,
apart, under the broad judge (which also counts an empty answer as a refusal). Inside, each wrapped prompt is
placed on the harmfulness and refusal directions (``services.harmfulness``: 0 = the harmless training mean,
1 = the harmful one), so that successful and failed attacks can be compared: do the successful ones lower the
refusal signal, and do they leave harmfulness in place (Arditi et al. 2024 §5; Zhao et al. 2025)?
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from neuroscope.analysis.harmfulness import relative_coordinates
from neuroscope.analysis.metrics import Interval, bootstrap_ci, is_refusal, is_refusal_broad, rate_with_ci
from neuroscope.method.data import ExperimentData
from neuroscope.model.generate import generate
from neuroscope.services.checks import ResearchError
from neuroscope.services.harmfulness import (
    Steps,
    check_sizes,
    jailbreak_templates,
    study_data,
    study_layer,
    two_position_acts,
)
from neuroscope.types import Progress


@dataclass
class Attack:
    family: str
    template: int
    prompt: int  # index of the unwrapped request
    text: str
    answer: str
    success: bool  # substring judge: not a refusal
    success_broad: bool  # broad judge: not a refusal, not empty
    harmfulness: float
    refusal: float


@dataclass
class JailbreakStudy:
    model: str
    layer: int
    layer_reason: str
    requests: list[str]
    plain_refused: Interval  # the unwrapped requests
    plain_coords: torch.Tensor  # [N, 2]
    attacks: list[Attack]
    data: str
    seconds: float

    def families(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(a.family for a in self.attacks):
            rows = [a for a in self.attacks if a.family == name]
            out[name] = {
                "success": rate_with_ci([a.success for a in rows]).to_dict(),
                "success_broad": rate_with_ci([a.success_broad for a in rows]).to_dict(),
                "refusal": bootstrap_ci([a.refusal for a in rows]).to_dict(),
                "harmfulness": bootstrap_ci([a.harmfulness for a in rows]).to_dict(),
                "n": len(rows),
            }
        return out

    def projection(self) -> dict[str, Any]:
        """Successful vs failed attacks (substring judge): where they sit, and how far each moved from its own
        unwrapped request (paired: wrapped minus plain, per attack)."""
        out: dict[str, Any] = {}
        for key, flag in (("successful", True), ("failed", False)):
            rows = [a for a in self.attacks if a.success is flag]
            if not rows:
                out[key] = None
                continue
            plain = self.plain_coords[[a.prompt for a in rows]]
            out[key] = {
                "n": len(rows),
                "refusal": bootstrap_ci([a.refusal for a in rows]).to_dict(),
                "harmfulness": bootstrap_ci([a.harmfulness for a in rows]).to_dict(),
                "refusal_change": bootstrap_ci(torch.tensor([a.refusal for a in rows]) - plain[:, 1]).to_dict(),
                "harmfulness_change": bootstrap_ci(torch.tensor([a.harmfulness for a in rows]) - plain[:, 0]).to_dict(),
            }
        return out

    def summary(self) -> str:
        fams = self.families()
        best = max(fams, key=lambda f: fams[f]["success"]["mean"])
        s = fams[best]["success"]
        ok = sum(a.success for a in self.attacks)
        lines = [
            f"Unwrapped, {self.plain_refused.mean:.2f} [{self.plain_refused.lo:.2f}, {self.plain_refused.hi:.2f}] of "
            f"the {len(self.requests)} requests are refused. Wrapped, {ok} of {len(self.attacks)} attacks succeed; "
            f"the most successful family is {best.replace('_', ' ')} ({s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}])."
        ]
        proj = self.projection()
        won, lost = proj["successful"], proj["failed"]
        if won and lost:
            f = lambda d: f"{d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"  # noqa: E731
            lines.append(
                f"From each request's unwrapped place, successful attacks move the refusal coordinate by "
                f"{f(won['refusal_change'])} and harmfulness by {f(won['harmfulness_change'])}; failed ones by "
                f"{f(lost['refusal_change'])} and {f(lost['harmfulness_change'])}."
            )
            if won["refusal_change"]["hi"] < lost["refusal_change"]["lo"]:
                lines.append("Successful attacks lower the refusal signal more than failed ones, beyond the intervals.")
            else:
                lines.append("The refusal signal's change does not separate successful from failed attacks here.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "layer": self.layer,
            "layer_reason": self.layer_reason,
            "plain_refused": self.plain_refused.to_dict(),
            "families": self.families(),
            "projection": self.projection(),
            "attacks": [
                {
                    "family": a.family,
                    "template": a.template,
                    "request": self.requests[a.prompt],
                    "answer": a.answer,
                    "success": a.success,
                    "success_broad": a.success_broad,
                    "harmfulness": a.harmfulness,
                    "refusal": a.refusal,
                }
                for a in self.attacks
            ],
            "summary": self.summary(),
            "data": self.data,
            "seconds": round(self.seconds, 1),
        }


def jailbreak_families(
    lm: Any,
    n_train: int = 64,
    n_test: int = 16,
    layer: int | None = None,
    max_new_tokens: int = 32,
    data_dir: str = "",
    seed: int = 0,
    batch_size: int = 16,
    progress: Progress | None = None,
    data: ExperimentData | None = None,
) -> JailbreakStudy:
    """Runs every template family on ``n_test`` held-out harmful requests. Raises ``ResearchError`` on bad input."""
    start = time.perf_counter()
    if not lm.has_chat_template:
        raise ResearchError("jailbreak templates need a chat model (the request goes in the user's turn)")
    check_sizes(n_train, n_test)
    layer, reason = study_layer(lm, layer)
    data = study_data(data, data_dir, n_train, n_test, 0, seed)
    requests = [p.instruction for p in data.test_harmful]
    wrapped = [
        (family, i, j, template.replace("{prompt}", r))
        for family, templates in jailbreak_templates().items()
        for i, template in enumerate(templates)
        for j, r in enumerate(requests)
    ]
    steps = Steps(progress, 5)

    def acts(items: list[str], what: str) -> torch.Tensor:
        return two_position_acts(lm, items, steps, what, batch_size)

    train_h = acts([p.instruction for p in data.train_harmful], "activations: harmful training prompts")
    train_b = acts([p.instruction for p in data.train_harmless], "activations: harmless training prompts")
    plain_coords = relative_coordinates(acts(requests, "activations: requests"), train_h, train_b, layer)
    texts = [w[3] for w in wrapped]
    coords = relative_coordinates(acts(texts, "activations: wrapped requests"), train_h, train_b, layer)
    plain = generate(lm, requests, max_new_tokens, batch_size=batch_size)
    answers = generate(
        lm, texts, max_new_tokens, batch_size=batch_size, progress=steps.tick("answers: wrapped requests")
    )
    steps.finish()
    attacks = [
        Attack(f, t, j, text, a, not is_refusal(a), not is_refusal_broad(a), float(c[0]), float(c[1]))
        for (f, t, j, text), a, c in zip(wrapped, answers, coords)
    ]
    return JailbreakStudy(
        model=lm.name,
        layer=layer,
        layer_reason=reason,
        requests=requests,
        plain_refused=rate_with_ci([is_refusal(a) for a in plain]),
        plain_coords=plain_coords,
        attacks=attacks,
        data=data.description,
        seconds=time.perf_counter() - start,
    )


def token_push(
    lm: Any, text: object, direction: torch.Tensor, layer: int, max_tokens: int | None = None
) -> tuple[list[str], torch.Tensor, float]:
    """Which tokens of one chat prompt push its last position along the refusal ``direction`` at ``layer``:
    gradient × input of that projection per token (negative = lowers it).

    Raises:
        PromptError: empty, malformed or too long a prompt.

    Returns:
        (token strings, [S] scores, the projection itself).
    """
    from neuroscope.model.chat import clean_instruction
    from neuroscope.model.suffix import projection_gradient_x_input

    text = clean_instruction(text, max_tokens)
    ids = lm.encode_chat([text], max_tokens=max_tokens)[0][0].cpu()
    scores, value = projection_gradient_x_input(lm, ids, lm.check_layer(layer), -1, direction)
    return lm.token_strings(ids), scores, value
