"""Checks on prompt sets: normalised text and near duplicates (no evaluation prompt in a training split), and
how well matched pairs agree in token length."""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from neuroscope.prompts import Prompt


def normalise(text: str | Prompt) -> str:
    """Canonical form for overlap checks: NFKC, casefolded, punctuation to spaces, one space."""
    if isinstance(text, Prompt):
        text = text.instruction
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _shingles(text: str, n: int = 3) -> frozenset[str]:
    padded = f" {text} "
    return frozenset(padded[i : i + n] for i in range(len(padded) - n + 1))


def similarity(a: str | Prompt, b: str | Prompt) -> float:
    """Dice coefficient of character-trigram sets of the normalised texts, in [0, 1].

    Character grams survive small edits ("a virus" vs "malware", "a" vs "an", plural/tense)
    better than word shingles, so lightly edited copies across benchmarks score high.
    """
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return 1.0
    return _dice(_shingles(na), _shingles(nb))


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0


def near_duplicates(
    candidates: Sequence[str | Prompt], reference: Sequence[str | Prompt], threshold: float = 0.8
) -> set[int]:
    """Indices of candidates whose :func:`similarity` to some reference item is >= threshold.

    Exact after :func:`normalise` always counts. Uses prefix and length filtering, so that a
    pair is scored only when it can reach the threshold. Checking a few hundred prompts
    against a 30k-item pool takes seconds instead of minutes.

    Args:
        candidates: Prompts or strings to check (e.g. an evaluation set).
        reference: Prompts or strings to check against (e.g. a training set).
        threshold: Similarity in (0, 1] at or above which a pair counts as a near-duplicate.

    Returns:
        The set of candidate indices that near-duplicate anything in ``reference``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    ref_norm = [normalise(r) for r in reference]
    exact = set(ref_norm)
    ref_grams = [_shingles(r) for r in ref_norm]
    freq = Counter(g for s in ref_grams for g in s)
    index: dict[str, list[int]] = defaultdict(list)
    for j, grams in enumerate(ref_grams):
        for g in _prefix(grams, freq, threshold):
            index[g].append(j)
    hits = set()
    for i, cand in enumerate(candidates):
        norm = normalise(cand)
        if norm in exact or _matches_any(_shingles(norm), ref_grams, index, freq, threshold):
            hits.add(i)
    return hits


def _prefix(grams: frozenset[str], freq: Counter[str], threshold: float) -> list[str]:
    """The rarest grams of a set, enough that any Dice >= threshold partner shares one of them.

    With Dice >= t and overlap o: 2o >= t(|A| + |B|) >= t(o + |A|), so o >= t|A| / (2 - t).
    Two sets with overlap >= k share a gram within the first |A| - k + 1 and |B| - k + 1 grams
    of any fixed global order (here: rarest in the reference first).
    """
    min_overlap = math.ceil(threshold * len(grams) / (2 - threshold) - 1e-9)
    return sorted(grams, key=lambda g: (freq[g], g))[: max(1, len(grams) - min_overlap + 1)]


def _matches_any(
    grams: frozenset[str],
    ref_grams: list[frozenset[str]],
    index: dict[str, list[int]],
    freq: Counter[str],
    threshold: float,
) -> bool:
    a = len(grams)
    seen: set[int] = set()
    for g in _prefix(grams, freq, threshold):
        for j in index.get(g, ()):
            if j not in seen:
                seen.add(j)
                # Dice <= 2 min(a, b) / (a + b): skip sizes that cannot reach the threshold.
                b = len(ref_grams[j])
                if threshold * (a + b) <= 2 * min(a, b) + 1e-9 and _dice(grams, ref_grams[j]) >= threshold:
                    return True
    return False


# --------------------------------------------------------------------------- curated pairs


def _n_tokens(tokenizer: Any, text: str) -> int:
    """Token count without special tokens; accepts HF tokenizers or any ``str -> ids`` callable."""
    if hasattr(tokenizer, "encode"):
        try:
            return len(tokenizer.encode(text, add_special_tokens=False))
        except TypeError:
            return len(tokenizer.encode(text))
    return len(tokenizer(text))


def _diff_stats(diffs: Sequence[int]) -> dict[str, float | int]:
    abs_diffs = [abs(d) for d in diffs]
    return {
        "n_pairs": len(diffs),
        "mean_diff": statistics.fmean(diffs),
        "mean_abs_diff": statistics.fmean(abs_diffs),
        "max_abs_diff": max(abs_diffs),
        "frac_equal": sum(d == 0 for d in diffs) / len(diffs),
        "frac_within_2": sum(d <= 2 for d in abs_diffs) / len(diffs),
    }


def length_match_report(pairs: Sequence[tuple[Prompt | str, Prompt | str]], tokenizer: Any) -> dict[str, Any]:
    """Token-length differences (harmful minus harmless) of matched pairs, overall and per category.

    Args:
        pairs: (harmful, harmless) pairs, as Prompts or strings.
        tokenizer: A Hugging Face tokenizer, or any callable mapping a string to token ids.

    Returns:
        ``{"overall": stats, "per_category": {category: stats}, "diffs": [int, ...]}`` where
        stats has n_pairs, mean_diff, mean_abs_diff, max_abs_diff, frac_equal, frac_within_2.
        Pairs of strings (or Prompts without category) are grouped under ``"uncategorised"``.
    """
    if not pairs:
        raise ValueError("length_match_report needs at least one pair")
    diffs, by_cat = [], defaultdict(list)
    for harmful, harmless in pairs:
        d = _n_tokens(tokenizer, _text(harmful)) - _n_tokens(tokenizer, _text(harmless))
        diffs.append(d)
        category = harmful.category if isinstance(harmful, Prompt) else None
        by_cat[category or "uncategorised"].append(d)
    return {
        "overall": _diff_stats(diffs),
        "per_category": {c: _diff_stats(v) for c, v in sorted(by_cat.items())},
        "diffs": diffs,
    }


def _text(item: Prompt | str) -> str:
    return item.instruction if isinstance(item, Prompt) else item
