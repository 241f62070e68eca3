"""Chat formatting shared by every model: one template string and prompt validation."""

from __future__ import annotations

import weakref

from neuroscope.errors import UserError
from neuroscope.text import text_problem

# Llama-3-style template (the bundled demo model and the tiny test models use it; hub models bring
# their own). The BOS comes from the template text, so tokenising must not add a second one.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)

# Extra variables for every chat template. Llama-3.2 templates write today's date into their system
# block; a fixed date (the template's own fallback) keeps a prompt's tokens, and every number
# computed from them, the same from one day to the next. Templates that do not use it ignore it.
CHAT_TEMPLATE_KWARGS: dict[str, str] = {"date_string": "26 Jul 2024"}

# No token of a real vocabulary is longer than this many characters on average over a prompt, so a
# prompt longer than ``max_tokens * CHARS_PER_TOKEN`` is refused before it is tokenised at all.
CHARS_PER_TOKEN = 16
MAX_PROMPT_CHARS = 100_000  # the cap when no token limit is given


class PromptError(UserError):
    """A prompt cannot be run; the message is meant for the user."""


def clean_instruction(text: object, max_tokens: int | None = None) -> str:
    """Validates a user instruction and returns it stripped.

    Args:
        text: What the user typed.
        max_tokens: The token limit it will be held to; texts far beyond it (in characters) are
            refused here, before any tokenisation.

    Returns:
        The instruction without leading/trailing whitespace.

    Raises:
        PromptError: Not a string, empty, or containing control characters other than newline/tab.
    """
    if not isinstance(text, str):
        raise PromptError(f"the prompt must be text, got {type(text).__name__}")
    limit = MAX_PROMPT_CHARS if max_tokens is None else min(MAX_PROMPT_CHARS, max_tokens * CHARS_PER_TOKEN)
    if len(text) > limit:
        raise PromptError(f"the prompt is {len(text):,} characters long; the limit is {limit:,} characters")
    stripped = text.strip()
    if not stripped:
        raise PromptError("the prompt is empty: type an instruction first")
    problem = text_problem(stripped)
    if problem is not None:
        advice = "; remove them and try again" if problem.startswith("contains") else ": type an instruction"
        raise PromptError(f"the prompt {problem}{advice}")
    return stripped


def first_token_ids(tokenizer: object, phrases: "tuple[str, ...] | list[str]") -> list[int]:
    """The distinct first token of each phrase as the model would start an answer with it.

    Used for the logit refusal score: the probability mass on the first tokens of refusal phrases.
    """
    ids = set()
    for phrase in phrases:
        tokens = tokenizer(phrase, add_special_tokens=False)["input_ids"]
        if tokens:
            ids.add(int(tokens[0]))
    return sorted(ids)


def refusal_token_ids(tokenizer: object) -> list[int]:
    """THE refusal first tokens of a tokenizer: the first token of every refusal phrase and opening.

    One definition for the Explorer's score, direction selection, the experiment and the demo
    model's evaluation. Special tokens are excluded.

    Raises:
        ValueError: The tokenizer maps none of them to a token.
    """
    from neuroscope.analysis.metrics import REFUSAL_OPENINGS, REFUSAL_PHRASES

    try:  # encoded once per tokenizer: every Explorer run asks
        return list(_REFUSAL_IDS[tokenizer])
    except (KeyError, TypeError):
        pass
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in first_token_ids(tokenizer, REFUSAL_PHRASES + REFUSAL_OPENINGS) if i not in specials]
    if not ids:
        raise ValueError("the tokenizer encodes none of the refusal phrases")
    try:
        _REFUSAL_IDS[tokenizer] = tuple(ids)
    except TypeError:  # a tokenizer that cannot be weakly referenced: encode each time
        pass
    return ids


_REFUSAL_IDS: "weakref.WeakKeyDictionary[object, tuple[int, ...]]" = weakref.WeakKeyDictionary()
