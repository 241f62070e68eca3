"""The end-to-end refusal-direction experiment (Arditi et al. 2024, plus the checks it needs).

Public API (the app and the CLI use these)::

    from neuroscope.experiment import ExperimentConfig, run_experiment, load_direction
    result = run_experiment(lm, ExperimentConfig(), "runs/demo", progress=lambda f, msg: ...)

Step functions (``neuroscope.method``, below both this runner and the app's services), usable on their own: :func:`load_experiment_data`, :func:`compute_candidates`,
:func:`score_candidates`, :func:`select`, :func:`evaluate_interventions`,
:func:`edit_frontier`, :func:`check_orthogonalization`, :func:`evaluate_edited`, :func:`analyse_heads`, :func:`generalisation`,
:func:`write_report`; artifacts: :func:`save_direction` / :func:`load_direction`.
"""

from __future__ import annotations

import importlib

# Imported lazily so that `python -m neuroscope experiment --help` does not load torch and nnsight.
_EXPORTS = {
    "ArtifactError": "neuroscope.method.artifacts",
    "load_direction": "neuroscope.method.artifacts",
    "save_direction": "neuroscope.method.artifacts",
    "ExperimentConfig": "neuroscope.method.config",
    "ExperimentError": "neuroscope.method.config",
    "ExperimentData": "neuroscope.method.data",
    "length_report": "neuroscope.method.data",
    "load_experiment_data": "neuroscope.method.data",
    "Candidates": "neuroscope.method.direction",
    "compute_candidates": "neuroscope.method.direction",
    "EvaluationResult": "neuroscope.method.evaluation",
    "check_orthogonalization": "neuroscope.method.evaluation",
    "evaluate_direction": "neuroscope.method.evaluation",
    "evaluate_interventions": "neuroscope.method.evaluation",
    "evaluate_edited": "neuroscope.method.evaluation",
    "random_direction": "neuroscope.method.evaluation",
    "choose_edit": "neuroscope.method.frontier",
    "edit_frontier": "neuroscope.method.frontier",
    "Generalisation": "neuroscope.method.generalise",
    "generalisation": "neuroscope.method.generalise",
    "HeadAnalysis": "neuroscope.method.heads",
    "analyse_heads": "neuroscope.method.heads",
    "ExperimentResult": "neuroscope.experiment.pipeline",
    "run_experiment": "neuroscope.experiment.pipeline",
    "write_report": "neuroscope.experiment.report",
    "ScoredCandidates": "neuroscope.method.selection",
    "score_candidates": "neuroscope.method.selection",
    "select": "neuroscope.method.selection",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'neuroscope.experiment' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return getattr(module, name)


def __dir__() -> list[str]:
    return __all__
