"""What every tab shares: the app context, the model banner and user-facing error handling."""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import torch

from neuroscope.behaviours import REFUSAL, get_behaviour
from neuroscope.config import Settings
from neuroscope.errors import UserError
from neuroscope.model.loader import GATED_HELP
from neuroscope.services import DirectionStore, current_session
from neuroscope.ui.sessions import RunLedger

log = logging.getLogger("neuroscope.ui")

_INSTANCE_DIR: list[Path] = []


def instance_dir() -> Path:
    """This app process's own scratch folder (experiment runs, direction downloads), made on first use and
    removed when the process exits: two app instances on one machine never share, list or prune each
    other's files."""
    if not _INSTANCE_DIR:
        folder = Path(tempfile.mkdtemp(prefix="neuroscope-app-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _INSTANCE_DIR.append(folder)
    return _INSTANCE_DIR[0]


# Errors caused by what the user typed or chose: shown as a message, the app keeps serving. Every
# other exception is a bug: logged with its traceback, reported as a short generic message.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)


@dataclass
class AppContext:
    """The one loaded model and the settings, shared by every session (the model's lock guards it)."""

    lm: Any
    settings: Settings
    notice: str | None = None  # why the requested model was not loaded, if it was not
    directions: DirectionStore = field(default_factory=DirectionStore)  # current refusal direction(s)
    shipped: Any = None  # the bundled model's shipped DirectionResult (read-only), for "Restore"
    runs: RunLedger = field(default=None)  # type: ignore[assignment]  # every visitor's kept runs, one budget

    def __post_init__(self) -> None:
        if self.runs is None:
            self.runs = RunLedger(self.settings.runs_memory_mb)
        # Public mode: a visitor's direction is theirs alone; the start-up direction is shared and read-only.
        self.directions.per_session = bool(self.settings.public)


def behaviour_words(name: str | None = None) -> dict[str, str]:
    """The words the tabs' texts use for a behaviour (``str.format`` fields of their guides).

    Refusal keeps the paper's words (harmful, harmless, refusal score); another behaviour says its
    own groups, judge and first tokens, so no text calls a French direction a refusal direction.
    """
    b = get_behaviour(name or REFUSAL)
    if b.name == REFUSAL:
        return {
            "lead": "Refusal is mediated by **one direction** in the residual stream (Arditi et al. 2024).",
            "behaviour": "refusal",
            "the_behaviour": "refusal",
            "positive": "harmful",
            "negative": "harmless",
            "score": "refusal score",
            "tokens": "a refusal token",
            "ablated_expect": "a refused harmful prompt should now be answered",
            "added_expect": "a harmless prompt should now be refused",
            "judge": "a refusal-phrase check on the answer",
            "explorer": " (the same number as in the Explorer)",
        }
    first = ", ".join(b.first_tokens[:4]) + (", …" if len(b.first_tokens) > 4 else "")
    return {
        "lead": f"**{b.title}**: is this behaviour mediated by **one direction** in the residual stream, as "
        "refusal is (Arditi et al. 2024)?",
        "behaviour": b.name,
        "the_behaviour": "the behaviour",
        "positive": f"*{b.positive}*",
        "negative": f"*{b.negative}*",
        "score": f"{b.name} score",
        "tokens": f"one of the behaviour's first tokens ({first})",
        "ablated_expect": f"on the *{b.positive}* side, where the baseline {b.shows}, the ablated run should not",
        "added_expect": f"on the *{b.negative}* side, where the baseline {b.lacks}, the added run should switch",
        "judge": f"the behaviour's judge on the answer ({b.shows}, or not)",
        "explorer": "",
    }


def banner_markdown(ctx: AppContext) -> str:
    """The banner naming the model in use (and why, when it is a fallback)."""
    lm = ctx.lm
    if lm.source == "tiny":
        kind = "⚠️ untrained tiny random model: wiring demo only, its behaviour means nothing"
    elif lm.source == "demo":
        kind = "bundled demo model organism: a 6-layer Llama-3.2-shaped model trained by NeuroScope to refuse"
    elif lm.source == "smollm2-refusal":
        kind = "a real pretrained chat model that NeuroScope safety-tuned (LoRA) to refuse harmful requests"
    else:
        kind = "real model"
    name = lm.name if not ctx.settings.public or lm.source == "hub" else lm.name.split("/")[-1]
    text = (
        f"**Model:** `{name}` — {kind} · {lm.n_layers} layers × {lm.n_heads} heads "
        f"({lm.n_kv_heads} KV heads), d_model {lm.d_model}, on {lm.device.type}"
    )
    if ctx.notice:
        notice = ctx.notice if not ctx.settings.public else ctx.notice.split(":")[0] + "."
        if ctx.settings.public and "HF_TOKEN" in ctx.notice:  # the operator's fix, no path in it
            notice = notice[:-1] + ": " + GATED_HELP + "."
        text = f"> ⚠️ {notice}\n\n" + text
    return text


_PATH = re.compile(r"(?<![\w.])(?:/[^\s/'\"`:,;()]+)+/([^\s/'\"`:,;()]+)")
_hide_paths = False


def hide_local_paths(enabled: bool) -> None:
    """Public mode: error messages show file names, never the server's folders."""
    global _hide_paths
    _hide_paths = bool(enabled)


def scrub_paths(text: str) -> str:
    """``/srv/data/x.csv: bad row`` -> ``x.csv: bad row``."""
    return _PATH.sub(r"\1", text)


def zero_gpu() -> Any:
    """The Hugging Face ``spaces`` package when installed (a ZeroGPU Space), else None."""
    try:
        import spaces  # noqa: PLC0415  (only where the Space installs it)
    except ImportError:
        return None
    return spaces


def on_gpu(fn: Callable[..., Any], duration: int = 120) -> Callable[..., Any]:
    """Wraps a model-running handler with ``spaces.GPU`` so ZeroGPU attaches a GPU for the call.

    A no-op where ``spaces`` is not installed (a local run, CI, a CPU Space). ``duration`` is the
    longest call in seconds ZeroGPU should plan for (the Experiment tab asks for more).
    """
    spaces = zero_gpu()
    if spaces is None:
        return fn
    wrapped = spaces.GPU(duration=duration)(fn)
    wrapped.__neuroscope_gpu__ = duration  # for the tests and for anyone inspecting the app
    return wrapped


def session_scoped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Runs ``fn`` for the visitor who triggered it: gradio passes the request (as an extra last
    positional argument, by its annotation), whose session hash selects that visitor's own direction in
    public mode (``services.current_session``)."""
    signature = inspect.signature(fn)
    positional = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in signature.parameters.values()):
        return fn  # not a gradio handler's plain signature: leave it alone

    def split(args: tuple, kwargs: dict) -> tuple[tuple, str | None]:
        request = kwargs.pop("request", None)
        if len(args) > len(positional):
            args, request = args[:-1], args[-1]
        return args, getattr(request, "session_hash", None)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            # gradio may resume a generator in another thread (another context): set the session at every step
            args, session = split(args, kwargs)
            steps = fn(*args, **kwargs)
            while True:
                current_session.set(session)
                try:
                    item = next(steps)
                except StopIteration:
                    return
                yield item
    else:

        @functools.wraps(fn)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            args, session = split(args, kwargs)
            token = current_session.set(session)
            try:
                return fn(*args, **kwargs)
            finally:
                current_session.reset(token)

    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)
    scoped.__signature__ = signature.replace(parameters=[*positional, request])
    scoped.__annotations__ = {"request": gr.Request}  # what gradio reads to pass the request in
    del scoped.__wrapped__  # gradio must see this signature, not fn's
    return scoped


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a user error into a ``gr.Error`` message; anything else is logged and reported briefly.

    Generator handlers (streamed outputs) stay generators, with the same handling while they run.
    """

    def translate(err: BaseException) -> gr.Error:
        if isinstance(err, torch.OutOfMemoryError):  # this request was too big; the next one may not be
            log.warning("out of memory in %s: %s", fn.__name__, str(err).splitlines()[0] if str(err) else "")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return gr.Error(
                "the model ran out of memory on this request: try a shorter prompt, a shorter answer or "
                "fewer prompts; the app is still running"
            )
        if isinstance(err, USER_ERRORS):
            return gr.Error(scrub_paths(str(err)) if _hide_paths else str(err))
        log.error("unexpected error in %s", fn.__name__, exc_info=err)
        return gr.Error(f"internal error ({type(err).__name__}); the app is still running")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # keep serving; the log has the traceback
                raise translate(err) from None

        return session_scoped(streaming)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # keep serving; the log has the traceback
            raise translate(err) from None

    return session_scoped(wrapper)


def _strict_number(label: str | None, payload: Any) -> None:
    """The API's numbers are JSON numbers: not text, not true/false, not null, not NaN or infinite."""
    import math

    name = label or "this input"
    if isinstance(payload, bool) or not isinstance(payload, (int, float)):
        raise gr.Error(f"{name} must be a number, got {str(payload)[:40] if payload is not None else 'nothing'}")
    if isinstance(payload, float) and not math.isfinite(payload):
        raise gr.Error(f"{name} must be a finite number, got {payload}")


class NumberSlider(gr.Slider):
    """A slider whose API refuses what is not a finite number (gradio's own fails on text with no message)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        _strict_number(self.label, payload)
        whole = float(self.step).is_integer() and float(self.minimum).is_integer()
        if whole and not float(payload).is_integer():  # gradio would round 2.5 to a step: refused instead
            raise gr.Error(f"{self.label or 'this input'} must be a whole number, got {payload}")
        return super().preprocess(payload)


class NumberInput(gr.Number):
    """A number box whose API refuses what is not a finite number (gradio's own turns the text "3" into 3)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        _strict_number(self.label, payload)
        if self.precision == 0 and not float(payload).is_integer():  # gradio would round 2.5 to 2: refused instead
            raise gr.Error(f"{self.label or 'this input'} must be a whole number, got {payload}")
        return super().preprocess(payload)


class TextInput(gr.Textbox):
    """A textbox whose API refuses what is not text (gradio's own turns a list into the text "['a', 'b']").

    ``is_template`` makes gradio draw it with the Textbox's own front end (it has none of its own).
    """

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is not None and not isinstance(payload, str):
            raise gr.Error(f"the prompt must be text, got {type(payload).__name__}")
        return super().preprocess(payload)
