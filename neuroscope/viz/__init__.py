"""Figure builders: arrays and labels in, plotly figures out. No torch, no model."""

from neuroscope.viz.attention import attention_heatmap
from neuroscope.viz.cone import cone_curve
from neuroscope.viz.direction import candidate_scores, cosine_matrix, projection_per_layer, separation_plot
from neuroscope.viz.evaluation import edit_frontier, rates_with_intervals, topk_ablation_curve
from neuroscope.viz.harmfulness import attack_success, cosine_by_layer, prompt_map, search_history
from neuroscope.viz.heads import head_grid, head_maps
from neuroscope.viz.induction import loss_by_position
from neuroscope.viz.importance import token_importance_bar, token_importance_html
from neuroscope.viz.lens import logit_lens_heatmap
from neuroscope.viz.report import figure_to_html, figures_to_html
from neuroscope.viz.tokens import format_token, token_labels
from neuroscope.viz.trajectory import pca_trajectory_2d, pca_trajectory_3d

__all__ = [
    "attack_success",
    "attention_heatmap",
    "candidate_scores",
    "cone_curve",
    "cosine_by_layer",
    "cosine_matrix",
    "edit_frontier",
    "figure_to_html",
    "figures_to_html",
    "format_token",
    "head_grid",
    "head_maps",
    "logit_lens_heatmap",
    "loss_by_position",
    "pca_trajectory_2d",
    "pca_trajectory_3d",
    "projection_per_layer",
    "search_history",
    "prompt_map",
    "rates_with_intervals",
    "separation_plot",
    "token_importance_bar",
    "token_importance_html",
    "token_labels",
    "topk_ablation_curve",
]
