"""Harmfulness vs refusal (Zhao et al. 2025, arXiv 2507.11878) on the loaded model.

Two difference-of-means directions at every layer input: harmfulness at the last token of the user's
instruction, refusal at the last template token. Their cosine per layer (with bootstrap intervals), and
a 2-D map of held-out prompts at one layer — harmful, harmless, XSTest safe and unsafe, and harmful
requests wrapped in the project's jailbreak templates (``data/jailbreaks/templates.json``) — each
marked refused or answered by its greedy answer. A group whose two coordinates differ beyond their
intervals is where the two signals come apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.harmfulness import (
    GroupPlace,
    bootstrap_cosines,
    group_place,
    layer_cosines,
    direction_pair,
    relative_coordinates,
)
from neuroscope.analysis.metrics import Interval, is_refusal, rate_with_ci
from neuroscope.config import REPO_ROOT
from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.method.data import ExperimentData, load_experiment_data, subsample
from neuroscope.model.activations import resid_pre_at
from neuroscope.model.generate import generate
from neuroscope.services.checks import ResearchError
from neuroscope.types import Progress

JAILBREAK_TEMPLATES = REPO_ROOT / "data" / "jailbreaks" / "templates.json"
GROUPS = ("harmful", "harmless", "XSTest safe", "XSTest unsafe", "jailbreak-wrapped harmful")
MAX_PROMPTS = 256


def jailbreak_templates() -> dict[str, list[str]]:
    """The project's jailbreak wrappers by family (each holds one ``{prompt}``)."""
    families = json.loads(JAILBREAK_TEMPLATES.read_text(encoding="utf-8"))["families"]
    for name, templates in families.items():
        for t in templates:
            if t.count("{prompt}") != 1:
                raise ValueError(f"jailbreak template of {name!r} must hold one {{prompt}}: {t!r}")
    return families


def wrap(prompts: Sequence[str]) -> list[tuple[str, str]]:
    """Each prompt in one template, cycling through families and their templates: ``(family, text)``."""
    families = jailbreak_templates()
    flat = []  # first template of every family, then the second of every family, ...
    for i in range(max(map(len, families.values()))):
        flat += [(name, ts[i]) for name, ts in families.items() if i < len(ts)]
    return [(flat[i % len(flat)][0], flat[i % len(flat)][1].replace("{prompt}", p)) for i, p in enumerate(prompts)]


@dataclass
class Group:
    name: str
    texts: list[str]
    coords: Tensor  # [N, 2] (harmfulness, refusal), 0 = harmless training mean, 1 = harmful training mean
    refused: list[bool]
    place: GroupPlace
    refusal_rate: Interval
    families: list[str] = field(default_factory=list)  # jailbreak family per prompt, else empty

    def split(self) -> tuple[GroupPlace | None, GroupPlace | None]:
        """Where the answered and the refused prompts of the group sit (None for an empty side)."""
        flags = torch.tensor(self.refused, dtype=torch.bool)
        return tuple(group_place(self.coords[m]) if bool(m.any()) else None for m in (~flags, flags))


@dataclass
class HarmfulnessStudy:
    model: str
    layer: int
    layer_reason: str
    positions: dict[str, str]  # what each direction is read at, in words
    cosines: list[float]  # per layer
    cosine_lo: list[float]
    cosine_hi: list[float]
    groups: list[Group]
    data: str  # where the prompts came from
    n_train: int
    seconds: float

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    def summary(self) -> str:
        """What was observed, in sentences with their numbers."""
        c, lo, hi = self.cosines[self.layer], self.cosine_lo[self.layer], self.cosine_hi[self.layer]
        seen = [x for x in self.cosines if not math.isnan(x)]
        if math.isnan(c):
            lines = [f"At layer {self.layer} one of the two directions vanishes: pick another layer."]
        else:
            kind = "distinct directions" if hi < 0.8 else "close to one direction"
            lines = [
                f"At layer {self.layer} the harmfulness and refusal directions have cosine {c:.2f} [{lo:.2f}, "
                f"{hi:.2f}] ({kind}); across layers it runs from {min(seen):.2f} to {max(seen):.2f}."
            ]
        parted = [g for g in self.groups if g.place.apart]
        for g in parted:
            h, r = g.place.harmfulness, g.place.refusal
            lines.append(
                f"{g.name}: harmfulness {h.mean:.2f} [{h.lo:.2f}, {h.hi:.2f}] but refusal {r.mean:.2f} "
                f"[{r.lo:.2f}, {r.hi:.2f}] — the two signals come apart here."
            )
        if not parted:
            lines.append(
                "No group reads as harmful on one direction and harmless on the other beyond its intervals "
                "(coordinates: 0 = the harmless training mean, 1 = the harmful one)."
            )
        jb = self.group(GROUPS[4])
        if jb is not None:
            rate = jb.refusal_rate
            line = (
                f"Jailbreak-wrapped requests answered: {jb.refused.count(False)} of {len(jb.refused)} "
                f"(refused {rate.mean:.2f} [{rate.lo:.2f}, {rate.hi:.2f}])."
            )
            answered, refused = jb.split()
            if answered is not None and refused is not None:
                line += (
                    f" Refusal coordinate: answered {answered.refusal:.2f}, refused {refused.refusal:.2f}; "
                    f"harmfulness: answered {answered.harmfulness:.2f}, refused {refused.harmfulness:.2f}."
                )
            lines.append(line)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "layer": self.layer,
            "layer_reason": self.layer_reason,
            "positions": self.positions,
            "cosine": {
                k: [None if math.isnan(x) else x for x in v]
                for k, v in (("per_layer", self.cosines), ("lo", self.cosine_lo), ("hi", self.cosine_hi))
            },
            "groups": {
                g.name: {
                    "harmfulness": g.place.harmfulness.to_dict(),
                    "refusal": g.place.refusal.to_dict(),
                    "apart": g.place.apart,
                    "refused": g.refusal_rate.to_dict(),
                    "points": [
                        {"text": t, "x": float(x), "y": float(y), "refused": r, **({"family": f} if f else {})}
                        for t, (x, y), r, f in zip(
                            g.texts, g.coords.tolist(), g.refused, g.families or [""] * len(g.texts)
                        )
                    ],
                }
                for g in self.groups
            },
            "summary": self.summary(),
            "data": self.data,
            "n_train": self.n_train,
            "seconds": round(self.seconds, 1),
        }


def study_data(
    data: ExperimentData | None, data_dir: str, n_train: int, n_test: int, n_xstest: int, seed: int
) -> ExperimentData:
    """The prompts of a study: an experiment's own sets cut to these sizes, or the sets a data folder (or the
    Hub, or the curated pairs) offers, as the experiment would load them."""
    if data is None:
        try:
            return load_experiment_data(
                ExperimentConfig(
                    data_dir=data_dir,
                    n_train=n_train,
                    n_val=1,
                    n_test=n_test,
                    n_test_harmless=n_test,
                    n_xstest=n_xstest,
                    seed=seed,
                )
            )
        except ExperimentError as err:
            raise ResearchError(str(err)) from None
    cut = lambda ps, n: subsample(ps, n, seed) if n else []  # noqa: E731
    return dataclasses.replace(
        data,
        train_harmful=cut(data.train_harmful, n_train),
        train_harmless=cut(data.train_harmless, n_train),
        test_harmful=cut(data.test_harmful, n_test),
        test_harmless=cut(data.test_harmless, n_test),
        xstest_safe=cut(data.xstest_safe, n_xstest),
        xstest_unsafe=cut(data.xstest_unsafe, n_xstest),
    )


def check_sizes(n_train: object, n_per_group: object) -> None:
    """Raises ``ResearchError`` unless both sizes are integers in range."""
    for name, value, lo in (("training prompts per side", n_train, 2), ("prompts per group", n_per_group, 1)):
        if type(value) is not int or not lo <= value <= MAX_PROMPTS:
            raise ResearchError(f"{name} must be an integer in {lo}..{MAX_PROMPTS}, got {value!r}")


def default_site(lm: Any) -> tuple[int, int, str]:
    """(layer, position, why): the shipped direction's where the model brings one, else the middle layer and
    the last template token."""
    from neuroscope.method.artifacts import ArtifactError, load_direction
    from neuroscope.services.direction import shipped_direction_file

    path = shipped_direction_file(lm)
    if path is not None:
        try:
            meta = load_direction(path)[1]
        except ArtifactError:
            meta = {}
        layer, position = meta.get("layer"), meta.get("position", -1)
        if type(position) is not int or not -lm.n_post_instruction <= position <= -1:
            position = -1
        if type(layer) is int and 0 <= layer < lm.n_layers:
            return layer, position, "the shipped refusal direction's"
    return lm.n_layers // 2, -1, "the middle layer, the last template token"


def default_layer(lm: Any) -> tuple[int, str]:
    """The shipped direction's layer where the model brings one, else the middle layer."""
    layer, _, why = default_site(lm)
    return layer, why.replace("direction's", "direction's layer").replace(", the last template token", "")


def study_layer(lm: Any, layer: object) -> tuple[int, str]:
    """``(layer, why)``: the default layer when ``layer`` is None, else ``layer`` checked."""
    if layer is None:
        return default_layer(lm)
    if type(layer) is not int or not 0 <= layer < lm.n_layers:
        raise ResearchError(f"layer must be in 0..{lm.n_layers - 1}, got {layer!r}")
    return layer, "chosen"


class Steps:
    """One progress bar over a known number of passes: ``tick(what)`` is a pass's ``(done, of)`` callback,
    ``next()`` closes the pass."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, max(total, 1), 0

    def tick(self, what: str):
        def report(i: int, of: int) -> None:
            if self.progress is not None:
                self.progress(min(0.99, (self.done + i / max(of, 1)) / self.total), what)

        return report

    def next(self) -> None:
        self.done += 1

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(1.0, "done")


def two_position_acts(lm: Any, texts: list[str], steps: Steps, what: str, batch_size: int) -> Tensor:
    """Every layer's input at the instruction's last token and the last template token: [N, L, 2, d]."""
    out = resid_pre_at(lm, texts, [lm.last_instruction_position, -1], batch_size, progress=steps.tick(what))
    steps.next()
    return out


def harmfulness_vs_refusal(
    lm: Any,
    n_train: int = 64,
    n_per_group: int = 32,
    layer: int | None = None,
    max_new_tokens: int = 24,
    data_dir: str = "",
    seed: int = 0,
    n_boot: int = 500,
    batch_size: int = 16,
    progress: Progress | None = None,
    data: ExperimentData | None = None,
) -> HarmfulnessStudy:
    """Runs the study. Raises ``ResearchError`` for a model without a chat template or bad sizes."""
    start = time.perf_counter()
    if not lm.has_chat_template:
        raise ResearchError(
            "harmfulness vs refusal needs a chat model: the instruction's last token and the template "
            "tokens after it are different positions only under a chat template"
        )
    check_sizes(n_train, n_per_group)
    layer, reason = study_layer(lm, layer)
    data = study_data(data, data_dir, n_train, n_per_group, n_per_group, seed)
    texts = lambda ps: [p.instruction for p in ps]  # noqa: E731
    jailbroken = wrap(texts(data.test_harmful))
    prompts = {
        GROUPS[0]: texts(data.test_harmful),
        GROUPS[1]: texts(data.test_harmless),
        GROUPS[2]: texts(data.xstest_safe),
        GROUPS[3]: texts(data.xstest_unsafe),
        GROUPS[4]: [t for _, t in jailbroken],
    }
    prompts = {k: v for k, v in prompts.items() if v}
    steps = Steps(progress, 2 + 2 * len(prompts))  # activation passes + generation passes
    train_h = two_position_acts(lm, texts(data.train_harmful), steps, "activations: harmful training", batch_size)
    train_b = two_position_acts(lm, texts(data.train_harmless), steps, "activations: harmless training", batch_size)
    cos = layer_cosines(direction_pair(train_h, train_b))
    lo, hi = bootstrap_cosines(train_h, train_b, n_boot=n_boot, seed=seed)
    groups = []
    for name, items in prompts.items():
        acts = two_position_acts(lm, items, steps, f"activations: {name}", batch_size)
        coords = relative_coordinates(acts, train_h, train_b, layer)
        answers = generate(
            lm, items, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=steps.tick(f"answers: {name}")
        )
        steps.next()
        refused = [is_refusal(a) for a in answers]
        groups.append(
            Group(
                name=name,
                texts=items,
                coords=coords,
                refused=refused,
                place=group_place(coords, seed=seed),
                refusal_rate=rate_with_ci(refused, seed=seed),
                families=[f for f, _ in jailbroken] if name == GROUPS[4] else [],
            )
        )
    steps.finish()
    after = lm.token_strings(lm.post_instruction_ids[:1])[0]
    return HarmfulnessStudy(
        model=lm.name,
        layer=layer,
        layer_reason=reason,
        positions={
            "harmfulness": f"the instruction's last token (position {lm.last_instruction_position}, just before {after!r})",
            "refusal": "the last template token (position -1)",
        },
        cosines=cos.tolist(),
        cosine_lo=lo.tolist(),
        cosine_hi=hi.tolist(),
        groups=groups,
        data=data.description,
        n_train=min(len(data.train_harmful), len(data.train_harmless)),
        seconds=time.perf_counter() - start,
    )
