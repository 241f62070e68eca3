"""Load a tokenizer + Hugging Face causal LM once and wrap it with nnsight.

``load_model`` accepts a hub id, a local directory, or ``"demo"`` (the bundled model organism in
``assets/demo-model``). ``load_with_fallback`` is what the app uses: it tries the requested model
and, when that cannot be loaded (offline, gated, unsupported, too big for this machine), falls back
to the demo model and says why. ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroscope.model import _compat  # noqa: F401  (must precede nnsight)

import torch
from nnsight import TransformersModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from neuroscope.errors import UserError
from neuroscope.config import DEMO_MODEL_ALIAS, DEMO_MODEL_DIR
from neuroscope.model.access import Access, UnsupportedModelError, family_of
from neuroscope.model.interventions import Tracing
from neuroscope.model.chat import CHAT_TEMPLATE_KWARGS, PromptError, clean_instruction


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded; the message says why in words a user can act on."""


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

    @property
    def is_demo(self) -> bool:
        return self.source in ("demo", "tiny")

    # ---- chat formatting ---------------------------------------------------------------------
    def encode_chat(self, instructions: list[str], max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Applies the chat template once (one BOS) and left-pads a batch.

        Args:
            instructions: User messages, already validated.
            max_tokens: Reject any prompt longer than this many tokens.

        Returns:
            ``(input_ids [B, S] long, attention_mask [B, S] long)`` on the model's device.

        Raises:
            PromptError: A prompt is longer than ``max_tokens``.
        """
        conversations = [[{"role": "user", "content": text}] for text in instructions]
        enc = self.tokenizer.apply_chat_template(
            conversations, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True,
            **CHAT_TEMPLATE_KWARGS,
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if max_tokens is not None:
            lengths = mask.sum(-1)
            too_long = (lengths > max_tokens).nonzero().flatten().tolist()
            if too_long:
                raise PromptError(
                    f"the prompt is {int(lengths[too_long[0]])} tokens long with the chat template; "
                    f"the limit is {max_tokens} tokens"
                )
        return ids.to(self.device), mask.to(self.device)

    def encode_instruction(self, text: object, max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validates one user instruction and encodes it. Raises ``PromptError`` with a clear message."""
        return self.encode_chat([clean_instruction(text)], max_tokens=max_tokens)

    @property
    def n_post_instruction(self) -> int:
        """Number of template tokens after the instruction (the 'post-instruction' positions)."""
        return len(self.post_instruction_ids)

    @property
    def post_instruction_ids(self) -> list[int]:
        marker = "\x00NEUROSCOPE_INSTRUCTION\x00"
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": marker}], add_generation_prompt=True, tokenize=False, **CHAT_TEMPLATE_KWARGS
        )
        suffix = text.split(marker, 1)[1]
        return self.tokenizer(suffix, add_special_tokens=False)["input_ids"]

    def token_strings(self, ids: torch.Tensor | list[int]) -> list[str]:
        """Each id decoded on its own (``[S]`` ids -> ``S`` strings)."""
        return [self.tokenizer.decode([int(i)]) for i in ids]

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
            raise RemoteUnavailable(f"{what} needs the model's weights on this machine; in remote mode (NDIF) only "
                                    "traces run (answers, activations, interventions, patching)")

    def o_proj_weight(self, layer: int) -> torch.Tensor:
        """``W_O`` of a layer, ``[d_model, n_heads * d_head]``, on the model's device (no copy)."""
        self.require_weights("per-head contributions (W_O)")
        self.check_layer(layer)
        return self.access.o_proj(self.hf, layer).weight

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
        ModelLoadError: The family is unsupported or the tokenizer has no chat template.
    """
    try:
        access = Access(family_of(hf.config.model_type))
    except UnsupportedModelError as err:
        raise ModelLoadError(str(err)) from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"{name}: the tokenizer has no chat template; NeuroScope needs a chat model")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    hf.eval()
    hf.requires_grad_(False)  # gradients flow to inputs only; weights never collect .grad
    return LoadedModel(nn=nn if nn is not None else TransformersModel(hf, tokenizer=tokenizer), hf=hf, tokenizer=tokenizer,
                       access=access, name=name, source=source)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but no CUDA GPU is available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def estimate_parameters(config) -> int:
    """Approximate parameter count of a Llama-like decoder from its config alone."""
    d, L = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    attn = d * heads * d_head * 2 + d * kv * d_head * 2
    mlp = 3 * d * config.intermediate_size
    embed = config.vocab_size * d * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    return L * (attn + mlp) + embed


def available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _resolve_spec(spec: str) -> tuple[str, str]:
    """Maps a user's model spec to ``(path_or_id, source)``."""
    if spec.strip() == "":
        raise ModelLoadError("no model given")
    if spec == DEMO_MODEL_ALIAS:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(f"the bundled demo model is missing from {DEMO_MODEL_DIR}")
        return str(DEMO_MODEL_DIR), "demo"
    if Path(spec).exists():
        if not (Path(spec) / "config.json").is_file():
            raise ModelLoadError(f"{spec} is not a model directory (no config.json)")
        return spec, "local"
    return spec, "hub"


def load_remote(spec: str) -> LoadedModel:
    """A hub model that runs on NDIF: config and tokenizer from the hub, weights never downloaded.

    Every trace then goes to NDIF (``remote=True``); views that need local weights say so.

    Raises:
        RemoteUnavailable: Not a hub id, no API key, or the hub unreachable.
    """
    path, source = _resolve_spec(spec)
    if source != "hub":
        raise RemoteUnavailable(f"remote execution runs models hosted on NDIF, named by their hub id; {spec!r} is a "
                                "local model")
    check_remote(True)
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable():
        raise RemoteUnavailable(f"remote execution needs the Hugging Face Hub for {spec}'s config and tokenizer, "
                                "and it cannot be reached from here")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        nn = TransformersModel(path, tokenizer=tokenizer, task="text-generation")  # meta weights: nothing downloaded
    except Exception as err:
        raise ModelLoadError(_load_error(spec, err)) from err
    lm = wrap(nn._module, tokenizer, name=spec, source="remote", nn=nn)
    lm.remote = True
    register_for_remote()
    return lm


def load_model(spec: str, device: str = "auto", dtype: str = "auto", memory_fraction: float = 0.9) -> LoadedModel:
    """Loads a decoder-only chat model and wraps it for tracing.

    Args:
        spec: Hub id (e.g. ``meta-llama/Llama-3.2-3B-Instruct``), local directory, or ``"demo"``.
        device: ``"auto"`` (GPU if present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"`` (bf16 on GPU, fp32 on CPU) or an explicit float type.
        memory_fraction: Refuse to load when the weights need more than this share of free memory.

    Returns:
        The loaded model, eager attention (attention maps need it), weights frozen.

    Raises:
        ModelLoadError: The model cannot be found, downloaded, is not supported, or does not fit.
    """
    path, source = _resolve_spec(spec)
    local_only = source != "hub" or os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only, trust_remote_code=False)
    except Exception as err:  # hub errors come in many types; the message is what matters
        raise ModelLoadError(_load_error(spec, err, "the config of ")) from err
    try:
        family_of(getattr(config, "model_type", "?"))
    except UnsupportedModelError as err:
        raise ModelLoadError(str(err)) from None
    need = estimate_parameters(config) * torch.tensor([], dtype=torch_dtype).element_size()
    spread = placement(dev, need, memory_fraction)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only, trust_remote_code=False)
        hf = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=local_only, trust_remote_code=False, dtype=torch_dtype,
            attn_implementation="eager", **({"device_map": "auto"} if spread else {}),
        )
        if not spread:
            hf = hf.to(dev)
    except Exception as err:
        raise ModelLoadError(_load_error(spec, err)) from err
    name = "demo (bundled NeuroScope model organism)" if source == "demo" else spec
    return wrap(hf, tokenizer, name=name, source=source)


def load_with_fallback(spec: str, fallback: str = DEMO_MODEL_ALIAS, device: str = "auto", dtype: str = "auto") -> tuple[LoadedModel, str | None]:
    """Loads ``spec``; if that fails, loads ``fallback`` and explains why.

    Returns:
        ``(model, notice)`` where ``notice`` is ``None`` when ``spec`` loaded, else a sentence for
        the top of the page.

    Raises:
        ModelLoadError: Neither model could be loaded.
    """
    try:
        return load_model(spec, device=device, dtype=dtype), None
    except ModelLoadError as err:
        if not fallback or fallback == spec:
            raise
        reason = str(err)
    if fallback == DEMO_MODEL_ALIAS and not (DEMO_MODEL_DIR / "config.json").is_file():
        from neuroscope.model.tiny import build_tiny_model

        lm = build_tiny_model()
        return lm, f"Could not load {spec}: {reason}. Running on an UNTRAINED tiny random Llama (wiring only, no real behaviour)."
    lm = load_model(fallback, device=device, dtype=dtype)
    return lm, f"Could not load {spec}: {reason}. Running on {lm.name} instead."


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the hub's name resolves within ``timeout`` seconds.

    Without this check an offline machine spends ~30 s in the hub client's retries before the
    cached-files error; with it, an unreachable hub falls straight to the local cache.
    """
    import socket

    result: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def placement(dev: torch.device, need: int, memory_fraction: float = 0.9) -> bool:
    """Whether the weights must be spread with ``device_map="auto"`` (accelerate) instead of one ``.to(dev)``.

    On a GPU too small for the weights, accelerate spreads them over every GPU and then CPU RAM;
    on the CPU there is nowhere to spread to.

    Raises:
        ModelLoadError: The weights do not fit even spread out.
    """
    have = available_memory_bytes(dev)
    if need <= memory_fraction * have:
        return False
    if dev.type == "cuda":
        total = sum(available_memory_bytes(torch.device("cuda", i)) for i in range(torch.cuda.device_count()))
        total += available_memory_bytes(torch.device("cpu"))
        if need <= memory_fraction * total:
            return True
        have = total
    raise ModelLoadError(f"the weights need about {need / 2**30:.1f} GiB but only {have / 2**30:.1f} GiB is free "
                         f"on {dev}{' and the other devices' if dev.type == 'cuda' else ''}")


GATED_HELP = ("it is gated or needs authorisation on the Hugging Face Hub: accept its licence on the model's page, "
              "then set HF_TOKEN to a read token (export HF_TOKEN=hf_...; in a Space, a secret named HF_TOKEN)")


def _load_error(spec: str, err: BaseException, what: str = "") -> str:
    """The user's sentence for a failed load: a gated or unauthorised repository names HF_TOKEN."""
    from huggingface_hub.errors import GatedRepoError

    text = f"{type(err).__name__}: {err}"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, GatedRepoError) or status in (401, 403) or any(
            s in text for s in ("401 Client Error", "403 Client Error", "gated repo", "Unauthorized")):
        return f"cannot load {what}{spec!r}: {GATED_HELP}"
    return f"cannot load {what}{spec!r}: {_first_line(err)}"


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

    if not (os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY):
        raise RemoteUnavailable("remote execution needs an NDIF API key: set NDIF_API_KEY (from https://login.ndif.us)")


def register_for_remote() -> None:
    """Ships the project's code by value with remote requests (NDIF has nnsight, not NeuroScope)."""
    import nnsight

    import neuroscope

    nnsight.register(neuroscope)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
