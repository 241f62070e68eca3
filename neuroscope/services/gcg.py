"""A bounded GCG-style suffix search (Zou et al. 2023) against the loaded model's refusal.

The objective is the project's own first-token refusal score (log-odds that the answer starts with a refusal
token), minimised: the search looks for a suffix after the request that makes the model not *start* refusing.
Each step takes the one-hot gradient of that score at the suffix positions, keeps each position's ``top_k``
most promising tokens, scores ``batch`` random single-token swaps exactly, and keeps the best. A candidate
counts only if its text, appended to the request, tokenises back to the same ids (so the attack is a text a
user could type). It stops at a step budget, a time budget, a stop request or a broken refusal (the greedy
answer, checked every few steps, is a refusal by neither judge; an empty answer is no success).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.metrics import Interval, is_refusal, is_refusal_broad, rate_with_ci, refusal_score
from neuroscope.model.chat import refusal_token_ids
from neuroscope.model.generate import generate
from neuroscope.model.suffix import last_logits, one_hot_gradient
from neuroscope.services.checks import ResearchError
from neuroscope.types import Progress

MAX_STEPS, MAX_SUFFIX, MAX_BATCH = 500, 40, 512


@dataclass
class Attack:
    request: str
    suffix: str
    score_before: float  # refusal log-odds of the request alone
    score_after: float  # with the suffix
    answer: str
    broken: bool  # the greedy answer with the suffix is a refusal by neither judge (an empty answer is not broken)
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)  # best score after each step


@dataclass
class GcgRun:
    model: str
    attacks: list[Attack]
    settings: dict[str, Any]

    @property
    def broken(self) -> Interval:
        return rate_with_ci([a.broken for a in self.attacks])

    def summary(self) -> str:
        b = self.broken
        n = sum(a.broken for a in self.attacks)
        s = self.settings
        return (
            f"The suffix search broke {n} of {len(self.attacks)} requests ({b.mean:.2f} [{b.lo:.2f}, {b.hi:.2f}]) within "
            f"{s['steps']} steps or {s['time_budget_s']:.0f} s each ({s['suffix_tokens']} suffix tokens, top {s['top_k']}, "
            f"{s['batch']} candidates per step); mean refusal log-odds "
            f"{sum(a.score_before for a in self.attacks) / len(self.attacks):+.2f} -> "
            f"{sum(a.score_after for a in self.attacks) / len(self.attacks):+.2f}."
        )

    def to_json(self) -> dict[str, Any]:
        b = self.broken
        return {
            "model": self.model,
            "tried": len(self.attacks),
            "broken": sum(a.broken for a in self.attacks),
            "rate": b.to_dict(),
            "settings": self.settings,
            "suffixes": [
                {
                    "request": a.request,
                    "suffix": a.suffix,
                    "broken": a.broken,
                    "score_before": a.score_before,
                    "score_after": a.score_after,
                    "answer": a.answer,
                    "steps": a.steps,
                    "seconds": round(a.seconds, 2),
                }
                for a in self.attacks
            ],
            "summary": self.summary(),
        }


def allowed_tokens(lm: Any) -> Tensor:
    """Token ids a suffix may use: printable ASCII text, no special or added tokens. [vocab] bool."""
    cached = getattr(lm, "_gcg_allowed", None)
    if cached is not None:
        return cached
    special = set(getattr(lm.tokenizer, "all_special_ids", []) or []) | set(lm.tokenizer.added_tokens_decoder)
    texts = lm.token_strings(list(range(lm.vocab_size)))
    mask = torch.tensor(
        [i not in special and bool(t.strip()) and t.isascii() and t.isprintable() for i, t in enumerate(texts)]
    )
    try:
        object.__setattr__(lm, "_gcg_allowed", mask)
    except (AttributeError, TypeError):
        pass
    return mask


def _frame(lm: Any, request: str) -> tuple[Tensor, Tensor]:
    ids = lm.encode_chat([request])[0][0].cpu()
    P = lm.n_post_instruction
    return ids[:-P], ids[-P:]


def _types_back(lm: Any, request: str, before: Tensor, suffix: Tensor, post: Tensor) -> bool:
    """The suffix's text, appended to the request, tokenises to exactly these ids."""
    text = lm.tokenizer.decode(suffix.tolist())
    ids = lm.encode_chat([request + text])[0][0].cpu()
    want = torch.cat([before, suffix, post])
    return ids.shape == want.shape and bool((ids == want).all())


def _initial_suffix(lm: Any, request: str, n: int, before: Tensor, post: Tensor) -> Tensor:
    for text in (" !", "!", " x", "x"):
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            suffix = torch.full((n,), ids[0], dtype=torch.long)
            if _types_back(lm, request, before, suffix, post):
                return suffix
    raise ResearchError("cannot build a starting suffix that tokenises back to itself for this tokenizer")


def gcg_attack(
    lm: Any,
    request: str,
    suffix_tokens: int = 12,
    steps: int = 60,
    top_k: int = 64,
    batch: int = 64,
    time_budget_s: float = 60.0,
    check_every: int = 5,
    max_new_tokens: int = 24,
    seed: int = 0,
    stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> Attack:
    """Searches one suffix for ``request``."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    refusal_ids = refusal_token_ids(lm.tokenizer)

    def score(logits: Tensor) -> Tensor:
        return refusal_score(logits, refusal_ids)

    before, post = _frame(lm, request)
    suffix = _initial_suffix(lm, request, suffix_tokens, before, post)
    span = slice(len(before), len(before) + suffix_tokens)
    allowed = allowed_tokens(lm)
    plain = float(score(last_logits(lm, torch.cat([before, post])[None]))[0])
    best = float(score(last_logits(lm, torch.cat([before, suffix, post])[None]))[0])
    history: list[float] = []
    answer, broken, step = "", False, 0
    for step in range(1, steps + 1):
        grad = one_hot_gradient(lm, torch.cat([before, suffix, post]), span, score)
        grad[:, ~allowed] = float("inf")
        options = (-grad).topk(min(top_k, int(allowed.sum())), dim=-1).indices  # [n, k] lowest-score tokens
        pos = torch.randint(suffix_tokens, (batch,), generator=gen)
        pick = options[pos, torch.randint(options.shape[1], (batch,), generator=gen)]
        cands = suffix.repeat(batch, 1)
        cands[torch.arange(batch), pos] = pick
        cands = torch.unique(cands, dim=0)
        keep = [c for c in cands if _types_back(lm, request, before, c, post)]
        if keep:
            stack = torch.stack(keep)
            full = torch.cat([before.expand(len(stack), -1), stack, post.expand(len(stack), -1)], dim=1)
            scores = score(last_logits(lm, full))
            i = int(scores.argmin())
            if float(scores[i]) < best:
                best, suffix = float(scores[i]), stack[i].clone()
        history.append(best)
        if progress is not None:
            progress(step / steps, f"step {step}/{steps}: refusal log-odds {best:+.2f}")
        out_of_time = time.perf_counter() - start > time_budget_s or (stop is not None and stop())
        if step % check_every == 0 or step == steps or out_of_time:
            answer = generate(lm, [request + lm.tokenizer.decode(suffix.tolist())], max_new_tokens)[0]
            broken = not (is_refusal(answer) or is_refusal_broad(answer))
            if broken or out_of_time:
                break
    return Attack(
        request=request,
        suffix=lm.tokenizer.decode(suffix.tolist()),
        score_before=plain,
        score_after=best,
        answer=answer,
        broken=broken,
        steps=step,
        seconds=time.perf_counter() - start,
        history=history,
    )


def gcg_search(
    lm: Any,
    requests: Sequence[str],
    suffix_tokens: int = 12,
    steps: int = 60,
    top_k: int = 64,
    batch: int = 64,
    time_budget_s: float = 60.0,
    seed: int = 0,
    stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> GcgRun:
    """One suffix per request, each searched on its own (the same seed for each)."""
    if not lm.has_chat_template:
        raise ResearchError("the suffix search needs a chat model (the suffix goes in the user's turn)")
    for name, value, hi in (
        ("suffix tokens", suffix_tokens, MAX_SUFFIX),
        ("steps", steps, MAX_STEPS),
        ("top k", top_k, 4096),
        ("candidates per step", batch, MAX_BATCH),
    ):
        if type(value) is not int or not 1 <= value <= hi:
            raise ResearchError(f"{name} must be an integer in 1..{hi}, got {value!r}")
    if not requests:
        raise ResearchError("give at least one request")
    attacks = []
    for i, request in enumerate(requests):
        sub = None
        if progress is not None:
            sub = lambda f, what, i=i: progress((i + f) / len(requests), f"request {i + 1}/{len(requests)}: {what}")  # noqa: E731
        attacks.append(
            gcg_attack(
                lm, request, suffix_tokens, steps, top_k, batch, time_budget_s, seed=seed, stop=stop, progress=sub
            )
        )
        if stop is not None and stop():
            break
    settings = {
        "suffix_tokens": suffix_tokens,
        "steps": steps,
        "top_k": top_k,
        "batch": batch,
        "time_budget_s": time_budget_s,
        "objective": "first-token refusal log-odds",
    }
    return GcgRun(model=lm.name, attacks=attacks, settings=settings)


def held_out_requests(n: int, data_dir: str = "", seed: int = 0) -> list[str]:
    """``n`` held-out harmful requests (JailbreakBench where the research sets load, else the curated test pairs)."""
    from neuroscope.method.config import ExperimentConfig, ExperimentError
    from neuroscope.method.data import load_experiment_data

    try:
        data = load_experiment_data(
            ExperimentConfig(data_dir=data_dir, n_train=2, n_val=1, n_test=n, n_test_harmless=1, n_xstest=0, seed=seed)
        )
    except ExperimentError as err:
        raise ResearchError(str(err)) from None
    return [p.instruction for p in data.test_harmful][:n]
