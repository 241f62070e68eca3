"""Induction heads: the service behind the Induction heads tab and ``neuroscope induction``.

A batch of random token sequences, each repeated twice, goes through the model once with every
attention map and head output recorded. Per head it scores the induction pattern (attention from a
repeated token to the token after its earlier occurrence), the duplicate-token and previous-token
patterns, and copying (the head's direct effect on the correct next token). The in-context loss drop
on the repeated half shows the behaviour; mean-ablating the top induction heads, against random
heads of the same count, tests that they cause it. No gradio here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from neuroscope.analysis import induction as ind
from neuroscope.analysis.metrics import Interval, bootstrap_ci
from neuroscope.errors import UserError
from neuroscope.model.forward import token_run
from neuroscope.model.interventions import HeadAblation
from neuroscope.analysis.heads import head_label

MAX_SEQS, MAX_HALF = 64, 256
INDUCTION_FOUND = 0.3  # a head scoring below this on every sequence is not called an induction head


class InductionError(UserError):
    """Settings of the induction probe that cannot be run; the message says which."""


@dataclass
class InductionResult:
    """Scores [L, H] per head, the loss curve, and the ablation test. Tensors are CPU float32."""

    model_name: str
    n_seqs: int
    half: int
    prefix_len: int
    seed: int
    tokens: list[str]  # sequence 0, decoded one token at a time
    induction: Tensor
    duplicate: Tensor
    previous: Tensor
    copying: Tensor
    attention: Tensor  # [L, H, S, S] of sequence 0 (the stripe of one head on click)
    loss_by_position: Tensor  # [S - 1] mean over sequences
    first_half: Interval  # mean loss on the first copy (tokens it cannot have seen)
    second_half: Interval  # ... and on the repeated copy
    loss_drop: Interval  # first - second, per sequence
    top: list[tuple[int, int]]
    ablated_increase: Interval  # second-half loss increase with the top heads mean-ablated, per sequence
    random_increases: list[float] = field(default_factory=list)  # the same for each random head set
    random_increase: Interval | None = None  # over the random sets

    def table(self) -> list[dict[str, Any]]:
        """The top heads with all four scores, highest induction score first."""
        return [
            {
                "layer": l,
                "head": h,
                "induction": round(float(self.induction[l, h]), 4),
                "duplicate_token": round(float(self.duplicate[l, h]), 4),
                "previous_token": round(float(self.previous[l, h]), 4),
                "copying": round(float(self.copying[l, h]), 4),
            }
            for l, h in self.top
        ]

    def to_json(self) -> dict[str, Any]:
        def iv(x: Interval | None) -> dict[str, float] | None:
            return (
                None if x is None else {"mean": round(x.mean, 4), "lo": round(x.lo, 4), "hi": round(x.hi, 4), "n": x.n}
            )

        return {
            "model": self.model_name,
            "sequences": self.n_seqs,
            "repeated_length": self.half,
            "seed": self.seed,
            "top_heads": self.table(),
            "loss_first_copy": iv(self.first_half),
            "loss_second_copy": iv(self.second_half),
            "loss_drop": iv(self.loss_drop),
            "ablation": {
                "heads": [head_label(l, h) for l, h in self.top],
                "top_heads_loss_increase": iv(self.ablated_increase),
                "random_heads_loss_increase": iv(self.random_increase),
                "random_sets": [round(x, 4) for x in self.random_increases],
            },
        }

    def summary(self) -> str:
        """One paragraph of what was observed."""
        a, r = self.ablated_increase, self.random_increase
        text = (
            f"On {self.n_seqs} random sequences of {self.half} tokens repeated once, the loss falls from "
            f"{self.first_half.mean:.2f} nats on the first copy to {self.second_half.mean:.2f} on the repeat "
            f"(drop {self.loss_drop.mean:.2f} [{self.loss_drop.lo:.2f}, {self.loss_drop.hi:.2f}]). "
        )
        best = float(self.induction[self.top[0]])
        if best < INDUCTION_FOUND:
            text += (
                f"**No induction heads found**: the best head, {head_label(*self.top[0])}, scores {best:.2f} "
                f"(below {INDUCTION_FOUND}; 1 = all attention on the token after the earlier occurrence). "
            )
        else:
            text += (
                f"Top induction head: {head_label(*self.top[0])} (score {best:.2f}; 1 = all attention on the token "
                "after the earlier occurrence). "
            )
        verb = "raises" if a.lo > 0 else "lowers" if a.hi < 0 else "changes"
        text += (
            f"Mean-ablating the top {len(self.top)} {verb} the repeat's loss by {a.mean:+.2f} "
            f"[{a.lo:+.2f}, {a.hi:+.2f}] nats"
        )
        if r is not None:
            text += (
                f"; {len(self.random_increases)} random sets of {len(self.top)} heads "
                f"{'raise' if r.lo > 0 else 'lower' if r.hi < 0 else 'change'} it by "
                f"{r.mean:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]"
            )
        return text + "."


def probe_tokens(lm: Any, n_seqs: int, half: int, seed: int) -> tuple[Tensor, int]:
    """Repeated random sequences of ordinary (non-special) tokens, after the BOS when the model has one."""
    special = set(lm.tokenizer.all_special_ids)
    allowed = torch.tensor([i for i in range(lm.vocab_size) if i not in special])
    bos = lm.tokenizer.bos_token_id
    prefix = [] if bos is None else [int(bos)]
    gen = torch.Generator().manual_seed(seed)
    return ind.repeated_random_tokens(n_seqs, half, allowed, prefix, gen), len(prefix)


def check_settings(n_seqs: object, half: object, k: object, n_random: object, n_heads_total: int) -> None:
    for name, value, lo, hi in (
        ("sequences", n_seqs, 1, MAX_SEQS),
        ("repeated length", half, 2, MAX_HALF),
        ("heads to ablate", k, 1, n_heads_total),
        ("random head sets", n_random, 0, 64),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InductionError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


def find_induction_heads(
    lm: Any, n_seqs: int = 8, half: int = 48, k: int = 5, n_random: int = 8, seed: int = 0, progress=None
) -> InductionResult:
    """Scores every head on repeated random tokens and tests the top ``k`` by mean ablation.

    The ablation means are each head's mean output over a second, independent batch of repeated
    sequences (mean ablation, not zero). Random sets are ``k`` heads drawn among the others.

    Raises:
        InductionError: Settings out of range.
    """
    L, H = lm.n_layers, lm.n_heads
    check_settings(n_seqs, half, k, n_random, L * H)
    lm.require_weights("copying scores (W_O and the unembedding)")
    step = _stepper(progress, 3 + n_random)  # each step names the work that follows it
    if progress is not None:
        progress(0.0, desc=f"running {n_seqs} repeated sequences (attention and head outputs)")
    ids, p = probe_tokens(lm, n_seqs, half, seed)
    run = token_run(lm, ids, attention=True, z=True)
    step("scored; mean head outputs on a second batch (the ablation values)")
    att, z = run["attention"], run["z"]  # [L, B, H, S, S], [L, B, S, H, D]
    induction = ind.induction_scores(att, p, half)
    queries = ind.second_half_queries(p, half)
    targets = ids[:, queries + 1 - half]  # the token after the earlier occurrence == the next token
    copying = _copying(lm, z[:, :, queries], targets)
    first, second = ind.split_halves(run["loss"], p, half)
    reference, _ = probe_tokens(lm, n_seqs, half, seed + 1)
    means = token_run(lm, reference, z=True)["z"].mean((1, 2))  # [L, H, D]
    step(f"mean-ablating the top {k} heads")
    top = ind.top_heads(induction, k)

    def increase(heads: list[tuple[int, int]]) -> Tensor:
        loss = token_run(lm, ids, interventions=[HeadAblation(heads=tuple(heads), means=means)])["loss"]
        return ind.split_halves(loss, p, half)[1] - second

    ablated = increase(top)
    step(f"mean-ablating {n_random} random sets of {k} heads")
    gen = torch.Generator().manual_seed(seed + 2)
    others = [(l, h) for l in range(L) for h in range(H) if (l, h) not in top]
    random_sets = []
    for _ in range(n_random if len(others) >= k else 0):
        pick = torch.randperm(len(others), generator=gen)[:k]
        random_sets.append(float(increase([others[i] for i in pick]).mean()))
        step(f"random set {len(random_sets)} of {n_random} done")
    return InductionResult(
        model_name=lm.name,
        n_seqs=n_seqs,
        half=half,
        prefix_len=p,
        seed=seed,
        tokens=lm.token_strings(ids[0]),
        induction=induction,
        duplicate=ind.duplicate_token_scores(att, p, half),
        previous=ind.previous_token_scores(att, p),
        copying=copying,
        attention=att[:, 0].clone(),  # a copy: a view would keep the whole batch [L, B, H, S, S] alive in the session
        loss_by_position=run["loss"].mean(0),
        first_half=bootstrap_ci(first),
        second_half=bootstrap_ci(second),
        loss_drop=bootstrap_ci(first - second),
        top=top,
        ablated_increase=bootstrap_ci(ablated),
        random_increases=random_sets,
        random_increase=bootstrap_ci(random_sets) if random_sets else None,
    )


def _copying(lm: Any, z: Tensor, targets: Tensor) -> Tensor:
    """[L, H] copying scores from z [L, B, Q, H, D] at the queries and the correct next tokens [B, Q]."""
    unembed = lm.unembedding_matrix()  # [V, d], final norm weight folded in
    target_rows, mean_row = unembed[targets], unembed.mean(0)
    scores = []
    for layer in range(z.shape[0]):
        W = lm.o_proj_weight(layer).float().cpu()  # [d, H * D]
        Bz, Q, H, D = z[layer].shape
        contrib = torch.einsum("bqhe,dhe->hbqd", z[layer], W.reshape(W.shape[0], H, D))
        scores.append(ind.copying_scores(contrib, target_rows, mean_row))
    return torch.stack(scores)


def _stepper(progress, total: int):
    done = [0]

    def step(what: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total) / total, desc=what)

    return step
