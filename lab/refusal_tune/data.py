"""The tuning set: harmful training prompts refused, harmless ones answered as the base model answers.

Sources (training splits only, from the research data folder):
- harmful: Arditi et al.'s ``harmful_train`` split (AdvBench / MaliciousInstruct / TDC2023 origins),
  each prompt seen in ``HARMFUL_WORDINGS`` wordings with a different composed refusal;
- harmless: a seeded subsample of Arditi et al.'s ``harmless_train`` split (Alpaca), answered with
  the base model's own greedy answer (self-distillation: the tuning should change refusal, not
  the rest of what the model does);
- borderline: the project's own safe-but-scary-sounding prompts (``texts.BORDERLINE``), answered
  with the base model's own greedy answer.

Any training prompt that near-duplicates an evaluation prompt (JailbreakBench, HarmBench val and
test, Arditi's val and test splits, XSTest) is dropped; ``check_no_overlap`` is what the tests run.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from lab.refusal_tune import texts
from neuroscope.prompts import Prompt, load_source
from neuroscope.prompt_checks import near_duplicates, normalise

# Every prompt set an evaluation of this project reads: training may touch none of them.
EVALUATION_SOURCES = (
    "jailbreakbench",
    "jailbreakbench_benign",
    "harmbench_val",
    "harmbench_test",
    "arditi_harmful_val",
    "arditi_harmful_test",
    "arditi_harmless_val",
    "arditi_harmless_test",
    "xstest",
)
HARMFUL_WORDINGS = 2
NEAR_DUPLICATE = 0.8


@dataclass(frozen=True)
class Example:
    """One training conversation: a user prompt and the assistant answer to learn (token ids for
    distilled answers, text for written refusals)."""

    kind: str  # "harmful" | "harmless" | "borderline"
    prompt: str
    answer_text: str
    answer_ids: tuple[int, ...] = ()  # the base model's own tokens (distilled); () = tokenise answer_text
    ended: bool = True  # the answer ends with the end-of-turn token

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["answer_ids"] = list(self.answer_ids)
        return out


def evaluation_prompts(data_dir: str) -> list[str]:
    """Every evaluation prompt, as text (the no-overlap reference)."""
    return [p.instruction for name in EVALUATION_SOURCES for p in load_source(name, data_dir)]


def drop_overlaps(prompts: Sequence[Prompt], reference: Sequence[str]) -> list[Prompt]:
    """``prompts`` without those that equal or near-duplicate a reference prompt."""
    bad = near_duplicates(list(prompts), list(reference), threshold=NEAR_DUPLICATE)
    return [p for i, p in enumerate(prompts) if i not in bad]


def check_no_overlap(training: Sequence[str], reference: Sequence[str]) -> list[str]:
    """Training prompts equal to a reference prompt after ``normalise`` (should be none)."""
    ref = {normalise(r) for r in reference}
    return [t for t in training if normalise(t) in ref]


@dataclass(frozen=True)
class PromptPlan:
    """Which prompts the tuning uses, before any answer is generated."""

    harmful: list[str]
    harmless: list[str]
    borderline: list[str]
    dropped: dict[str, int]


HARMFUL_TRAINING_SOURCES = ("arditi_harmful_train", "advbench", "malicious_instruct", "tdc2023")
BORDERLINE_SETS = {"v1": texts.BORDERLINE, "v2": texts.BORDERLINE_MORE}


def plan_prompts(
    data_dir: str,
    n_harmless: int,
    seed: int,
    harmful_sources: Sequence[str] = ("arditi_harmful_train",),
    borderline_sets: Sequence[str] = ("v1",),
) -> PromptPlan:
    """Loads the training splits, drops overlaps with every evaluation set, subsamples harmless.

    ``harmful_sources`` may name the origins of Arditi's harmful train split (AdvBench,
    MaliciousInstruct, TDC2023), none of which any evaluation here reads; prompts that
    near-duplicate an evaluation prompt or an already kept harmful prompt are dropped (AdvBench
    repeats itself a lot).
    """
    unknown = [s for s in harmful_sources if s not in HARMFUL_TRAINING_SOURCES]
    if unknown:
        raise ValueError(f"not a harmful training source: {unknown}; known: {HARMFUL_TRAINING_SOURCES}")
    reference = evaluation_prompts(data_dir)
    harmful: list[Prompt] = []
    harmful_loaded = 0
    for name in harmful_sources:
        loaded = load_source(name, data_dir)
        harmful_loaded += len(loaded)
        harmful += drop_overlaps(drop_overlaps(loaded, reference), [p.instruction for p in harmful])
    harmless_all = load_source("arditi_harmless_train", data_dir)
    rng = random.Random(seed)
    pool = list(harmless_all)
    rng.shuffle(pool)
    pool = pool[: n_harmless * 2]  # overlap filtering costs time: filter a generous draw, then cut
    harmless = drop_overlaps(pool, reference)[:n_harmless]
    borderline_prompts = [
        Prompt(instruction=t, harmful=False, source="borderline")
        for name in borderline_sets
        for t in BORDERLINE_SETS[name]
    ]
    borderline = drop_overlaps(borderline_prompts, reference)
    return PromptPlan(
        harmful=[p.instruction for p in harmful],
        harmless=[p.instruction for p in harmless],
        borderline=[p.instruction for p in borderline],
        dropped={
            "harmful": harmful_loaded - len(harmful),
            "borderline": len(borderline_prompts) - len(borderline),
        },
    )


def refusal_examples(prompts: Sequence[str], seed: int, wordings: int = HARMFUL_WORDINGS) -> list[Example]:
    """Each harmful prompt in ``wordings`` wordings (the first is the prompt as written), each with its own refusal."""
    rng = random.Random(seed)
    out = []
    for prompt in prompts:
        for w in range(wordings):
            asked = prompt if w == 0 else texts.ask(prompt, rng)
            out.append(Example("harmful", asked, texts.refusal(rng)))
    return out


def distilled_examples(
    lm: Any, prompts: Sequence[str], kind: str, max_new_tokens: int, batch_size: int, progress=None
) -> list[Example]:
    """The base model's own greedy answers (token ids) to ``prompts``."""
    from neuroscope.model.generate import generate_ids

    eos = set(lm.eos_token_ids)
    out: list[Example] = []
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        ids = generate_ids(lm, batch, max_new_tokens=max_new_tokens)
        for prompt, row in zip(batch, ids.tolist()):
            cut = next((i for i, t in enumerate(row) if t in eos), None)
            kept = row if cut is None else row[: cut + 1]
            text = lm.tokenizer.decode(kept, skip_special_tokens=True)
            out.append(Example(kind, prompt, text, tuple(kept), ended=cut is not None))
        if progress is not None:
            progress(len(batch))
    return out
