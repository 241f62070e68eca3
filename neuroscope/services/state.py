"""The current direction's state: ``DirectionResult`` (a direction and everything its views show), the
store that keeps one per model (per visitor in public mode), and the visitor a handler runs for.

Every service imports this module; it imports no other service, so the services form no circle.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from neuroscope.analysis.directions import CandidateScores, Selection, unit
from neuroscope.analysis.heads import HeadStats
from neuroscope.behaviours import REFUSAL
from neuroscope.services.checks import ResearchError


@dataclass
class DirectionResult:
    """The current refusal direction of a model and everything its views show.

    Shapes: ``L`` layers, ``P`` post-instruction positions, ``H`` heads, ``D`` head dim, ``d`` d_model.
    """

    model_name: str
    direction: Tensor  # [d] float32, unnormalised difference of means (its norm is the addition scale)
    layer: int  # the layer whose input it was read from (and where addition steers by default)
    position: int  # negative post-instruction position it was read at
    origin: str  # "computed" or "loaded"
    description: str  # data it was computed / described with
    reason: str  # why this candidate (selection sentence, or the file's metadata)
    positive_proj: Tensor  # [N, L] held-out prompts showing the behaviour (harmful), last position, on the unit dir.
    negative_proj: Tensor  # [M, L] held-out prompts that do not (harmless)
    layer_cosines: Tensor  # [K, K] cosine between the per-layer candidates (+ the loaded one)
    cosine_labels: list[str]  # [K]
    heads: HeadStats  # THE head Δ ([L, H]) and the harmless baseline of the per-prompt callout
    head_means: Tensor  # [L, H, D] mean z over the harmless training prompts (head mean ablation)
    mean_target: Tensor  # [L] mean projection of harmless prompts (mean-ablation target)
    scores: CandidateScores | None = None  # selection scores ([L, P]); None for a loaded direction
    selection: Selection | None = None
    position_labels: list[str] = field(default_factory=list)
    kl_threshold: float = 0.1
    layer_cut: int | None = None
    head_prompts: tuple[list[str], list[str]] = ((), ())  # (harmful, harmless) behind ``heads``: patching pairs
    behaviour: str = REFUSAL  # what the direction is a direction of (``neuroscope.behaviours``)
    causal: dict[str, Any] | None = None  # the head attribution record, once computed (``heads_record``)
    created: float = field(default_factory=time.time)

    @property
    def unit_direction(self) -> Tensor:
        return unit(self.direction)

    @property
    def head_delta(self) -> Tensor:
        """[L, H] Δ along the direction (``HeadStats.delta_projection``; ``RANKING_RULE``)."""
        return self.heads.delta_projection.float()

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the direction (no local paths)."""
        out = {
            "model": self.model_name,
            "origin": self.origin,
            "layer": self.layer,
            "position": self.position,
            "norm": round(float(self.direction.norm()), 6),
            "data": self.description,
            "reason": self.reason,
        }
        if self.selection is not None:
            out.update(
                bypass=round(self.selection.bypass, 6),
                induce=round(self.selection.induce, 6),
                kl=round(self.selection.kl, 6),
            )
        gap = (self.positive_proj.mean(0) - self.negative_proj.mean(0)).tolist()
        out["separation_by_layer"] = [round(g, 6) for g in gap]
        return out


# The visitor a handler runs for (the app sets it from gradio's session hash; None outside a request).
current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("neuroscope_session", default=None)


class DirectionStore:
    """The current direction per model, shared, or per visitor session in public mode (thread-safe).

    ``per_session=False`` (a local app): one direction per model that every tab and window shares.
    ``per_session=True`` (public mode): what a visitor computes or loads is theirs alone, kept for
    the ``max_sessions`` most recent visitors; every visitor sees the shared direction (the one the
    app started with) until they set their own, and no visitor can change it.
    """

    def __init__(self, per_session: bool = False, max_sessions: int = 64) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, DirectionResult] = {}
        self._sessions: OrderedDict[tuple[str, str], DirectionResult] = OrderedDict()
        self._evicted: OrderedDict[tuple[str, str], None] = OrderedDict()  # dropped for room, not yet told
        self.per_session = per_session
        self.max_sessions = max_sessions

    def _session(self) -> str | None:
        return current_session.get() if self.per_session else None

    def set(self, result: DirectionResult) -> None:
        """Sets the current direction: the visitor's own in public mode, else the shared one."""
        session = self._session()
        with self._lock:
            if session is None:
                self._shared[result.model_name] = result
                return
            key = (result.model_name, session)
            self._sessions[key] = result
            self._sessions.move_to_end(key)
            self._evicted.pop(key, None)
            while len(self._sessions) > self.max_sessions:
                dropped, _ = self._sessions.popitem(last=False)
                self._evicted[dropped] = None
            while len(self._evicted) > 16 * self.max_sessions:  # the marks are bounded too
                self._evicted.popitem(last=False)

    def set_shared(self, result: DirectionResult) -> None:
        """The direction every visitor starts with (the app's start-up direction)."""
        with self._lock:
            self._shared[result.model_name] = result

    def forget(self, session: str) -> None:
        """Drops a visitor's direction (their page was closed)."""
        with self._lock:
            for key in [k for k in self._sessions if k[1] == session]:
                del self._sessions[key]
            for key in [k for k in self._evicted if k[1] == session]:
                del self._evicted[key]

    def peek(self, lm: Any) -> DirectionResult | None:
        session = self._session()
        with self._lock:
            if session is not None and (lm.name, session) in self._sessions:
                return self._sessions[(lm.name, session)]
            return self._shared.get(lm.name)

    def get(self, lm: Any) -> DirectionResult:
        """The current direction, or a ``ResearchError`` telling the user how to get one, or (once) that
        their own direction was dropped to make room for other visitors'."""
        key = (lm.name, self._session())
        with self._lock:
            dropped = key in self._evicted
            self._evicted.pop(key, None)
            shared = self._shared.get(lm.name) is not None
        if dropped:
            raise ResearchError(
                f"your direction was dropped to make room: the app keeps the directions of the {self.max_sessions} "
                "most recent visitors who set one, and more have set one since. "
                + ("The start-up direction is current again" if shared else "You have none now")
                + ": compute or load yours again in the 'Direction' tab"
            )
        found = self.peek(lm)
        if found is None:
            raise ResearchError("no direction yet: compute one (or load a saved one) in the 'Direction' tab first")
        return found
