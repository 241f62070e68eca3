"""The end-to-end refusal-direction experiment (Arditi et al. 2024, plus the checks it needs).

Public API (the app and the CLI use these)::

    from neuroscope.experiment import ExperimentConfig, run_experiment, load_direction
    result = run_experiment(lm, ExperimentConfig(), "runs/demo", progress=lambda f, msg: ...)

Step functions, usable on their own: :func:`load_experiment_data`, :func:`compute_candidates`,
:func:`score_candidates`, :func:`select`, :func:`evaluate_interventions`,
:func:`edit_frontier`, :func:`check_orthogonalization`, :func:`evaluate_edited`, :func:`analyse_heads`, :func:`generalisation`,
:func:`write_report`; artifacts: :func:`save_direction` / :func:`load_direction`.
"""

from __future__ import annotations

import importlib

# Imported lazily so that `python -m neuroscope experiment --help` does not load torch and nnsight.
_EXPORTS = {
    "ArtifactError": "artifacts",
    "load_direction": "artifacts",
    "save_direction": "artifacts",
    "ExperimentConfig": "config",
    "ExperimentError": "config",
    "ExperimentData": "data",
    "length_report": "data",
    "load_experiment_data": "data",
    "Candidates": "direction",
    "compute_candidates": "direction",
    "EvaluationResult": "evaluation",
    "check_orthogonalization": "evaluation",
    "evaluate_direction": "evaluation",
    "evaluate_interventions": "evaluation",
    "evaluate_edited": "evaluation",
    "random_direction": "evaluation",
    "choose_edit": "frontier",
    "edit_frontier": "frontier",
    "Generalisation": "generalise",
    "generalisation": "generalise",
    "HeadAnalysis": "heads",
    "analyse_heads": "heads",
    "ExperimentResult": "pipeline",
    "run_experiment": "pipeline",
    "write_report": "report",
    "ScoredCandidates": "selection",
    "score_candidates": "selection",
    "select": "selection",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'neuroscope.experiment' has no attribute {name!r}")
    module = importlib.import_module(f"neuroscope.experiment.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return __all__
