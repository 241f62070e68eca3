"""Weight edits (directional ablation baked into the weights) and completion loss.

Ablating a direction r at every layer, position and write (embedding, attention out, MLP out) is
the same as removing r from the output side of every matrix that writes into the residual stream:
``W_E <- W_E - W_E r r^T`` (rows of the embedding), ``W_out <- W_out - r r^T W_out`` for each
``o_proj`` and ``down_proj`` (and their biases). The residual stream then never holds a component
along r, exactly as with the hook version (:class:`DirectionAblation` with ``target=None``).
Tied embeddings (Llama-3.2) are untied first: editing the embedding must not edit ``lm_head``.

Two generalisations, each equal to a hook form under greedy decoding (tested):

- **strength** lambda: ``W <- W - lambda r r^T W``. Every write keeps (1 - lambda) of its component
  (``DirectionAblation(r, strength=lambda)``); lambda > 1 overshoots past zero, which on some models
  removes refusal that the exact zero form leaves.
- **the mean form, exactly** (``target`` [n_layers], e.g. the harmless mean projections): the
  writers are orthogonalised, every embedding row gets ``target[0] r``, and layer l's
  ``down_proj`` gets the bias ``(target[l+1] - target[l]) r`` (0 for the last layer), so the
  projection of layer l's input is ``target[l]`` at every position, as with
  ``DirectionAblation(r, target=target)``. This needs a family whose config can give
  ``down_proj`` a bias that plain transformers loads (Llama: ``mlp_bias``; the other MLP Linears
  get zero biases); elsewhere it raises ``WeightEditError``.

``completion_loss`` scores given completions token by token (teacher forcing) under
interventions — the language-modelling cost of an intervention. It lives here because it needs
a traced forward pass over full sequences, which the engine did not yet offer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.errors import UserError
from neuroscope.model.generate import _batches
from neuroscope.model.interventions import DirectionAblation, Intervention, validate_all, walk_layers
from neuroscope.model.loaded import wrap

FORMS = ("zero", "mean")
EMBED_CHUNK = 8192  # embedding rows edited at a time (128,256 x 3072 in float64 would be 3 GB)


class WeightEditError(UserError):
    """The edit cannot be written into this model's weights; the message is for the user."""


@dataclass(frozen=True)
class WeightEdit:
    """What an edit does: its form and strength (recorded in an exported model's config).

    Attributes:
        form: ``"zero"`` (projection scaled by 1 - strength) or ``"mean"`` (projection set to the
            per-layer target, e.g. the harmless mean; strength 1).
        strength: lambda.
    """

    form: str = "zero"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise WeightEditError(f"edit form must be one of {FORMS}, got {self.form!r}")
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise WeightEditError(f"edit strength must be a finite number, got {s!r}")
        if self.form == "mean" and s != 1:
            raise WeightEditError("the mean form sets the projection to the target; its strength is 1")

    @property
    def label(self) -> str:
        return "mean form" if self.form == "mean" else f"zero form, λ = {self.strength:g}"

    def hooks(self, direction: Tensor, target: Tensor | None) -> DirectionAblation:
        """The hook intervention this edit bakes into the weights."""
        if self.form == "mean":
            if target is None:
                raise WeightEditError("the mean form needs the per-layer target projections")
            return DirectionAblation(direction, target=target.float())
        return DirectionAblation(direction, strength=float(self.strength))


def untie_embeddings(hf: Any) -> bool:
    """Gives ``lm_head`` its own copy of the embedding matrix if the two are tied.

    Returns:
        True if they were tied.
    """
    emb, head = hf.get_input_embeddings(), hf.get_output_embeddings()
    if head is None or head.weight.data_ptr() != emb.weight.data_ptr():
        hf.config.tie_word_embeddings = False
        return False
    head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)
    hf.config.tie_word_embeddings = False
    text_config = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else None
    if text_config is not None:
        text_config.tie_word_embeddings = False
    if hasattr(hf, "_tied_weights_keys"):
        try:
            hf._tied_weights_keys = {} if isinstance(hf._tied_weights_keys, dict) else []
        except AttributeError:
            pass
    return True


@torch.no_grad()
def _remove_from_outputs(linear: Any, r: Tensor, strength: float = 1.0) -> None:
    """``W <- W - lambda r (r^T W)`` (and the bias) for a Linear writing into the stream ([d_model, in])."""
    w = linear.weight
    w64 = w.double()
    r64 = r.to(device=w.device, dtype=torch.float64)
    w.copy_((w64 - strength * torch.outer(r64, r64 @ w64)).to(w.dtype))
    if getattr(linear, "bias", None) is not None:
        b = linear.bias.double()
        linear.bias.copy_((b - strength * (b @ r64) * r64).to(linear.bias.dtype))


def _zero_bias(linear: Any) -> None:
    """Gives a bias-free Linear a zero bias (frozen, same dtype and device as its weight)."""
    if getattr(linear, "bias", None) is None:
        w = linear.weight
        linear.bias = torch.nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device), requires_grad=False)


def check_exportable(lm: Any, edit: WeightEdit) -> None:
    """Raises ``WeightEditError`` when ``edit`` cannot be stored in this family's weights."""
    if lm.access.paths.conv1d:
        raise WeightEditError(
            f"weight editing supports Linear-writer families (Llama, Qwen2, Mistral); {lm.hf.config.model_type}'s "
            "Conv1D writers with biases are not edited: use the hook form (Interventions) instead"
        )
    if edit.form == "mean" and lm.access.paths.mlp_bias_flag is None:
        raise WeightEditError(
            f"the exact mean form needs a down_proj bias, which a {lm.hf.config.model_type} checkpoint cannot "
            "store; export the zero form with a strength instead"
        )


@torch.no_grad()
def orthogonalize_weights(
    lm: Any, direction: Tensor, edit: WeightEdit = WeightEdit(), target: Tensor | None = None
) -> None:
    """Bakes ``edit`` of ``direction`` into every residual-stream writer of ``lm.hf``, IN PLACE.

    Args:
        lm: A ``LoadedModel`` (its weights are edited; see :func:`orthogonalized_copy`).
        direction: [d_model], any norm (normalised here).
        edit: Form and strength.
        target: [n_layers] projections of each layer's input (mean form only).

    Raises:
        WeightEditError: A bad direction or target, or a mean form this family cannot store.
    """
    if direction.shape != (lm.d_model,) or not torch.isfinite(direction).all() or float(direction.norm()) == 0:
        raise WeightEditError(f"direction must be a finite non-zero [{lm.d_model}] vector")
    check_exportable(lm, edit)
    lm.require_weights("editing the weights")
    if edit.form == "mean" and (target is None or target.shape != (lm.n_layers,) or not torch.isfinite(target).all()):
        raise WeightEditError(f"the mean form needs a finite [{lm.n_layers}] target")
    lam = 1.0 if edit.form == "mean" else float(edit.strength)
    r = direction.double() / direction.double().norm()
    hf, access = lm.hf, lm.access
    untie_embeddings(hf)
    emb = access.embed(hf).weight  # [vocab, d_model]: rows are written into the stream
    r_e = r.to(emb.device)
    for start in range(0, emb.shape[0], EMBED_CHUNK):  # float64 a chunk at a time: no vocab x d_model copy
        e64 = emb[start : start + EMBED_CHUNK].double()
        e64 -= lam * torch.outer(e64 @ r_e, r_e)
        if edit.form == "mean":
            e64 += float(target[0]) * r_e  # every token's embedding starts at layer 0's target
        emb[start : start + EMBED_CHUNK] = e64.to(emb.dtype)
    for layer in range(lm.n_layers):
        _remove_from_outputs(access.o_proj(hf, layer), r, lam)
        _remove_from_outputs(access.down_proj(hf, layer), r, lam)
    if edit.form == "mean":
        setattr(hf.config, access.paths.mlp_bias_flag, True)
        t = target.double()
        for layer in range(lm.n_layers):
            down = access.down_proj(hf, layer)
            for linear in [*access.mlp_inputs(hf, layer), down]:
                _zero_bias(linear)
            step = float(t[layer + 1] - t[layer]) if layer + 1 < lm.n_layers else 0.0
            b = down.bias.double() + step * r.to(down.bias.device)
            down.bias.copy_(b.to(down.bias.dtype))
    hf.config.neuroscope_edit = {
        **asdict(edit),
        "direction_norm": float(direction.double().norm()),
        "target": None if target is None or edit.form != "mean" else [float(x) for x in target],
    }


def orthogonalized_copy(
    lm: Any, direction: Tensor, edit: WeightEdit = WeightEdit(), target: Tensor | None = None
) -> Any:
    """A new ``LoadedModel`` whose weights carry ``edit``; ``lm`` is untouched.

    Needs memory for a second copy of the weights.
    """
    check_exportable(lm, edit)
    hf = copy.deepcopy(lm.hf)
    tokenizer = copy.deepcopy(lm.tokenizer)
    edited = wrap(hf, tokenizer, name=f"{lm.name} (refusal direction edited out: {edit.label})", source=lm.source)
    orthogonalize_weights(edited, direction, edit, target)
    return edited


def save_model(lm: Any, folder: str | Path) -> None:
    """``save_pretrained`` of the weights and the tokenizer into ``folder`` (loadable by ``load_model``)."""
    folder = Path(folder)
    lm.hf.save_pretrained(str(folder))
    lm.tokenizer.save_pretrained(str(folder))


@torch.no_grad()
def completion_loss(
    lm: Any,
    instructions: Sequence[str],
    completions: Sequence[str],
    interventions: Sequence[Intervention] = (),
    batch_size: int = 16,
) -> Tensor:
    """Mean next-token cross-entropy of each completion given its chat-formatted instruction.

    Args:
        lm: A ``LoadedModel``.
        instructions: N user messages.
        completions: N assistant answers (text); empty ones get NaN.
        interventions: Applied at every layer and position.

    Returns:
        [N] float64 on the CPU, nats per completion token.
    """
    if len(instructions) != len(completions):
        raise ValueError("need one completion per instruction")
    validate_all(lm, interventions)
    tok = lm.tokenizer
    pad = tok.pad_token_id
    out: list[Tensor] = []
    pairs = list(zip(instructions, completions))
    for chunk in _batches(pairs, batch_size):
        prompt_ids, prompt_mask = lm.encode_chat([c[0] for c in chunk])
        rows, targets_len = [], []
        for r, (_, completion) in enumerate(chunk):
            # Real tokens by the attention mask, never by pad id: with pad == eos (Llama-3.x
            # Instruct) the template's own <|eot_id|> would be dropped too.
            prompt = prompt_ids[r][prompt_mask[r].bool()]
            comp = tok.encode(completion, add_special_tokens=False) if completion else []
            rows.append(torch.cat([prompt.cpu(), torch.tensor(comp, dtype=torch.long)]))
            targets_len.append(len(comp))
        S = max(len(r) for r in rows)
        ids = torch.full((len(rows), S), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(rows), S), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, S - len(row) :] = row
            mask[r, S - len(row) :] = 1
        saved: dict[str, Tensor] = {}
        tr = lm.tracing
        with lm.lock:
            with lm.nn.trace(
                {"input_ids": ids.to(lm.device), "attention_mask": mask.to(lm.device)}, **lm.run_options()
            ):
                walk_layers(tr, interventions)
                saved["logits"] = tr.access.lm_head(tr.nn).output.float().cpu()
                nnsight.save(saved)
        logp = saved["logits"].log_softmax(-1)
        for r, n in enumerate(targets_len):
            if n == 0:
                out.append(torch.tensor(float("nan"), dtype=torch.float64))
                continue
            tgt = ids[r, S - n :]
            pred = logp[r, S - n - 1 : S - 1]
            out.append(-pred.gather(-1, tgt[:, None]).double().mean())
    return torch.stack(out) if out else torch.empty(0, dtype=torch.float64)
