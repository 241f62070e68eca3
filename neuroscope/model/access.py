"""Where things live inside a decoder-only family: the ONLY place that names module paths.

Every other module asks this one for "the input of layer l" or "the o_proj of layer l". The same
accessors work on the nnsight wrapper (returning envoys that can be read and written inside a
trace) and on the plain Hugging Face module (returning ``torch.nn.Module``s for weights), because
nnsight mirrors the module tree attribute for attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroscope.errors import UserError


@dataclass(frozen=True)
class FamilyPaths:
    """Attribute paths, relative to the ``*ForCausalLM`` root, for one decoder family."""

    layers: str = "model.layers"
    embed: str = "model.embed_tokens"
    final_norm: str = "model.norm"
    lm_head: str = "lm_head"
    attn: str = "self_attn"  # relative to a layer
    o_proj: str = "self_attn.o_proj"
    mlp: str = "mlp"
    down_proj: str = "mlp.down_proj"
    mlp_inputs: tuple[str, ...] = ("mlp.gate_proj", "mlp.up_proj")
    # The config flag that gives every MLP Linear a bias (so a saved model can carry a bias on
    # down_proj and plain transformers loads it), or None where the family has no such flag.
    mlp_bias_flag: str | None = None
    # GPT-2's Conv1D stores a writer's weight as [in, out], the transpose of nn.Linear's [out, in].
    conv1d: bool = False


# Llama, Qwen2 and Mistral share the same tree (pre-norm, RMSNorm, GQA, o_proj/down_proj writers).
# GPT-2 (and its family: distilgpt2, gpt2-medium/large/xl) is pre-norm too, with LayerNorm, learned
# positions added before layer 0 (so layer 0's input already holds them), a fused c_attn, and
# Conv1D writers with biases.
FAMILIES: dict[str, FamilyPaths] = {
    "llama": FamilyPaths(mlp_bias_flag="mlp_bias"),
    "qwen2": FamilyPaths(),
    "mistral": FamilyPaths(),
    "gpt2": FamilyPaths(
        layers="transformer.h",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
        attn="attn",
        o_proj="attn.c_proj",
        down_proj="mlp.c_proj",
        mlp_inputs=("mlp.c_fc",),
        conv1d=True,
    ),
}


class UnsupportedModelError(UserError):
    """The model's architecture has no access map."""


def family_of(model_type: str) -> FamilyPaths:
    """Returns the access map for a ``config.model_type``.

    Raises:
        UnsupportedModelError: The family is not mapped.
    """
    try:
        return FAMILIES[model_type]
    except KeyError:
        supported = ", ".join(sorted(FAMILIES))
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported (supported decoder families: {supported})"
        ) from None


def _get(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class Access:
    """Resolves the named sites of one family on a root (an nnsight model or an HF module)."""

    def __init__(self, paths: FamilyPaths) -> None:
        self.paths = paths

    def layers(self, root: Any) -> Any:
        return _get(root, self.paths.layers)

    def layer(self, root: Any, index: int) -> Any:
        return self.layers(root)[index]

    def attn(self, root: Any, index: int) -> Any:
        return _get(self.layer(root, index), self.paths.attn)

    def o_proj(self, root: Any, index: int) -> Any:
        return _get(self.layer(root, index), self.paths.o_proj)

    def mlp(self, root: Any, index: int) -> Any:
        return _get(self.layer(root, index), self.paths.mlp)

    def down_proj(self, root: Any, index: int) -> Any:
        return _get(self.layer(root, index), self.paths.down_proj)

    def mlp_inputs(self, root: Any, index: int) -> list[Any]:
        """The Linears that read the MLP's input (e.g. gate_proj, up_proj)."""
        return [_get(self.layer(root, index), p) for p in self.paths.mlp_inputs]

    def embed(self, root: Any) -> Any:
        return _get(root, self.paths.embed)

    def final_norm(self, root: Any) -> Any:
        return _get(root, self.paths.final_norm)

    def lm_head(self, root: Any) -> Any:
        return _get(root, self.paths.lm_head)

    def writer_weight(self, module: Any) -> Any:
        """A writer's weight as ``[out, in]`` (nn.Linear's layout) whatever the family stores."""
        return module.weight.T if self.paths.conv1d else module.weight
