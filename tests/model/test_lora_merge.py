"""The app's LoRA merge (``neuroscope.model.smollm2``) against peft's own un-merged forward on tiny
models: peft computes ``W x + scale * B (A x)`` at run time, the app adds ``scale * B A`` to ``W`` once."""

from __future__ import annotations

import json

import pytest
import torch

from neuroscope.model.loaded import ModelLoadError
from neuroscope.model.smollm2 import lora_deltas, merge_adapter, read_adapter
from neuroscope.model.tiny import build_tiny_hf

peft = pytest.importorskip("peft")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _adapter(tmp_path, seed=0, **lora):
    """A tiny Llama and a random (non-zero B) LoRA adapter saved by peft; returns (folder, peft model)."""
    torch.manual_seed(seed)
    base = build_tiny_hf("llama", seed=seed)
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM", **lora
    )
    pm = peft.get_peft_model(base, config).eval()
    pm.save_pretrained(tmp_path)
    return tmp_path, pm


@pytest.mark.parametrize("rslora", [False, True])
def test_merged_weights_give_peft_unmerged_logits(tmp_path, rslora):
    folder, pm = _adapter(tmp_path, use_rslora=rslora)
    fresh = build_tiny_hf("llama", seed=0).eval()
    ids = torch.randint(0, 250, (3, 11), generator=torch.Generator().manual_seed(1))
    before = fresh(input_ids=ids).logits
    assert merge_adapter(fresh, folder) == 3 * len(TARGETS)
    with torch.no_grad():
        expected = pm(input_ids=ids).logits  # peft's run-time LoRA, nothing merged
        merged = fresh(input_ids=ids).logits
    assert (merged - before).abs().max() > 1e-2  # the adapter does something here
    torch.testing.assert_close(merged, expected, atol=2e-5, rtol=1e-4)


def test_scale_follows_alpha_over_rank(tmp_path):
    folder, pm = _adapter(tmp_path)
    config, tensors = read_adapter(folder)
    deltas = lora_deltas(config, tensors)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    got = deltas["model.layers.0.self_attn.q_proj.weight"]
    torch.testing.assert_close(got.float(), (8 / 4) * (b @ a), atol=1e-6, rtol=1e-5)


def test_unsupported_or_mismatched_adapters_are_refused(tmp_path):
    folder, _ = _adapter(tmp_path)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(ModelLoadError, match="use_dora"):
        merge_adapter(build_tiny_hf("llama", seed=0), folder)
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    wider = build_tiny_hf("llama", seed=0, d_model=96, n_heads=4, n_kv_heads=2)
    with pytest.raises(ModelLoadError, match="does not fit"):
        merge_adapter(wider, folder)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="incomplete"):
        merge_adapter(build_tiny_hf("llama", seed=0), folder)
