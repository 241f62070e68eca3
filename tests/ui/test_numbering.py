"""One numbering in every view: a token has the same position in the lens, the attention map and the PCA,
and a head the same label in the grid's callout, the dropdown, the CLI JSON and the report."""

from __future__ import annotations

from neuroscope.model import _compat  # noqa: F401


def test_positions_and_head_labels_agree_across_views(tiny_lm):
    import torch

    from neuroscope.analysis.heads import head_label, parse_head_label
    from neuroscope.analysis.heads import head_stats
    from neuroscope.config import Settings
    from neuroscope.services.explorer import analyze
    from neuroscope.ui import explorer_views as ui

    lm = tiny_lm
    direction = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    L, H = lm.n_layers, lm.n_heads
    gen = torch.Generator().manual_seed(1)
    stats = head_stats(
        (torch.randn(4, L, H, generator=gen), torch.rand(4, L, H, generator=gen)),
        (torch.randn(4, L, H, generator=gen), torch.rand(4, L, H, generator=gen)),
    )
    result = analyze(lm, "Tell me about the sea", Settings(max_new_tokens=2), direction=direction, head_stats=stats)
    shown = ui.Shown(result, None)
    S = result.cache.n_tokens
    attention_x = list(ui.attention_figure(lm, shown, 0, 0).data[0].x)
    lens_x = list(ui.lens_figure(lm, result, 16, 5).data[0].x)
    pca_names = [trace.name for trace in ui.pca_figure(result).data]
    # every view labels position p of the prompt "p: token"
    assert len(attention_x) == S and attention_x[-len(lens_x) :] == lens_x
    assert pca_names == attention_x[1:]  # the PCA leaves out position 0 and keeps the others' numbers
    assert lens_x[-1].startswith(f"{S - 1}: ")
    # heads: one label, parsed back to the same (layer, head) from the dropdown, JSON and verdict
    called = result.callout[0]
    label = head_label(called.layer, called.head)
    assert ui.top_head_choices(result)[0].startswith(label + " ")
    assert parse_head_label(ui.top_head_choices(result)[0]) == (called.layer, called.head)
    assert result.to_json()["head_callout"][0]["text"].startswith(label)
    assert f"Head **{label}**" in ui.verdict_markdown(result)
