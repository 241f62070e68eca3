"""Behaviours: what a direction is a direction *of*.

A behaviour is two prompt sets (the prompts that show it and their matched counterparts), an
answer judge, and the first answer tokens whose probability scores it before any generation.
Refusal (harmful vs harmless prompts, refusal phrases) is the built-in preset; other behaviours
are JSON files in ``data/behaviours/`` written for this project. The direction workflow (compute,
ablate, add, evaluate) takes any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from neuroscope.config import REPO_ROOT
from neuroscope.errors import UserError
from neuroscope import jsonio

BEHAVIOURS_DIR = REPO_ROOT / "data" / "behaviours"
REFUSAL = "refusal"


class BehaviourError(UserError):
    """An unknown or malformed behaviour; the message says which."""


@dataclass(frozen=True)
class Behaviour:
    """A named behaviour with its judge and prompt sets.

    ``positive`` prompts show the behaviour (harmful prompts, for refusal), ``negative`` prompts are
    their matched counterparts. ``judge(answer)`` says whether an answer shows it; ``first_tokens``
    are the phrases whose first tokens make up the logit score (log-odds of starting that way).
    """

    name: str
    title: str
    positive: str  # e.g. "harmful"
    negative: str  # e.g. "harmless"
    shows: str  # what an answer that shows it does, e.g. "refuses"
    lacks: str  # what an answer that does not show it does, e.g. "answers"
    judge: Callable[[str], bool] = field(repr=False, compare=False)
    first_tokens: tuple[str, ...] = ()
    about: str = ""
    pairs: tuple[tuple[str, str], ...] = ()  # (positive, negative) prompts; empty for refusal (its own sets)

    def token_ids(self, tokenizer: object) -> list[int]:
        """First tokens of ``first_tokens`` (special tokens excluded)."""
        from neuroscope.model.chat import first_token_ids, refusal_token_ids

        if self.name == REFUSAL:
            return refusal_token_ids(tokenizer)
        specials = set(getattr(tokenizer, "all_special_ids", []) or [])
        ids = [i for i in first_token_ids(tokenizer, self.first_tokens) if i not in specials]
        if not ids:
            raise BehaviourError(f"the tokenizer encodes none of {self.name}'s first tokens")
        return ids


def _refusal() -> Behaviour:
    from neuroscope.analysis.metrics import REFUSAL_OPENINGS, REFUSAL_PHRASES, is_refusal

    return Behaviour(
        name=REFUSAL,
        title="Refusal",
        positive="harmful",
        negative="harmless",
        shows="refuses",
        lacks="answers",
        judge=is_refusal,
        first_tokens=REFUSAL_PHRASES + REFUSAL_OPENINGS,
        about="Arditi et al. (2024): harmful vs harmless instructions; an answer with a refusal phrase refuses.",
    )


# ---- the language judge (the French preset) ------------------------------------------------------

FRENCH_WORDS = frozenset(
    "le la les est et de des un une du pour dans je il elle vous nous avec sur qui que pas au aux "
    "ce cette sont très plus mais ou en son sa ses leur votre mon ma mes c'est l'".split()
)
ENGLISH_WORDS = frozenset(
    "the is and of a an to in it you for with on that this are be i not or but very more was "
    "your my their his her can will".split()
)
FRENCH_FIRST = (
    "Le",
    "La",
    "Les",
    "L'",
    "Voici",
    "Bien",
    "Bonjour",
    "Pour",
    "Il",
    "Elle",
    "C'est",
    "Je",
    "Un",
    "Une",
    "Cette",
    "Ce",
    "Oui",
    "Dans",
    "Vous",
    "Nous",
    "Quand",
    "Chaque",
    "Mon",
    "Ma",
    "En",
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-zàâçéèêëîïôûùüÿœæ']+", text.lower())


def is_french(answer: str) -> bool:
    """More French than English function words (an empty or wordless answer is not French)."""
    ws = words(answer)
    fr = sum(w in FRENCH_WORDS or w.startswith(("l'", "d'", "c'", "qu'", "n'", "j'")) for w in ws)
    en = sum(w in ENGLISH_WORDS for w in ws)
    return fr > en


JUDGES: dict[str, Callable[[str], bool]] = {"french": is_french}
FIRST_TOKENS: dict[str, tuple[str, ...]] = {"french": FRENCH_FIRST}


def _from_file(name: str) -> Behaviour:
    path = BEHAVIOURS_DIR / f"{name}.json"
    try:
        record = jsonio.loads(path.read_text(encoding="utf-8"))
        questions = record["questions"]
        pairs = tuple((q + record["positive_suffix"], q + record["negative_suffix"]) for q in questions)
        return Behaviour(
            name=name,
            title=record["title"],
            positive=record["positive"],
            negative=record["negative"],
            shows=record["shows"],
            lacks=record["lacks"],
            judge=JUDGES[name],
            first_tokens=FIRST_TOKENS[name],
            about=record.get("about", ""),
            pairs=pairs,
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BehaviourError(f"behaviour {name!r} cannot be read from data/behaviours/{name}.json ({err})") from None


def behaviour_names() -> list[str]:
    """Refusal first, then every bundled behaviour file that has a judge."""
    files = sorted(p.stem for p in BEHAVIOURS_DIR.glob("*.json")) if BEHAVIOURS_DIR.is_dir() else []
    return [REFUSAL] + [n for n in files if n in JUDGES]


@lru_cache(maxsize=None)
def get_behaviour(name: str = REFUSAL) -> Behaviour:
    """The behaviour called ``name``.

    Raises:
        BehaviourError: Unknown name or a malformed file.
    """
    if name == REFUSAL:
        return _refusal()
    if name not in behaviour_names():
        raise BehaviourError(f"unknown behaviour {name!r}; choose one of: {', '.join(behaviour_names())}")
    return _from_file(name)
