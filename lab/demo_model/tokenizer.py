"""Byte-level BPE tokenizer for the demo model, shaped like Llama-3's.

Same pre-tokenisation regex as Llama-3 (split, then byte-level with no extra regex), the five
Llama-3 special tokens at the end of the vocabulary (as in Llama-3, where they sit at 128000+),
a post-processor that prepends <|begin_of_text|> to plain `tokenizer(text)` calls, and the
project's Llama-3 chat template, whose text starts with the BOS. `apply_chat_template(...,
tokenize=True)` does not add special tokens, so a templated prompt carries exactly one BOS.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from neuroscope.model.chat import LLAMA3_CHAT_TEMPLATE, LLAMA3_SPECIAL_TOKENS

__all__ = ["BOS", "EOT", "EOS_TEXT", "build_tokenizer", "LLAMA3_SPLIT_PATTERN"]

BOS, EOS_TEXT, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
# Llama-3's pre-tokenizer pattern (tiktoken cl100k style), as in its tokenizer.json.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE on `texts` and wrap it as a Llama-3-style fast tokenizer.

    Deterministic for the same texts in the same order.

    Args:
        texts: training text (instructions, answers, and the chat-header words).
        vocab_size: total size including the special tokens.

    Returns:
        A PreTrainedTokenizerFast with bos <|begin_of_text|>, eos <|eot_id|>, pad <|end_of_text|>,
        left padding and the Llama-3 chat template.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(LLAMA3_SPECIAL_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(list(LLAMA3_SPECIAL_TOKENS))
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=EOS_TEXT,
        model_max_length=256,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    return fast
