"""Interventions applied inside a trace or a generation: direction ablation/addition, head ablation.

An intervention is a small frozen object that says how to rewrite the activations at four sites
of a layer, visited in execution order: ``resid_pre`` (the layer's input), ``head_z`` (the
per-head inputs of ``o_proj``), ``attn_out`` (``o_proj``'s output) and ``mlp_out``. The math is
the pure functions of :mod:`neuroscope.analysis.directions`; this module only decides where it
goes. ``walk_layers`` is the one place that reads and writes those sites through nnsight, and it
is shared by captures, forward passes and generation, so an intervention means the same thing in
all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.errors import UserError
from neuroscope.analysis.cone import ablate_subspace, orthonormal_basis
from neuroscope.analysis.directions import ablate, unit
from neuroscope.analysis.heads import head_label

SITES = ("resid_pre", "head_z", "attn_out", "mlp_out")


class InterventionError(UserError):
    """An intervention's parameters are invalid for this model; the message is for the user."""


class Intervention:
    """Base class: every site returns its input unchanged. Subclasses override what they touch."""

    sites: frozenset[str] = frozenset()

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        """Raises ``InterventionError`` when the intervention does not fit the model."""

    def resid_pre(self, layer: int, x: Tensor) -> Tensor:
        """``x``: [batch, pos, d_model] -> same."""
        return x

    def head_z(self, layer: int, z: Tensor) -> Tensor:
        """``z``: [batch, pos, n_heads, d_head] -> same."""
        return z

    def attn_out(self, layer: int, x: Tensor) -> Tensor:
        return x

    def mlp_out(self, layer: int, x: Tensor) -> Tensor:
        return x


def _check_direction(direction: Tensor, d_model: int) -> None:
    if direction.shape != (d_model,):
        raise InterventionError(f"direction has shape {tuple(direction.shape)}, the model needs [{d_model}]")
    if not torch.isfinite(direction).all():
        raise InterventionError("direction contains NaN or infinite values")


@dataclass(frozen=True, eq=False)
class DirectionAblation(Intervention):
    """Remove a direction everywhere: every layer's input, attention and MLP writes, all positions.

    Args:
        direction: [d_model], any norm (normalised here).
        target: ``None`` for the paper's form (projection set to 0); a [n_layers] tensor for the
            mean form (the projection of each layer's input set to e.g. the harmless mean). The
            attention and MLP writes always lose their component, so within a layer the stream
            stays pinned to the target.
        strength: lambda of the zero form: every write into the residual stream (the embedding,
            i.e. layer 0's input, and each attention and MLP output) keeps (1 - lambda) of its
            component along the direction. 1 removes it (the paper's form); 1.5 pushes the
            stream past zero. It is the hook form of the weight edit ``W <- W - lambda r r^T W``
            (:func:`neuroscope.model.orthogonalize.orthogonalize_weights`). The mean form needs 1.
    """

    direction: Tensor
    target: Tensor | None = None
    strength: float = 1.0
    sites: frozenset[str] = field(default=frozenset({"resid_pre", "attn_out", "mlp_out"}), init=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "direction", unit(self.direction.detach().float().cpu()))
        except ValueError as err:  # zero or non-finite direction: a user-facing intervention error
            raise InterventionError(f"cannot ablate this direction: {err}") from None
        if (
            isinstance(self.strength, bool)
            or not isinstance(self.strength, (int, float))
            or not math.isfinite(self.strength)
        ):
            raise InterventionError(f"ablation strength must be a finite number, got {self.strength!r}")
        if self.target is not None and self.strength != 1:
            raise InterventionError(
                "the mean form sets the projection to its target; it takes no strength other than 1"
            )

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        _check_direction(self.direction, d_model)
        if self.target is not None:
            if self.target.shape != (n_layers,):
                raise InterventionError(
                    f"mean-ablation target has shape {tuple(self.target.shape)}, expected [{n_layers}]"
                )
            if not torch.isfinite(self.target).all():
                raise InterventionError("mean-ablation target contains NaN or infinite values")

    def resid_pre(self, layer: int, x: Tensor) -> Tensor:
        if self.target is not None:
            return ablate(x, self.direction, self.target[layer])
        if self.strength == 1:  # every layer: a no-op after layer 0 up to rounding, kept for exactness
            return ablate(x, self.direction)
        # lambda != 1: only the embedding's write (layer 0's input); later inputs already hold
        # the scaled writes, and scaling them again would compound.
        return ablate(x, self.direction, strength=self.strength) if layer == 0 else x

    def attn_out(self, layer: int, x: Tensor) -> Tensor:
        return ablate(x, self.direction, strength=self.strength)

    def mlp_out(self, layer: int, x: Tensor) -> Tensor:
        return ablate(x, self.direction, strength=self.strength)


@dataclass(frozen=True, eq=False)
class SubspaceAblation(Intervention):
    """Remove a k-dimensional subspace everywhere (the zero form of ``DirectionAblation`` for k directions):
    every layer's input and every attention and MLP write lose their part in the span of ``basis``.

    Args:
        basis: [k, d_model], any vectors spanning the subspace (orthonormalised here, in their order).
    """

    basis: Tensor
    sites: frozenset[str] = field(default=frozenset({"resid_pre", "attn_out", "mlp_out"}), init=False)

    def __post_init__(self) -> None:
        try:
            q = orthonormal_basis(self.basis.detach().double().cpu())
        except ValueError as err:
            raise InterventionError(f"cannot ablate this subspace: {err}") from None
        object.__setattr__(self, "basis", q.float())

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        if self.basis.shape[-1] != d_model:
            raise InterventionError(f"subspace vectors have size {self.basis.shape[-1]}, the model needs {d_model}")

    def resid_pre(self, layer: int, x: Tensor) -> Tensor:
        return ablate_subspace(x, self.basis)

    def attn_out(self, layer: int, x: Tensor) -> Tensor:
        return ablate_subspace(x, self.basis)

    def mlp_out(self, layer: int, x: Tensor) -> Tensor:
        return ablate_subspace(x, self.basis)


@dataclass(frozen=True, eq=False)
class DirectionAddition(Intervention):
    """Activation addition: ``resid_pre[layer] += strength * direction`` at every position.

    Args:
        direction: [d_model], used as given (a difference of means keeps its natural norm).
        layer: The layer whose input is steered.
        strength: Multiplier; 0 is a no-op, negative values subtract.
    """

    direction: Tensor
    layer: int
    strength: float = 1.0
    sites: frozenset[str] = field(default=frozenset({"resid_pre"}), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", self.direction.detach().float().cpu())
        if not isinstance(self.strength, (int, float)) or not math.isfinite(self.strength):
            raise InterventionError(f"strength must be a finite number, got {self.strength!r}")

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        _check_direction(self.direction, d_model)
        if not isinstance(self.layer, int) or not 0 <= self.layer < n_layers:
            raise InterventionError(f"layer must be an integer in 0..{n_layers - 1}, got {self.layer!r}")

    def resid_pre(self, layer: int, x: Tensor) -> Tensor:
        if layer != self.layer:
            return x
        return x + (self.strength * self.direction).to(device=x.device, dtype=x.dtype)


@dataclass(frozen=True, eq=False)
class HeadAblation(Intervention):
    """Mean ablation of attention heads: each chosen head's ``z`` is replaced by its mean.

    Args:
        heads: ``(layer, head)`` pairs.
        means: [n_layers, n_heads, d_head] mean ``z`` over real tokens of a reference set (never
            zeros: zero has no special meaning in activation space).
    """

    heads: tuple[tuple[int, int], ...]
    means: Tensor
    sites: frozenset[str] = field(default=frozenset({"head_z"}), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(sorted({(int(l), int(h)) for l, h in self.heads})))
        object.__setattr__(self, "means", self.means.detach().float().cpu())

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        if self.means.shape != (n_layers, n_heads, d_head):
            raise InterventionError(
                f"head means have shape {tuple(self.means.shape)}, expected [{n_layers}, {n_heads}, {d_head}]"
            )
        for layer, head in self.heads:
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                raise InterventionError(
                    f"head {head_label(layer, head)} does not exist (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})"
                )

    def head_z(self, layer: int, z: Tensor) -> Tensor:
        chosen = [h for l, h in self.heads if l == layer]
        if not chosen:
            return z
        z = z.clone()
        z[:, :, chosen] = self.means[layer, chosen].to(device=z.device, dtype=z.dtype)
        return z


@dataclass(frozen=True, eq=False)
class HeadPatch(Intervention):
    """Activation patching of heads: each chosen head's ``z`` at the last positions is overwritten.

    Used with left-padded batches, where the last ``P`` positions of every row are the chat
    template's post-instruction tokens, so row i of ``values`` (from another prompt's run) lands
    on the same template tokens.

    Args:
        heads: ``(layer, head)`` pairs.
        values: [n_heads_chosen, B, P, d_head]: per chosen head (in ``heads`` order), batch row and
            last position, the ``z`` to write.
    """

    heads: tuple[tuple[int, int], ...]
    values: Tensor
    sites: frozenset[str] = field(default=frozenset({"head_z"}), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple((int(l), int(h)) for l, h in self.heads))
        object.__setattr__(self, "values", self.values.detach())
        if len(set(self.heads)) != len(self.heads):
            raise InterventionError("each head may be patched once")
        if self.values.ndim != 4 or self.values.shape[0] != len(self.heads):
            raise InterventionError(
                f"patch values must be [{len(self.heads)}, B, P, d_head], got {tuple(self.values.shape)}"
            )
        if not torch.isfinite(self.values).all():
            raise InterventionError("patch values contain NaN or infinite values")

    def validate(self, n_layers: int, n_heads: int, d_head: int, d_model: int) -> None:
        if self.values.shape[-1] != d_head:
            raise InterventionError(f"patch values have d_head {self.values.shape[-1]}, the model has {d_head}")
        for layer, head in self.heads:
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                raise InterventionError(
                    f"head {head_label(layer, head)} does not exist (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})"
                )

    def head_z(self, layer: int, z: Tensor) -> Tensor:
        chosen = [(i, h) for i, (l, h) in enumerate(self.heads) if l == layer]
        if not chosen:
            return z
        P = self.values.shape[2]
        if self.values.shape[1] != z.shape[0] or P > z.shape[1]:
            raise InterventionError(
                f"patch values for {self.values.shape[1]} rows x {P} positions do not fit a batch "
                f"of {z.shape[0]} x {z.shape[1]}"
            )
        z = z.clone()
        for i, h in chosen:
            z[:, -P:, h] = self.values[i].to(device=z.device, dtype=z.dtype)
        return z


def validate_all(lm: Any, interventions: Sequence[Intervention]) -> None:
    """Checks every intervention against the model's shapes (raises ``InterventionError``)."""
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise InterventionError(f"not an intervention: {iv!r}")
        iv.validate(lm.n_layers, lm.n_heads, lm.d_head, lm.d_model)


@dataclass(frozen=True)
class Tracing:
    """What a trace body needs of a model, and nothing else: the nnsight wrapper, the access map, the shape.

    Trace bodies reference only this (never the ``LoadedModel``, which holds a lock and the HF
    module), so that nnsight can ship them to a remote server (NDIF) or its local simulation of
    one: everything here pickles (the wrapper by reference to the server's model).
    """

    nn: Any
    access: Any
    n_layers: int
    n_heads: int
    d_head: int


def _touches(interventions: Sequence[Intervention], site: str, layer: int) -> list[Intervention]:
    return [
        iv for iv in interventions if site in iv.sites and not (isinstance(iv, DirectionAddition) and iv.layer != layer)
    ]


def chains(interventions: Sequence[Intervention], n_layers: int) -> bool:
    """Whether every layer's input (after layer 0) is the previous layer's output under ``interventions``."""
    return not any(_touches(interventions, "resid_pre", layer) for layer in range(1, n_layers))


def walk_layers(
    tr: Tracing,
    interventions: Sequence[Intervention] = (),
    record: frozenset[str] = frozenset(),
    attention_layers: Sequence[int] = (),
    sink: dict[str, list] | None = None,
    chain: bool = False,
    z_tail: int | None = None,
) -> None:
    """Visits every layer's sites in execution order inside an active trace/generation step.

    Reads a site only when an intervention rewrites it or ``record`` asks for it; writes it back
    only when rewritten. Recorded values (after intervention) are appended to ``sink[name]``, one
    per layer: ``resid_pre``/``resid_post``/``attn_out``/``mlp_out`` [B, S, d_model], ``z``
    [B, S, H, D_head], ``attention`` [B, H, S, S] for ``attention_layers`` only.

    Must be called from inside a ``with lm.trace(...)`` body or a generation step, with
    ``tr = lm.tracing`` (taken outside the body, so the body never references the model object).

    ``chain=True`` records ``resid_pre`` at layer 0 only: the caller takes every later layer's input
    from the previous layer's ``resid_post`` (the same tensor unless an intervention rewrites a layer
    input, which ``chains`` rules out), saving a read and a copy per layer. ``z_tail`` records ``z`` at the
    last that many positions only (what a view shows), not at every position.
    """
    if chain and not chains(interventions, tr.n_layers):
        raise ValueError("chain=True with an intervention that rewrites a layer input after layer 0")
    nn, access = tr.nn, tr.access
    H, D = tr.n_heads, tr.d_head

    def heads(flat: Tensor) -> Tensor:  # o_proj's input [B, S, H*D] -> per-head z [B, S, H, D]
        return flat.reshape(*flat.shape[:-1], H, D)

    for layer in range(tr.n_layers):
        block, o_proj = access.layer(nn, layer), access.o_proj(nn, layer)
        site = dict(
            layer=layer,
            interventions=interventions,
            record=record - {"resid_pre"} if chain and layer > 0 else record,
            sink=sink,
        )
        _visit(block, "input", "resid_pre", "resid_pre", **site)
        _visit(o_proj, "input", "head_z", "z", split=heads, tail=z_tail, **site)
        _visit(o_proj, "output", "attn_out", "attn_out", **site)
        if layer in attention_layers:
            sink["attention"].append(access.attn(nn, layer).output[1].detach())
        _visit(access.mlp(nn, layer), "output", "mlp_out", "mlp_out", **site)
        if "resid_post" in record:
            sink["resid_post"].append(block.output.detach())


def _visit(
    envoy: Any,
    attr: str,
    site: str,
    name: str,
    layer: int,
    interventions: Sequence[Intervention],
    record: frozenset[str],
    sink: dict[str, list] | None,
    split=None,
    tail: int | None = None,
) -> None:
    """Reads ``envoy.<attr>`` if needed, rewrites it through the interventions of ``site``, records it."""
    ivs = _touches(interventions, site, layer)
    if not ivs and name not in record:
        return
    raw = getattr(envoy, attr)
    x = raw if split is None else split(raw)
    for iv in ivs:
        x = getattr(iv, site)(layer, x)
    if ivs:
        setattr(envoy, attr, x if split is None else x.reshape(raw.shape))
    if name in record:
        sink[name].append((x if tail is None else x[:, -tail:]).detach())


def rewrite_layer_input(tr: Tracing, interventions: Sequence[Intervention], layer: int) -> None:
    """Applies the interventions that rewrite ``layer``'s input, and only those (inside an active trace)."""
    _visit(tr.access.layer(tr.nn, layer), "input", "resid_pre", "resid_pre", layer, interventions, frozenset(), None)
