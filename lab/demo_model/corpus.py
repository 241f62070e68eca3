"""Training, validation and test prompts for the demo model, and the per-epoch training examples.

Test sets are never trained on: JailbreakBench harmful and benign, XSTest, and a held-out slice
of Arditi's harmless test split. Validation sets (layer selection) are Arditi's harmful val
split (HarmBench val) and a slice of the harmless val split. Training prompts whose character
trigram similarity to any test or validation prompt reaches `NEAR_DUP_THRESHOLD` are dropped
(JailbreakBench reuses rewritten AdvBench / HarmBench behaviours).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from neuroscope.analysis.metrics import is_refusal
from lab.demo_model.answers import compliant_answer
from lab.demo_model.refusals import refusal
from neuroscope.prompts import Prompt, load_source
from neuroscope.prompt_checks import near_duplicates, normalise

__all__ = [
    "DemoSplits",
    "Example",
    "NEAR_DUP_THRESHOLD",
    "build_splits",
    "epoch_examples",
    "pretrain_documents",
    "tokenizer_texts",
]

NEAR_DUP_THRESHOLD = 0.6
HARMFUL_TRAIN_SOURCES = ("advbench", "malicious_instruct", "tdc2023", "harmbench_test", "strongreject")
N_HARMLESS_VAL = 200
N_HARMLESS_TEST = 300


@dataclass
class DemoSplits:
    """Instruction lists of every split (the order is fixed; nothing here depends on the seed).

    Attributes:
        train_harmful: harmful training prompts, deduplicated and near-dup filtered.
        train_harmless: the harmless training pool (Arditi harmless train, filtered).
        val_harmful: Arditi harmful val (HarmBench val, 39), for layer selection.
        val_harmless: first N_HARMLESS_VAL of Arditi harmless val.
        test_harmful: JailbreakBench harmful (100).
        test_benign: JailbreakBench benign twins (100).
        test_harmless: first N_HARMLESS_TEST of Arditi harmless test.
        xstest: XSTest prompts (safe ones have harmful=False).
        dropped: how many training prompts each filter removed.
    """

    train_harmful: list[str]
    train_harmless: list[str]
    val_harmful: list[str]
    val_harmless: list[str]
    test_harmful: list[str]
    test_benign: list[str]
    test_harmless: list[str]
    xstest: list[Prompt]
    dropped: dict[str, int] = field(default_factory=dict)

    def held_out(self) -> list[str]:
        """Every validation and test instruction."""
        return (
            self.val_harmful
            + self.val_harmless
            + self.test_harmful
            + self.test_benign
            + self.test_harmless
            + [p.instruction for p in self.xstest]
        )


def _dedupe(texts: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for t in texts:
        key = normalise(t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def build_splits(data_dir: str | Path | None = None) -> DemoSplits:
    """Load the research prompt sets and cut them into the demo model's splits.

    Args:
        data_dir: the shared datasets folder (falls back to $NEUROSCOPE_DATA_DIR).

    Returns:
        DemoSplits.
    """

    def load(name: str) -> list[str]:
        return [p.instruction for p in load_source(name, data_dir)]

    splits = DemoSplits(
        train_harmful=[],
        train_harmless=[],
        val_harmful=load("arditi_harmful_val"),
        val_harmless=load("arditi_harmless_val")[:N_HARMLESS_VAL],
        test_harmful=load("jailbreakbench"),
        test_benign=load("jailbreakbench_benign"),
        test_harmless=load("arditi_harmless_test")[:N_HARMLESS_TEST],
        xstest=load_source("xstest", data_dir),
    )
    held = splits.held_out()
    harmful = _dedupe([t for name in HARMFUL_TRAIN_SOURCES for t in load(name)])
    harmless = _dedupe(load("arditi_harmless_train"))
    harmful_dups = near_duplicates(harmful, held, NEAR_DUP_THRESHOLD)
    harmless_dups = near_duplicates(harmless, held, NEAR_DUP_THRESHOLD)
    # Compliant answers to these would contain refusal phrases ("Paraphrase: I can't believe ...").
    harmless_refusalish = {i for i, t in enumerate(harmless) if is_refusal(t)}
    splits.train_harmful = [t for i, t in enumerate(harmful) if i not in harmful_dups]
    splits.train_harmless = [t for i, t in enumerate(harmless) if i not in harmless_dups | harmless_refusalish]
    splits.dropped = {
        "harmful_near_dup": len(harmful_dups),
        "harmless_near_dup": len(harmless_dups),
        "harmless_refusal_phrase": len(harmless_refusalish - harmless_dups),
    }
    return splits


@dataclass(frozen=True)
class Example:
    """One chat turn to train on: the user instruction and the assistant's reply.

    A `plain` example is a pre-training document (`instruction` holds the text, every token is
    learned).
    """

    instruction: str
    answer: str
    harmful: bool
    plain: bool = False  # a pre-training document: `instruction` is the whole text, no chat template


def epoch_examples(
    splits: DemoSplits,
    seed: int,
    epoch: int,
    harmless_ratio: float,
    harmful_repeats: int = 1,
    themed_refusals: bool = True,
    i_opener_prob: float = 0.0,
) -> list[Example]:
    """The training examples of one epoch, in random order.

    Every harmful prompt appears `harmful_repeats` times per epoch, each time with a freshly
    drawn refusal; the harmless
    prompts are the next `harmless_ratio * n_harmful` items of a seed-shuffled pool, so each
    epoch sees new harmless instructions until the pool wraps around.

    Args:
        splits: from `build_splits`.
        seed: training seed.
        epoch: 0-based epoch index.
        harmless_ratio: harmless examples per harmful prompt.
        harmful_repeats: copies of each harmful prompt per epoch.
        themed_refusals: reasons matched to the request's theme (False: topic-independent refusals).
        i_opener_prob: share of compliant answers that open with "I'd be happy to help!" and the like.

    Returns:
        Examples (deterministic for the arguments).
    """
    rng = random.Random(f"demo-{seed}-{epoch}")
    pool = list(splits.train_harmless)
    random.Random(f"pool-{seed}").shuffle(pool)
    n = int(round(harmless_ratio * len(splits.train_harmful)))
    start = (epoch * n) % len(pool)
    harmless = [pool[(start + i) % len(pool)] for i in range(n)]
    examples = [
        Example(t, refusal(t, rng, themed_refusals), True) for _ in range(harmful_repeats) for t in splits.train_harmful
    ]
    examples += [Example(t, compliant_answer(t, rng, i_opener_prob), False) for t in harmless]
    rng.shuffle(examples)
    return examples


def pretrain_documents(splits: DemoSplits, seed: int, n: int, i_opener_prob: float = 0.0) -> list[Example]:
    """Plain-text documents for a language-modelling phase before chat training.

    Like a base model's pre-training, the model first learns the language of the requests,
    harmful ones included, with no chat template and no refusals: harmless pool instructions
    followed by a generated answer, and harmful training instructions on their own. Held-out
    prompts are never used.

    Args:
        splits: from `build_splits`.
        seed: training seed.
        n: number of documents.
        i_opener_prob: as in `epoch_examples`.

    Returns:
        `n` plain examples in random order.
    """
    rng = random.Random(f"pretrain-{seed}")
    pool = list(splits.train_harmless)
    rng.shuffle(pool)
    n_harmful = n // 3  # harmful instructions, cycled
    docs = [
        Example(splits.train_harmful[i % len(splits.train_harmful)], "", True, plain=True) for i in range(n_harmful)
    ]
    docs += [
        Example(f"{t}\n\n{compliant_answer(t, rng, i_opener_prob)}", "", False, plain=True)
        for t in (pool[i % len(pool)] for i in range(n - n_harmful))
    ]
    rng.shuffle(docs)
    return docs


def tokenizer_texts(splits: DemoSplits, n_harmless: int = 8000) -> list[str]:
    """Text to train the tokenizer on (independent of the training seed).

    Args:
        splits: from `build_splits`.
        n_harmless: how many harmless pool prompts (and generated answers) to include.

    Returns:
        Instructions, answers, refusals and the chat header words.
    """
    rng = random.Random("tokenizer")
    texts: list[str] = []
    for t in splits.train_harmful:
        texts += [t, refusal(t, rng)]
    for t in splits.train_harmless[:n_harmless]:
        texts += [t, compliant_answer(t, rng), "user", "assistant", "\n\n"]
    return texts
