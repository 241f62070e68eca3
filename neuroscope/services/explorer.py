"""One prompt through the model: the service behind the Explorer tab and ``neuroscope analyze``.

A submit (``analyze``) runs the answer (greedy generation) and ONE traced forward pass
(``model.stream.capture_stream``): the verdict, the head grid, Δ and the callout come from it. Every
further view (logit lens, attention map, gradient x input, PCA, a head's own logit lens) is computed
when asked, from that cache, for what is shown, and memoised on the ``Analysis`` (``ViewMemo``, bounded
in bytes), which lives as long as the visitor's session. No gradio here: the UI and the CLI both call it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.heads import head_contributions, head_label
from neuroscope.analysis.lens import top_and_bottom
from neuroscope.analysis.metrics import is_clean_refusal, is_refusal, refusal_score
from neuroscope.analysis.pca import pca_trajectory
from neuroscope.config import Settings
from neuroscope.model.chat import clean_instruction, refusal_token_ids
from neuroscope.model.generate import generate
from neuroscope.model.interventions import Intervention
from neuroscope.model.stream import StreamCache, capture_stream, gradient_x_input, layer_attention, lens_topk

# The lens view opens on the last 8 positions (a Llama-3 prompt's 5 template tokens and the instruction's end):
# on a 128k vocabulary each position costs one unembedding per layer, 28 of them together about 0.2 of a forward
# pass at 128 tokens; 8 keep "every view opened" within 1.6 forward passes there.
LENS_SHOWN = 8
VIEW_MEMO_MB = 32  # the views a session keeps computed (attention maps are the large ones: H x S x S halves)


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return getattr(value, "nbytes", 0)


class ViewMemo:
    """Views already computed for one prompt, the least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = VIEW_MEMO_MB * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = compute()
        self._items[key] = (value, _nbytes(value))
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            self._items.popitem(last=False)
        return value

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def keys(self) -> list[Any]:
        """The memoised views' keys, least recently used first."""
        return list(self._items)

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._items.values())


@dataclass
class LensView:
    """The logit lens at some positions: after each layer, the top-k next tokens and their probabilities."""

    positions: list[int]  # 0-based, numbered as in the token strip
    ids: Tensor  # [L, P, k]
    probs: Tensor  # [L, P, k]
    tokens: list[list[list[str]]]  # [L][P][k] decoded

    @property
    def nbytes(self) -> int:
        return _nbytes((self.ids, self.probs))


@dataclass
class Analysis:
    """Everything the Explorer shows for one prompt."""

    prompt: str
    answer: str
    refused: bool  # substring verdict on the answer
    clean_refusal: bool  # refused AND the text is a well-formed refusal
    refusal_probability: float  # first answer token: probability mass on refusal first tokens
    refusal_log_odds: float
    cache: StreamCache
    head_norms: Tensor  # [L, H] contribution norm of each head at the last position
    callout: list[Any] | None = None  # HeadDepartures pushing toward the behaviour (None: no direction)
    suppressor: Any = None  # the HeadDeparture pushing hardest against it, if any
    views: ViewMemo = field(default_factory=ViewMemo, repr=False)

    @property
    def nbytes(self) -> int:
        """What this prompt holds in memory: its cache and the views computed so far."""
        return self.cache.nbytes + self.views.nbytes + _nbytes(self.head_norms)

    # ---- views, each computed on demand and memoised ------------------------------------------
    def lens(self, lm: Any, positions: Sequence[int], k: int) -> LensView:
        """The logit lens after every layer at ``positions`` (0-based), top ``k``."""
        S = self.cache.n_tokens
        pos = sorted({int(p) % S for p in positions})

        def compute() -> LensView:
            probs, ids = lens_topk(lm, self.cache, range(self.cache.n_layers), pos, k)
            unique = ids.unique().tolist()
            lookup = dict(zip(unique, lm.token_strings(unique)))
            tokens = [[[lookup[i] for i in row] for row in layer] for layer in ids.tolist()]
            return LensView(pos, ids, probs, tokens)

        return self.views.get(("lens", tuple(pos), int(k)), compute)

    def attention(self, lm: Any, layer: int) -> Tensor:
        """[H, S, S] float16: one layer's attention probabilities."""
        layer = lm.check_layer(layer)
        return self.views.get(("attention", layer), lambda: layer_attention(lm, self.cache, layer).half())

    def importance(self, lm: Any) -> Tensor:
        """[S] gradient x input for the predicted next token (a backward pass, the first time)."""
        return self.views.get(("importance",), lambda: gradient_x_input(lm, self.cache))

    def pca(self) -> tuple[Tensor, Tensor, int]:
        """``trajectory_pca`` of the cached stream."""
        return self.views.get(("pca",), lambda: trajectory_pca(self.cache))

    def head_lens(self, lm: Any, layer: int, head: int, k: int = 8) -> "HeadLens":
        """A head's own logit lens at the last position (its direct logit attribution)."""
        layer, head = lm.check_layer(layer), lm.check_head(head)
        z_last, resid_last = self.cache.z_tail[:, :, -1], self.cache.layer_output(self.cache.n_layers - 1)[-1]
        return self.views.get(
            ("head_lens", layer, head, k), lambda: head_logit_lens(lm, z_last, resid_last, layer, head, k)
        )

    def top_heads(self, k: int = 10) -> list[dict[str, float | int]]:
        """Heads with the largest contribution norm at the last position, largest first."""
        flat = self.head_norms.flatten()
        k = min(k, flat.numel())
        values, index = flat.topk(k)
        H = self.head_norms.shape[1]
        return [{"layer": int(i) // H, "head": int(i) % H, "norm": float(v)} for v, i in zip(values, index)]

    def lens_at_last_position(self, lm: Any, k: int) -> list[dict[str, Any]]:
        """Per layer, the logit lens top tokens (and probabilities) at the last position (read from a lens
        view already computed there, if any)."""
        last = self.cache.n_tokens - 1
        shown = [key for key in self.views.keys() if key[0] == "lens" and last in key[1] and key[2] >= k]
        view = self.lens(lm, shown[-1][1], shown[-1][2]) if shown else self.lens(lm, [last], k)
        i = view.positions.index(last)
        return [
            {
                "layer": layer,
                "tokens": view.tokens[layer][i][:k],
                "probs": [round(p, 6) for p in view.probs[layer, i, :k].tolist()],
            }
            for layer in range(self.cache.n_layers)
        ]

    def to_json(self, lm: Any = None, top_heads: int = 10, lens_k: int = 5) -> dict[str, Any]:
        """The run as JSON. With ``lm`` (holding its weights) it includes the logit lens at the last position,
        computed on demand; without, the submit's own numbers only."""
        out = {
            "model": self.cache.model_name,
            "prompt": self.prompt,
            "answer": self.answer,
            "refused": self.refused,
            "clean_refusal": self.clean_refusal,
            "refusal_probability": round(self.refusal_probability, 6),
            "refusal_log_odds": round(self.refusal_log_odds, 6),
            "n_tokens": self.cache.n_tokens,
            "predicted_next_token": self.cache.target_token,
            "top_heads": self.top_heads(top_heads) if self.head_norms.abs().sum() > 0 else [],
            "head_callout": None
            if self.callout is None
            else [
                {
                    "layer": d.layer,
                    "head": d.head,
                    "delta_along_direction": round(d.delta, 6),
                    "z": round(d.z, 4),
                    "delta_norm": round(d.delta_norm, 6),
                    "z_norm": round(d.z_norm, 4),
                    "text": d.text(),
                }
                for d in self.callout
            ],
            "head_suppressor": None
            if self.suppressor is None
            else {
                "layer": self.suppressor.layer,
                "head": self.suppressor.head,
                "delta_along_direction": round(self.suppressor.delta, 6),
                "z": round(self.suppressor.z, 4),
                "text": self.suppressor.text(),
            },
        }
        if lm is not None and lm.has_weights:
            out["logit_lens_last_position"] = self.lens_at_last_position(lm, lens_k)
        return out

    def callout_markdown(self) -> str:
        """The verdict's companion: the heads departing most from the harmless baseline on this prompt."""
        if self.callout is None:
            return (
                "*Head callout: no direction yet (compute one in the Direction tab); it compares "
                "each head's output on this prompt with the harmless prompts' distribution.*"
            )
        verdict = "🔴 **Refusal detected**" if self.refused else "🟢 **No refusal**"
        if self.callout:
            top = self.callout[0]
            lead = f"{verdict} · Head **{head_label(top.layer, top.head)}** (Δ = {top.delta:+.2f}, z = {top.z:+.1f})"
        else:
            lead = f"{verdict} · no head pushes toward refusal beyond its harmless baseline"
        lines = [
            lead,
            "",
            "Heads pushing hardest toward refusal vs the harmless baseline (post-instruction positions):",
        ]
        lines += [f"- {d.text()}" for d in self.callout]
        if self.suppressor is not None:
            lines += ["", f"Strongest suppressor: {self.suppressor.text()}"]
        return "\n".join(lines)


def analyze(
    lm: Any,
    prompt: object,
    settings: Settings,
    max_new_tokens: int | None = None,
    interventions: Sequence[Intervention] = (),
    direction: Tensor | None = None,
    head_stats: Any = None,
    callout_k: int = 3,
    chat: bool = True,
) -> Analysis:
    """Answers a prompt and captures the model's internals for it.

    With a ``direction`` [d_model] and its ``head_stats`` (``analysis.heads.HeadStats``, computed once
    per model and direction) it also names the ``callout_k`` heads whose output on this prompt
    push it hardest toward the behaviour compared with the harmless baseline (z-score along the direction), and the strongest suppressor. ``chat=False`` runs the text
    as it is, without the chat template (plain continuation: "The capital of France is").

    Raises:
        PromptError: Empty prompt, control characters, too long, or a bad generation length.
    """
    text = clean_instruction(prompt, settings.max_prompt_tokens)
    from neuroscope.services.generation import check_new_tokens  # one rule for the answer length

    n_new = settings.max_new_tokens if max_new_tokens is None else check_new_tokens(max_new_tokens, settings)
    answer = generate(
        lm, [text], max_new_tokens=n_new, interventions=interventions, max_tokens=settings.max_prompt_tokens, chat=chat
    )[0]
    return submit_pass(lm, text, settings, answer, interventions, direction, head_stats, callout_k, chat)


def submit_pass(
    lm: Any,
    text: str,
    settings: Settings,
    answer: str = "",
    interventions: Sequence[Intervention] = (),
    direction: Tensor | None = None,
    head_stats: Any = None,
    callout_k: int = 3,
    chat: bool = True,
) -> Analysis:
    """A submit without its answer: ONE traced forward pass of a checked prompt (``clean_instruction``), and
    what derives from it (the verdict's score, every head's write at the last position, Δ and the callout)."""
    local = lm.has_weights  # remote (NDIF): no head contributions (they need the weights here)
    cache = capture_stream(
        lm,
        text,
        max_tokens=settings.max_prompt_tokens,
        interventions=interventions,
        chat=chat,
        budget_mb=settings.session_stream_mb,
    )
    log_odds = float(refusal_score(cache.last_logits[None], refusal_token_ids(lm.tokenizer))[0])
    norms = lm.head_writes(cache.z_tail[:, :, -1]).norm(dim=-1) if local else torch.zeros(cache.n_layers, lm.n_heads)
    callout, suppressor = None, None
    if direction is not None and head_stats is not None and local:
        from neuroscope.services import head_callout

        callout, suppressor = head_callout(lm, direction, head_stats, cache.z_tail, callout_k)
    return Analysis(
        prompt=text,
        answer=answer,
        refused=is_refusal(answer),
        clean_refusal=is_clean_refusal(answer),
        refusal_probability=float(torch.sigmoid(torch.tensor(log_odds))),
        refusal_log_odds=log_odds,
        cache=cache,
        head_norms=norms.float(),
        callout=callout,
        suppressor=suppressor,
    )


def head_direction_deltas(lm: Any, cache: StreamCache, direction: Any) -> Tensor:
    """[L, H]: each head's output on this prompt along the direction minus the harmless mean.

    The callout's Δ for every head (post-instruction positions; ``services.DirectionResult``).
    """
    from neuroscope.services import prompt_head_values

    proj, _norm = prompt_head_values(lm, cache.z_tail, direction.direction)
    return (proj - direction.heads.harmless_projection_mean).float()


def trajectory_pca(cache: Any, k: int = 3, skip_first: bool = True) -> tuple[Tensor, Tensor, int]:
    """PCA of the residual trajectory: ``(coords [L+1, S - first, k], explained ratio [k], first)``.

    Fitted on, and returned for, the positions from ``first`` on: with ``skip_first`` the first token
    (BOS, or the first word where there is none) is left out, because its massive activation in real
    models (SmolLM2's "The", Llama's BOS) takes PC1 and squeezes every other token into one point.
    """
    resid = cache.trajectory()
    first = 1 if skip_first and resid.shape[1] > 1 else 0
    coords, ratio = pca_trajectory(resid[:, first:], k=k)
    return coords.float(), ratio.float(), first


@dataclass
class HeadLens:
    """One head's direct write at the last position, read through the unembedding (the per-head logit lens)."""

    layer: int
    head: int
    norm: float  # ‖what the head writes‖ at the last position
    promoted: list[tuple[str, float]]  # tokens whose logit the write raises most, with the logit change
    suppressed: list[tuple[str, float]]  # ... lowers most

    def to_json(self) -> dict[str, Any]:
        return {
            "head": head_label(self.layer, self.head),
            "norm": round(self.norm, 6),
            "promoted": [[t, round(v, 6)] for t, v in self.promoted],
            "suppressed": [[t, round(v, 6)] for t, v in self.suppressed],
        }


def head_logit_lens(lm: Any, z_last: Tensor, resid_last: Tensor, layer: int, head: int, k: int = 8) -> HeadLens:
    """The per-head logit lens at the last position (direct logit attribution, final-norm scale frozen).

    Args:
        z_last: [L, H, D] every head's ``z`` at the last position (``StreamCache.z_tail[:, :, -1]``).
        resid_last: [d] the last layer's output there (``StreamCache.layer_output(L - 1)[-1]``).
    """
    layer, head = lm.check_layer(layer), lm.check_head(head)
    write = head_contributions(z_last[layer], lm.o_proj_weight(layer).float().cpu())[head]  # [d]
    logits = lm.unembed_write(write, resid_last)
    up, down = top_and_bottom(logits, k)
    names = lm.token_strings([i for i, _ in up + down])
    return HeadLens(
        layer=layer,
        head=head,
        norm=float(write.norm()),
        promoted=[(names[i], v) for i, (_, v) in enumerate(up)],
        suppressed=[(names[len(up) + i], v) for i, (_, v) in enumerate(down)],
    )
