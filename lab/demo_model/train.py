"""Train the demo model organism: tokenizer, Llama-3.2-shaped model, refusal-trained chat model.

    python -m lab.demo_model.train --data-dir ../shared/datasets --out runs/demo-model --seed 8

Deterministic for a given seed on a given
machine and thread count; the shipped recipe takes 16-20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from lab.demo_model.corpus import DemoSplits, Example, build_splits, epoch_examples, pretrain_documents, tokenizer_texts
from lab.demo_model.tokenizer import BOS, EOS_TEXT, EOT, build_tokenizer

__all__ = [
    "TrainConfig",
    "encode_examples",
    "main",
    "make_batches",
    "model_config",
    "parse_args",
    "save_model",
    "train_model",
    "lm_loss",
]

IGNORE = -100


def _log(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved next to the weights)."""

    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 40
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    harmless_ratio: float = 2.5
    harmful_repeats: int = 2
    themed_refusals: bool = True
    i_opener_prob: float = 0.0
    pretrain_docs: int = 0
    max_len: int = 128
    max_prompt_len: int = 96
    vocab_size: int = 4096
    n_layers: int = 6
    d_model: int = 256
    n_heads: int = 8
    n_kv_heads: int = 4
    d_mlp: int = 768
    threads: int = 2


def model_config(cfg: TrainConfig, tok: PreTrainedTokenizerBase) -> LlamaConfig:
    """Llama-3.2 in miniature: GQA, tied embeddings, RMSNorm, RoPE (theta 500k), SiLU MLP."""
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        head_dim=cfg.d_model // cfg.n_heads,
        hidden_act="silu",
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        initializer_range=0.02,
        bos_token_id=tok.convert_tokens_to_ids(BOS),
        eos_token_id=[tok.convert_tokens_to_ids(EOS_TEXT), tok.convert_tokens_to_ids(EOT)],
        pad_token_id=tok.convert_tokens_to_ids(EOS_TEXT),
    )


def encode_examples(
    tok: PreTrainedTokenizerBase, examples: list[Example], max_len: int, max_prompt_len: int
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels (IGNORE on the prompt); answers end with <|eot_id|>.

    Examples whose prompt is longer than `max_prompt_len` are dropped; answers are cut so the
    whole sequence fits in `max_len`. Plain (pre-training) examples come first in the result,
    learned on every token (`_encode_plain`).
    """
    plain = [e for e in examples if e.plain]
    out = _encode_plain(tok, plain, max_len) if plain else []
    examples = [e for e in examples if not e.plain]
    if not examples:
        return out
    eot = tok.convert_tokens_to_ids(EOT)
    prompts = tok.apply_chat_template(
        [[{"role": "user", "content": e.instruction}] for e in examples], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    answers = tok([e.answer for e in examples], add_special_tokens=False)["input_ids"]
    for p, a in zip(prompts, answers):
        if len(p) > max_prompt_len:
            continue
        a = (a + [eot])[: max_len - len(p)]
        out.append((p + a, [IGNORE] * len(p) + a))
    return out


def _encode_plain(tok: PreTrainedTokenizerBase, docs: list[Example], max_len: int) -> list[tuple[list[int], list[int]]]:
    """Pre-training documents: <|begin_of_text|> text <|end_of_text|>, every token after BOS learned."""
    ids = tok([d.instruction for d in docs], add_special_tokens=True)["input_ids"]  # adds the BOS
    end = tok.convert_tokens_to_ids(EOS_TEXT)
    out = []
    for x in ids:
        x = (x + [end])[:max_len]
        out.append((x, [IGNORE] + x[1:]))
    return out


def make_batches(
    encoded: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, rng: random.Random
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Length-bucketed, right-padded batches in random order.

    Yields:
        (input_ids [B, S] long, attention_mask [B, S] long, labels [B, S] long).
    """
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = batch_size * 16  # sort within chunks: similar lengths per batch, still shuffled
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lambda i: len(encoded[i][0]))
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    for idx in batches:
        width = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            x, y = encoded[i]
            ids[row, : len(x)] = torch.tensor(x)
            labels[row, : len(y)] = torch.tensor(y)
            mask[row, : len(x)] = 1
        yield ids, mask, labels


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy on labelled tokens (what the model's own ``labels=`` computes).

    Args:
        logits: [B, S, V] model outputs.
        labels: [B, S] targets, IGNORE on prompt and padding.

    Returns:
        Scalar mean loss.
    """
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="none"
    ).view_as(target)
    weights = (target != IGNORE).float()
    return (per_token * weights).sum() / weights.sum()


def _lr_lambda(warmup: int, total: int, min_frac: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def _train_epochs(
    model: LlamaForCausalLM,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    encoded: list[list[tuple[list[int], list[int]]]],
    cfg: TrainConfig,
    pad_id: int,
    total: int,
    history: list[dict],
    t0: float,
    log: Callable[[str], None],
) -> None:
    """One optimiser step per batch over the encoded epochs, under the learning-rate schedule.

    Batch order is drawn from `cfg.seed` and the epoch number.
    """
    running, step = None, 0
    for epoch, enc in enumerate(encoded):
        rng = random.Random(f"batches-{cfg.seed}-{epoch}")
        for ids, mask, labels in make_batches(enc, cfg.batch_size, pad_id, rng):
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = lm_loss(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            step += 1
            if step % 20 == 0 or step == total:
                rec = {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(running, 4),
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": round(time.time() - t0, 1),
                }
                history.append(rec)
                log(json.dumps(rec))


def train_model(
    cfg: TrainConfig,
    tok: PreTrainedTokenizerBase,
    epochs: list[list[Example]],
    log: Callable[[str], None] = _log,
) -> tuple[LlamaForCausalLM, list[dict]]:
    """Train a fresh model on the given per-epoch examples (chat: loss on assistant tokens only).

    Args:
        cfg: run settings (seed, optimiser, shape).
        tok: the tokenizer.
        epochs: examples of each epoch, trained under the warm-up + cosine schedule.
        log: progress sink.

    Returns:
        (model in eval mode, float32 on CPU; history of {step, epoch, loss, lr, seconds}).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_config(cfg, tok))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    encoded = [encode_examples(tok, ex, cfg.max_len, cfg.max_prompt_len) for ex in epochs]
    total = sum(math.ceil(len(e) / cfg.batch_size) for e in encoded)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, total, cfg.min_lr_frac))
    pad_id = tok.convert_tokens_to_ids(EOS_TEXT)
    history: list[dict] = []
    t0 = time.time()
    model.train()
    _train_epochs(model, opt, sched, encoded, cfg, pad_id, total, history, t0, log)
    model.eval()
    return model, history


def save_model(model: LlamaForCausalLM, tok: PreTrainedTokenizerBase, out: Path, meta: dict) -> None:
    """Write fp16 safetensors, config, generation config, tokenizer and training metadata."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    model.generation_config = GenerationConfig(
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def _chat_epoch(cfg: TrainConfig, splits: DemoSplits, epoch: int) -> list[Example]:
    """`epoch_examples` with the run's data settings."""
    return epoch_examples(
        splits, cfg.seed, epoch, cfg.harmless_ratio, cfg.harmful_repeats, cfg.themed_refusals, cfg.i_opener_prob
    )


def run(
    cfg: TrainConfig,
    data_dir: str | Path | None,
    out: Path,
    log: Callable[[str], None] = _log,
    splits: DemoSplits | None = None,
) -> dict:
    """Build data, tokenizer and model; train; save to `out`. Returns the training metadata."""
    t0 = time.time()
    splits = splits or build_splits(data_dir)
    tok = build_tokenizer(tokenizer_texts(splits), cfg.vocab_size)
    pretrain = [pretrain_documents(splits, cfg.seed, cfg.pretrain_docs, cfg.i_opener_prob)] if cfg.pretrain_docs else []
    epochs = pretrain + [_chat_epoch(cfg, splits, e) for e in range(cfg.epochs)]
    log(
        f"data: {len(splits.train_harmful)} harmful / {len(splits.train_harmless)} harmless training prompts, "
        f"{sum(len(e) for e in epochs)} examples in {cfg.epochs} epochs; dropped {splits.dropped}"
    )
    model, history = train_model(cfg, tok, epochs, log)
    meta = {
        "config": asdict(cfg),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_train_harmful": len(splits.train_harmful),
        "n_train_harmless_pool": len(splits.train_harmless),
        "n_examples": sum(len(e) for e in epochs),
        "dropped": splits.dropped,
        "final_loss": history[-1]["loss"] if history else None,
        "train_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }
    save_model(model, tok, out, meta)
    log(f"saved to {out} after {meta['train_seconds']} s")
    return meta


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The command line as a TrainConfig (and the parsed arguments).

    Only the options of the shipped recipe remain; the runs whose results were negative (recovery
    examples, re-framed prompts, word dropout, decision weighting, a finishing phase, other
    pre-training mixes) used options removed after commit 1ab6023, where they can be re-run.
    """
    parser = argparse.ArgumentParser(prog="python -m lab.demo_model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="shared prompt datasets folder (else $NEUROSCOPE_DATA_DIR)")
    parser.add_argument(
        "--out",
        default="runs/demo-model",
        help="output directory (default runs/demo-model; the "
        "shipped model in assets/demo-model is replaced only when asked for by name)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument(
        "--harmful-repeats",
        type=int,
        default=TrainConfig.harmful_repeats,
        help="copies of each harmful training prompt per epoch (each with a fresh refusal)",
    )
    parser.add_argument(
        "--harmless-ratio",
        type=float,
        default=TrainConfig.harmless_ratio,
        help="harmless examples per harmful training prompt and epoch",
    )
    parser.add_argument("--layers", type=int, default=TrainConfig.n_layers, help="number of decoder layers")
    parser.add_argument(
        "--max-len",
        type=int,
        default=TrainConfig.max_len,
        help="longest training sequence in tokens (answers are cut to fit)",
    )
    parser.add_argument(
        "--i-openers",
        type=float,
        default=TrainConfig.i_opener_prob,
        help="share of compliant answers opening with 'I'd be happy to help!' and the like",
    )
    parser.add_argument(
        "--pretrain-docs",
        type=int,
        default=TrainConfig.pretrain_docs,
        help="plain-text documents of a language-modelling phase before chat training (0: none)",
    )
    parser.add_argument(
        "--generic-refusals",
        action="store_true",
        help="topic-independent refusals (no reasons or alternatives matched to the request)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=TrainConfig.threads,
        help="CPU threads (results are deterministic for a given seed and thread count)",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="measure behaviour and interventions afterwards and write evaluation.json",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.i_openers <= 1.0:  # also rejects NaN
        parser.error(f"--i-openers must be a probability in [0, 1], got {args.i_openers}")
    for flag, value in {"--epochs": args.epochs, "--harmful-repeats": args.harmful_repeats, "--layers": args.layers,
                        "--max-len": args.max_len, "--threads": args.threads}.items():  # fmt: skip
        if value < 1:
            parser.error(f"{flag} must be 1 or more, got {value}")
    if args.pretrain_docs < 0:
        parser.error(f"--pretrain-docs must be 0 or more, got {args.pretrain_docs}")
    if not args.harmless_ratio >= 0:  # also rejects NaN
        parser.error(f"--harmless-ratio must be 0 or more, got {args.harmless_ratio}")
    cfg = TrainConfig(
        seed=args.seed,
        epochs=args.epochs,
        themed_refusals=not args.generic_refusals,
        harmful_repeats=args.harmful_repeats,
        harmless_ratio=args.harmless_ratio,
        n_layers=args.layers,
        max_len=args.max_len,
        i_opener_prob=args.i_openers,
        pretrain_docs=args.pretrain_docs,
        threads=args.threads,
    )
    return cfg, args


def main(argv: list[str] | None = None) -> int:
    """CLI: train the demo model (and optionally evaluate it)."""
    cfg, args = parse_args(argv)
    out = Path(args.out)
    run(cfg, args.data_dir, out)
    if args.evaluate:
        from lab.demo_model.evaluate import evaluate_dir

        evaluate_dir(out, args.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
