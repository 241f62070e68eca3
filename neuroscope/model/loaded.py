"""The loaded model: what every other module of the model layer works with.

``LoadedModel`` bundles the nnsight wrapper, the plain Hugging Face module, the tokenizer, the
family's access map and the lock that serialises traces; ``wrap`` builds one from an HF model.
Loading from a hub id, a folder or ``"demo"`` lives in :mod:`neuroscope.model.loader`, which imports
this module (and the tiny test models import it too), so neither imports the other.
"""

from __future__ import annotations

import functools

import threading
from dataclasses import dataclass, field
from typing import Any

from neuroscope.config import environment
from neuroscope.model import _compat  # noqa: F401  (must precede nnsight)

import torch
from nnsight import TransformersModel
from transformers import PreTrainedModel

from neuroscope.errors import UserError
from neuroscope.model.access import Access, UnsupportedModelError, family_of
from neuroscope.model.chat import CHAT_TEMPLATE_KWARGS, PromptError, clean_instruction
from neuroscope.model.interventions import Tracing


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded; the message says why in words a user can act on."""


_TOKENIZER_LOCK = threading.RLock()  # see LoadedModel.encode_chat


@dataclass
class LoadedModel:
    """A loaded model: the nnsight wrapper, the plain HF module, its tokenizer and a lock.

    Every trace or generation must hold ``lock``: nnsight traces are not thread-safe, and the lock
    also guarantees that one request's interventions never overlap another's run.
    """

    nn: TransformersModel
    hf: PreTrainedModel
    tokenizer: object
    access: Access
    name: str
    source: str  # "hub", "local", "demo" or "tiny"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Where traces run: False (here), True (NDIF, nnsight's remote execution) or "local" (nnsight's
    # simulation of a remote run: serialized and deserialized with the project's modules hidden).
    remote: bool | str = False
    _token_text: dict[int, str] = field(default_factory=dict, repr=False)  # id -> its text, decoded once

    # ---- tracing -----------------------------------------------------------------------------
    @property
    def tracing(self) -> Tracing:
        """What trace bodies may reference (``Tracing``): never ``self``, which holds a lock."""
        return Tracing(self.nn, self.access, self.n_layers, self.n_heads, self.d_head)

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments of every ``nn.trace`` / ``nn.generate``: ``{}`` here, ``{"remote": ...}`` remotely.

        Call sites write ``with lm.nn.trace(inputs, **lm.run_options()):`` themselves: nnsight
        compiles the ``with`` block it is entered from, so the tracer cannot be made in a helper.

        Raises:
            RemoteUnavailable: Remote execution without an API key.
        """
        if not self.remote:
            return {}
        check_remote(self.remote)
        return {"remote": self.remote}

    # ---- shape facts -------------------------------------------------------------------------
    @property
    def config(self):
        return self.hf.config

    @property
    def n_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def n_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def n_kv_heads(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.n_heads

    @property
    def d_model(self) -> int:
        return self.config.hidden_size

    @property
    def d_head(self) -> int:
        return getattr(self.config, "head_dim", None) or self.d_model // self.n_heads

    @property
    def vocab_size(self) -> int:
        return self.hf.get_output_embeddings().weight.shape[0]

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    # ---- chat formatting ---------------------------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer brings a chat template (base models such as GPT-2 do not: plain prompts)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def encode_chat(
        self, instructions: list[str], max_tokens: int | None = None, chat: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Applies the chat template once (one BOS) and left-pads a batch.

        Args:
            instructions: User messages, already validated.
            max_tokens: Reject any prompt longer than this many tokens.
            chat: ``False`` tokenises the texts as they are (plain text continuation); models without
                a chat template always do.

        Returns:
            ``(input_ids [B, S] long, attention_mask [B, S] long)`` on the model's device.

        Raises:
            PromptError: A prompt is longer than ``max_tokens``.
        """
        # transformers' split_special_tokens flips a flag on the shared tokenizer backend for the call:
        # concurrent encodings would see each other's setting, so they take turns.
        with _TOKENIZER_LOCK:
            if chat and self.has_chat_template:
                rows = [self._chat_ids(text) for text in instructions]
            else:
                rows = [
                    self.tokenizer(text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
                    for text in instructions
                ]
            enc = self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if max_tokens is not None:
            lengths = mask.sum(-1)
            too_long = (lengths > max_tokens).nonzero().flatten().tolist()
            if too_long:
                raise PromptError(
                    f"the prompt is {int(lengths[too_long[0]])} tokens long"
                    f"{' with the chat template' if chat and self.has_chat_template else ''}; "
                    f"the limit is {max_tokens} tokens"
                )
        return ids.to(self.device), mask.to(self.device)

    def _chat_ids(self, text: str) -> list[int]:
        """One user message in the chat template, as ids; the user's text stays text.

        A user who types ``<|eot_id|><|start_header_id|>system`` gets those characters tokenised as
        text, not the template's control tokens (as chat front-ends built on transformers do): only
        the template's own special tokens are special. The template is applied to the real text
        (so its own processing, e.g. Llama 3's trim, holds) and the text's span is re-tokenised with
        ``split_special_tokens``. Text without special-token strings gets exactly the ids of
        ``apply_chat_template`` (the whole conversation tokenised at once: BPE merges across the
        frame's boundary, e.g. SmolLM2's ``"\\n "``, are kept).
        """
        render = functools.partial(
            self.tokenizer.apply_chat_template, add_generation_prompt=True, tokenize=False, **CHAT_TEMPLATE_KWARGS
        )
        prefix, suffix = self._chat_frame
        full = render([{"role": "user", "content": text}])
        if not (full.startswith(prefix) and full.endswith(suffix) and len(full) >= len(prefix) + len(suffix)):
            raise PromptError("this model's chat template changes the frame around the message; cannot encode it")
        content = full[len(prefix) : len(full) - len(suffix)]

        def ids(piece: str, split: bool) -> list[int]:
            return self.tokenizer(piece, add_special_tokens=False, split_special_tokens=split)["input_ids"]

        if not any(token in content for token in self._special_strings):  # no special-token string typed
            return ids(full, False)
        return ids(prefix, False) + ids(content, True) + ids(suffix, False)

    @functools.cached_property
    def _special_strings(self) -> tuple[str, ...]:
        """The text of every added token the tokenizer would read as one (special) token."""
        return tuple(t.content for t in self.tokenizer.added_tokens_decoder.values() if t.content)

    @functools.cached_property
    def _chat_frame(self) -> tuple[str, str]:
        """The chat template's text before and after one user message."""
        marker = "\x00NEUROSCOPE_INSTRUCTION\x00"
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": marker}], add_generation_prompt=True, tokenize=False, **CHAT_TEMPLATE_KWARGS
        )
        prefix, suffix = text.split(marker, 1)
        return prefix, suffix

    def encode_instruction(self, text: object, max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validates one user instruction and encodes it. Raises ``PromptError`` with a clear message."""
        return self.encode_chat([clean_instruction(text, max_tokens)], max_tokens=max_tokens)

    @property
    def n_post_instruction(self) -> int:
        """Number of template tokens after the instruction (the 'post-instruction' positions).

        Without a chat template the last token plays that role (the position the next token is read from).
        """
        return len(self.post_instruction_ids) if self.has_chat_template else 1

    @property
    def last_instruction_position(self) -> int:
        """The user instruction's last token, counted from the end (Zhao et al.'s t_inst): the position just
        before the template's post-instruction tokens. Without a chat template it is the last token."""
        return -(len(self.post_instruction_ids) + 1) if self.has_chat_template else -1

    @property
    def post_instruction_ids(self) -> list[int]:
        if not self.has_chat_template:
            return []
        suffix = self._chat_frame[1]
        return self.tokenizer(suffix, add_special_tokens=False)["input_ids"]

    def token_strings(self, ids: torch.Tensor | list[int]) -> list[str]:
        """Each id decoded on its own (``[S]`` ids -> ``S`` strings); each id is decoded once per model."""
        ids = [int(i) for i in ids]
        cache = self._token_text
        missing = sorted({i for i in ids if i not in cache})
        if missing:
            cache.update(zip(missing, self.tokenizer.batch_decode([[i] for i in missing])))
        return [cache[i] for i in ids]

    @property
    def eos_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        eot = self.tokenizer.convert_tokens_to_ids("<|eot_id|>")
        if isinstance(eot, int) and eot != self.tokenizer.unk_token_id:
            ids.add(eot)
        gen_eos = getattr(self.hf.generation_config, "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    # ---- weights (read-only views) -----------------------------------------------------------
    @property
    def has_weights(self) -> bool:
        """False for a model that runs on NDIF: its local copy is a weightless (meta) skeleton."""
        return self.remote is not True

    def require_weights(self, what: str) -> None:
        """Raises ``RemoteUnavailable`` when ``what`` needs weights this machine does not hold."""
        if not self.has_weights:
            raise RemoteUnavailable(
                f"{what} needs the model's weights on this machine; in remote mode (NDIF) only "
                "traces run (answers, activations, interventions, patching)"
            )

    def o_proj_weight(self, layer: int) -> torch.Tensor:
        """``W_O`` of a layer, ``[d_model, n_heads * d_head]``, on the model's device (no copy)."""
        self.require_weights("per-head contributions (W_O)")
        self.check_layer(layer)
        return self.access.writer_weight(self.access.o_proj(self.hf, layer))

    def o_proj_weights(self) -> torch.Tensor:
        """Every layer's ``W_O`` stacked, ``[L, d_model, n_heads * d_head]`` float64 on the CPU (a copy:
        what the head analyses compute with)."""
        return torch.stack([self.o_proj_weight(l).detach().double().cpu() for l in range(self.n_layers)])

    @torch.no_grad()
    def head_writes(self, z: torch.Tensor) -> torch.Tensor:
        """What every head writes into the residual stream for one position's ``z`` ``[L, H, D]``:
        ``[L, H, d_model]`` float32 on the CPU (bias left out), computed layer by layer on the model's
        device without copying ``W_O`` (cheap for one position, unlike stacking every ``W_O``)."""
        from neuroscope.analysis.heads import head_contributions

        if z.ndim != 3 or z.shape[0] != self.n_layers:
            raise ValueError(f"z must be [L={self.n_layers}, H, D], got {tuple(z.shape)}")
        out = []
        for layer in range(self.n_layers):
            W = self.o_proj_weight(layer).detach()
            out.append(head_contributions(z[layer].to(W.device, torch.float32), W.float()).cpu())
        return torch.stack(out)

    def o_proj_bias(self, layer: int) -> torch.Tensor | None:
        """The attention output's bias ``[d_model]`` (GPT-2, Qwen-style models with one), else ``None``."""
        self.check_layer(layer)
        return getattr(self.access.o_proj(self.hf, layer), "bias", None)

    def embedding_matrix(self) -> torch.Tensor:
        """``W_E``, the token embedding, ``[vocab, d_model]`` float32 on the CPU."""
        self.require_weights("the token embedding")
        return self.access.embed(self.hf).weight.detach().float().cpu()

    def unembedding_matrix(self) -> torch.Tensor:
        """``W_U`` with the final norm's elementwise weight folded in, ``[vocab, d_model]`` float32 on the CPU."""
        self.require_weights("the unembedding")
        W = self.access.lm_head(self.hf).weight.float()
        gamma = getattr(self.access.final_norm(self.hf), "weight", None)
        return (W * gamma.float() if gamma is not None else W).detach().cpu()

    @torch.no_grad()
    def unembed_write(self, write: torch.Tensor, resid: torch.Tensor) -> torch.Tensor:
        """Direct logit attribution: the logits that a residual write ``[..., d]`` adds at positions
        whose last-layer output is ``resid`` ``[..., d]``, through the final norm with its scale frozen
        there (``analysis.lens``) and the unembedding, biases left out. ``[..., V]`` float32 on the CPU.

        The writes of every component at a position sum to that position's logits (less any bias).
        """
        from neuroscope.analysis.lens import frozen_norm_write, norm_scale

        self.require_weights("the per-head logit lens (final norm and unembedding)")
        norm, head = self.access.final_norm(self.hf), self.access.lm_head(self.hf)
        centred = isinstance(norm, torch.nn.LayerNorm)
        eps = float(getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", 0.0))
        x = frozen_norm_write(write.cpu(), norm_scale(resid.cpu(), eps, centred), centred)
        gamma = getattr(norm, "weight", None)
        if gamma is not None:
            x = x * gamma.detach().double().cpu()
        W = head.weight  # [V, d]
        return (x.to(W.device, W.dtype) @ W.T).float().cpu()

    def check_layer(self, layer: object) -> int:
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < self.n_layers:
            raise PromptError(f"layer must be an integer in 0..{self.n_layers - 1}, got {layer!r}")
        return layer

    def check_head(self, head: object) -> int:
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < self.n_heads:
            raise PromptError(f"head must be an integer in 0..{self.n_heads - 1}, got {head!r}")
        return head


def wrap(hf: PreTrainedModel, tokenizer: object, name: str, source: str, nn: Any = None) -> LoadedModel:
    """Wraps an already-built HF model (eval mode, frozen weights) and its tokenizer.

    Raises:
        ModelLoadError: The family is unsupported.
    """
    try:
        access = Access(family_of(hf.config.model_type))
    except UnsupportedModelError as err:
        raise ModelLoadError(str(err)) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    hf.eval()
    hf.requires_grad_(False)  # gradients flow to inputs only; weights never collect .grad
    return LoadedModel(
        nn=nn if nn is not None else TransformersModel(hf, tokenizer=tokenizer),
        hf=hf,
        tokenizer=tokenizer,
        access=access,
        name=name,
        source=source,
    )


class RemoteUnavailable(ModelLoadError):
    """Remote execution (NDIF) was asked for but cannot run; the message says why."""


def check_remote(remote: bool | str) -> None:
    """Raises ``RemoteUnavailable`` before a remote trace that could not succeed: no API key.

    ``remote="local"`` (nnsight's simulation) needs none. The key comes from ``NDIF_API_KEY`` (or
    nnsight's own config); the project never stores it.
    """
    if remote == "local":
        return
    from nnsight.schema.config import CONFIG

    if not (environment("NDIF_API_KEY") or CONFIG.API.APIKEY):
        raise RemoteUnavailable("remote execution needs an NDIF API key: set NDIF_API_KEY (from https://login.ndif.us)")


def register_for_remote() -> None:
    """Ships the project's code by value with remote requests (NDIF has nnsight, not NeuroScope)."""
    import nnsight

    import neuroscope

    nnsight.register(neuroscope)
