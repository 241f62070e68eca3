"""One traced forward pass -> a ``RunCache`` of CPU float32 tensors that every view reads.

Stored per prompt (padding stripped): residual stream before and after every layer, each layer's
attention output, every head's ``z`` (the per-head input of ``o_proj``; a head's contribution is
``z_h @ W_O[:, h*D:(h+1)*D].T``, projected on demand — never ``L*H*S*d_model`` floats), attention
probabilities for the requested layers, the logit lens top-k per layer and position (computed on
the model's device one layer at a time — never ``L*S*vocab`` floats), the last position's logits,
and gradient x input token importance for a target token.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.model.interventions import Intervention, chains, validate_all, walk_layers
from neuroscope.model.stream import unembed_topk


@dataclass
class RunCache:
    """Everything one forward pass shows about one prompt. All tensors are CPU float32 (ids long).

    Shapes: ``S`` real tokens (chat template included), ``L`` layers, ``H`` heads, ``D`` head
    dim, ``d`` model dim, ``k`` lens top-k, ``V`` vocabulary.
    """

    model_name: str
    tokens: list[str]  # [S] each token decoded on its own
    input_ids: Tensor  # [S]
    resid_pre: Tensor  # [L, S, d] input of each layer
    resid_post: Tensor  # [L, S, d] output of each layer (resid_post[l] == resid_pre[l+1])
    attn_out: Tensor  # [L, S, d] o_proj output (= sum over heads of head contributions)
    z: Tensor  # [L, H, S, D] per-head outputs before W_O
    attention: dict[int, Tensor]  # layer -> [H, S, S] attention probabilities (rows sum to 1)
    lens_ids: Tensor  # [L, S_lens, k] logit-lens top-k token ids after each layer, at the last S_lens positions
    lens_probs: Tensor  # [L, S_lens, k] their probabilities
    lens_tokens: list[list[list[str]]]  # [L][S_lens][k] decoded
    last_logits: Tensor  # [V] final logits at the last position
    target_id: int  # the token whose logit the importance scores explain
    target_token: str
    importance: Tensor | None  # [S] gradient x input w.r.t. the input embeddings (None if not asked)
    n_post_instruction: int = 0
    interventions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def lens_start(self) -> int:
        """The first position the logit lens covers (it covers the last ``S - lens_start``)."""
        return self.n_tokens - self.lens_ids.shape[1]

    def __post_init__(self) -> None:
        L, S, d = self.resid_pre.shape
        if self.resid_post.shape != (L, S, d) or self.attn_out.shape != (L, S, d):
            raise ValueError("residual/attention caches disagree in shape")
        if self.z.shape[0] != L or self.z.shape[2] != S:
            raise ValueError(f"z has shape {tuple(self.z.shape)}, expected [{L}, H, {S}, D]")
        if len(self.tokens) != S or self.input_ids.shape != (S,):
            raise ValueError("tokens and input ids must have one entry per position")
        # A non-finite value anywhere upstream reaches the last layer's output at its position (every
        # write is added to the residual stream), so checking that and the logits covers the cache
        # at a fraction of the cost of scanning every tensor.
        for name, value in (
            ("the last layer's output", self.resid_post[-1]),
            ("lens_probs", self.lens_probs),
            ("last_logits", self.last_logits),
        ):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or infinite values")

    @property
    def n_layers(self) -> int:
        return self.resid_pre.shape[0]

    @property
    def n_heads(self) -> int:
        return self.z.shape[1]

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def trajectory(self) -> Tensor:
        """Residual stream at every depth: [L + 1, S, d] (embeddings, then after each layer)."""
        return torch.cat([self.resid_pre[:1], self.resid_post], dim=0)


def _resolve_attention_layers(
    lm: Any, attention_layers: str | Sequence[int] | None, seq_len: int, batch: int, budget_mb: int
) -> list[int]:
    if attention_layers is None:
        return []
    if attention_layers == "all":
        per_layer = batch * lm.n_heads * seq_len * seq_len * 4
        fit = max(1, (budget_mb * 2**20) // max(per_layer, 1))
        return list(range(min(lm.n_layers, fit)))
    return [lm.check_layer(int(layer)) for layer in attention_layers]


def capture(
    lm: Any,
    instructions: Sequence[str],
    *,
    attention_layers: str | Sequence[int] | None = "all",
    top_k: int = 5,
    target_ids: Sequence[int] | None = None,
    gradients: bool = True,
    interventions: Sequence[Intervention] = (),
    max_tokens: int | None = None,
    attention_budget_mb: int = 256,
    chat: bool = True,
    lens_positions: int | None = None,
) -> list[RunCache]:
    """Runs ONE traced forward pass over a (left-padded) batch and returns one cache per prompt.

    Args:
        lm: A ``LoadedModel``.
        instructions: User messages (the chat template is applied here).
        attention_layers: ``"all"`` (as many layers as fit ``attention_budget_mb``, from layer 0),
            explicit layer indices, or ``None``.
        top_k: Logit-lens tokens kept per layer and position; 0 skips the lens (one unembedding
            per layer saved; the lens fields are then [L, S, 0]).
        target_ids: Per prompt, the token whose logit the importance explains; default: the
            model's top next-token prediction.
        gradients: Compute gradient x input importance (one backward pass in the same trace).
        interventions: Applied during the pass; the cache shows the intervened run.
        max_tokens: Reject prompts longer than this (``PromptError``).
        chat: Apply the chat template (``False``: the texts are tokenised as they are).
        lens_positions: Decode the lens only at the last this many positions (``None``: all). Most
            of the capture's cost on a large vocabulary is the lens; the Explorer shows the last 16.

    Returns:
        ``len(instructions)`` caches, padding stripped.
    """
    validate_all(lm, interventions)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0, got {top_k!r}")
    ids, mask = lm.encode_chat(list(instructions), max_tokens=max_tokens, chat=chat)
    B, S = ids.shape
    n_lens = S if lens_positions is None else _lens_width(S, lens_positions)
    att_layers = _resolve_attention_layers(lm, attention_layers, S, B, attention_budget_mb)
    sink: dict[str, list] = defaultdict(list)
    saved: dict[str, Any] = {}
    record = frozenset({"resid_pre", "z", "attn_out", "resid_post"})
    tr = lm.tracing
    chain = chains(interventions, lm.n_layers)  # layer l's input is layer l-1's output: one buffer for both
    with lm.lock, torch.set_grad_enabled(gradients):
        with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, **lm.run_options()):
            emb = tr.access.embed(tr.nn).output
            if gradients:
                emb.requires_grad_(True)
            walk_layers(tr, interventions, record=record, attention_layers=att_layers, sink=sink, chain=chain)
            logits = tr.access.lm_head(tr.nn).output
            last = logits[:, -1].detach().float()
            targets = last.argmax(-1) if target_ids is None else torch.as_tensor(list(target_ids), device=last.device)
            saved["last"], saved["targets"] = last, targets
            if top_k:  # the last layer's lens is the model's own output: no second unembedding
                saved["final"] = logits[:, -n_lens:].detach()
            if gradients:
                chosen = logits[torch.arange(B, device=logits.device), -1, targets].sum()
                with chosen.backward():
                    saved["grad"] = emb.grad.detach()
                saved["emb"] = emb.detach()
            nnsight.save(saved)
            nnsight.save(sink)
        lens_probs, lens_ids = _logit_lens(lm, sink["resid_post"], top_k, lens_positions, saved.get("final"))
    importance = (saved["grad"].float() * saved["emb"].float()).sum(-1) if gradients else None
    n_post = lm.n_post_instruction if chat and lm.has_chat_template else 1
    stacked = _stack_sites(sink, bool(chain))
    return [
        _row_cache(
            lm, r, ids, mask, stacked, sink, att_layers, lens_probs, lens_ids, saved, importance, interventions, n_post
        )
        for r in range(B)
    ]


def _stack_sites(sink: dict[str, list], chained: bool) -> dict[str, Tensor]:
    """One stack per site for the whole batch ([L, B, S, ...]); each row's cache is a view into it. With a
    chain of rewrites, layer l's input is layer l-1's output: one [L + 1, B, S, d] trajectory (the embeddings,
    then every layer's output) whose slices are both."""
    stacked = {name: torch.stack(sink[name]).float().cpu() for name in ("attn_out", "z")}
    if chained:
        trajectory = torch.stack(sink["resid_pre"][:1] + sink["resid_post"]).float().cpu()
        stacked["resid_pre"], stacked["resid_post"] = trajectory[:-1], trajectory[1:]
    else:
        stacked |= {name: torch.stack(sink[name]).float().cpu() for name in ("resid_pre", "resid_post")}
    return stacked


def _lens_width(S: int, positions: int) -> int:
    if isinstance(positions, bool) or not isinstance(positions, int) or positions < 1:
        raise ValueError(f"lens_positions must be a positive integer or None, got {positions!r}")
    return min(S, positions)


@torch.no_grad()
def _logit_lens(
    lm: Any, resid_post: list[Tensor], top_k: int, positions: int | None = None, final: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Top-k of softmax(lm_head(final_norm(resid))) per layer at the last ``positions``, one layer at a time.

    ``final`` ([B, S', V]): the model's own logits at those positions, used for the last layer
    (they are exactly its lens) instead of a second unembedding.

    Returns:
        ``(probs [L, B, S', k], ids [L, B, S', k])`` on the CPU, ``S' = min(S, positions)``.
    """
    B, S = resid_post[0].shape[:2]
    if positions is not None:
        S = _lens_width(S, positions)
    if top_k == 0:
        return torch.zeros(len(resid_post), B, S, 0), torch.zeros(len(resid_post), B, S, 0, dtype=torch.long)
    probs, ids = [], []
    for i, resid in enumerate(resid_post):
        if final is not None and i == len(resid_post) - 1:  # the model's own logits: no second unembedding
            top = final.float().softmax(-1).topk(min(top_k, final.shape[-1]), dim=-1)
            p, t = top.values.cpu(), top.indices.cpu()
        else:
            p, t = unembed_topk(lm, resid[:, -S:], top_k)
        probs.append(p)
        ids.append(t)
    return torch.stack(probs), torch.stack(ids)


def _decode_grid(lm: Any, ids: Tensor) -> list[list[list[str]]]:
    """Decodes an [L, S, k] id grid, each distinct id once."""
    unique = ids.unique().tolist()
    lookup = dict(zip(unique, lm.token_strings(unique)))
    return [[[lookup[i] for i in pos] for pos in layer] for layer in ids.tolist()]


def _row_cache(
    lm: Any,
    r: int,
    ids: Tensor,
    mask: Tensor,
    stacked: dict[str, Tensor],
    sink: dict[str, list],
    att_layers: list[int],
    lens_probs: Tensor,
    lens_ids: Tensor,
    saved: dict[str, Any],
    importance: Tensor | None,
    interventions: Sequence[Intervention],
    n_post: int,
) -> RunCache:
    # Left padding: the real tokens of a row are its last n positions (slices are views, no copy).
    n = int(mask[r].sum())
    keep = slice(ids.shape[1] - n, None)

    def stack(name: str) -> Tensor:
        return stacked[name][:, r, keep]

    row_ids = ids[r, keep].cpu()
    z = stack("z").permute(0, 2, 1, 3)  # [L, S, H, D] -> [L, H, S, D], a view (a copy per row costs page faults)
    attention = {layer: sink["attention"][i][r, :, keep, keep].float().cpu() for i, layer in enumerate(att_layers)}
    covered = lens_ids.shape[2]  # the last `covered` padded positions; this row's real ones among them
    lens_keep = slice(max(0, covered - n), None)
    l_ids = lens_ids[:, r, lens_keep]
    target = int(saved["targets"][r])
    return RunCache(
        model_name=lm.name,
        tokens=lm.token_strings(row_ids),
        input_ids=row_ids,
        resid_pre=stack("resid_pre"),
        resid_post=stack("resid_post"),
        attn_out=stack("attn_out"),
        z=z,
        attention=attention,
        lens_ids=l_ids,
        lens_probs=lens_probs[:, r, lens_keep],
        lens_tokens=_decode_grid(lm, l_ids),
        last_logits=saved["last"][r].cpu(),
        target_id=target,
        target_token=lm.tokenizer.decode([target]),
        importance=None if importance is None else importance[r, keep].cpu(),
        n_post_instruction=n_post,
        interventions=tuple(type(iv).__name__ for iv in interventions),
    )
