"""The experiment's steps as the runner calls them: each takes small typed inputs by keyword (``Run``, what
every step reads; ``Chosen``, the selected direction) and returns its artifact as a JSON-ready record.

The maths lives in ``neuroscope.method``; these functions only say which prompts and settings each step
uses. Resume, timing and writing the artifacts are the runner's (``pipeline.run_experiment``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from neuroscope.analysis.directions import Selection
from neuroscope.analysis.metrics import is_refusal
from neuroscope.method import artifacts as art
from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.method.data import ExperimentData
from neuroscope.method.direction import Candidates, compute_candidates
from neuroscope.method.evaluation import check_orthogonalization, evaluate_edited, evaluate_interventions
from neuroscope.method.frontier import chosen_edit, edit_frontier
from neuroscope.method.generalise import generalisation
from neuroscope.method.heads import analyse_heads, heads_record
from neuroscope.method.selection import candidate_table, score_candidates, select, verify_by_generation
from neuroscope.model.activations import last_token_projections, projection_means
from neuroscope.model.orthogonalize import save_model
from neuroscope.types import Progress

EXPORT_DIR = "edited-model"
GCG_REQUESTS, GCG_STEPS, GCG_SECONDS = 5, 30, 30.0  # the report's suffix search: bounded, a few minutes at most


@dataclass
class Run:
    """What every step reads: the model, the settings, the prompt sets, the output folder and the refusal
    tokens. ``bar(step)`` gives a step its share of the run's progress bar."""

    lm: Any
    config: ExperimentConfig
    data: ExperimentData
    out: Path
    refusal_ids: list[int]
    bar: Callable[[str], Progress]

    def texts(self, split: str) -> list[str]:
        """One prompt set's texts (``"train_harmful"``, ``"test_harmless"``, ...)."""
        return ExperimentData.texts(getattr(self.data, split))

    @property
    def batch_size(self) -> int:
        return self.config.batch_size


@dataclass
class Chosen:
    """The selected direction as the later steps use it."""

    direction: Tensor  # [d_model] difference of means, unnormalised
    layer: int
    position: int  # negative post-instruction position
    pos_index: int  # its index among the candidate positions
    mean_target: Tensor  # [n_layers] float64 harmless mean projection (the mean-ablation target)


def candidates(*, run: Run) -> Candidates:
    """Step 2: every layer's and post-instruction position's difference of means on the training prompts."""
    return compute_candidates(
        run.lm, run.texts("train_harmful"), run.texts("train_harmless"), run.batch_size, run.bar("candidates")
    )


def candidates_meta(*, run: Run, found: Candidates, seconds: float) -> dict[str, Any]:
    return {
        "model": run.lm.name,
        "data": run.data.description,
        "position_labels": found.position_labels,
        "positions": list(range(-found.n_positions, 0)),
        "layers": "resid_pre of every layer",
        "n_harmful": len(run.data.train_harmful),
        "n_harmless": len(run.data.train_harmless),
        "seconds": seconds,
    }


def _selection_record(sel: Selection, scored: Any, table: list, labels: list[str]) -> dict[str, Any]:
    return {
        "layer": sel.layer,
        "position": sel.position,
        "pos_index": sel.pos_index,
        "position_label": labels[sel.pos_index],
        "bypass": sel.bypass,
        "induce": sel.induce,
        "kl": sel.kl,
        "reason": sel.reason,
        "fallback": sel.fallback,
        "layer_cut": scored.layer_cut,
        "baseline_harmful_score": scored.baseline_harmful,
        "baseline_harmless_score": scored.baseline_harmless,
        "table": table,
    }


def selection(*, run: Run, found: Candidates) -> tuple[dict[str, Any], Tensor, dict[str, Any]]:
    """Step 3: score every candidate, select one (checked by generation), measure its mean-ablation target.

    Returns the selection record, the direction and the direction file's metadata.
    """
    lm, config = run.lm, run.config
    scored = score_candidates(
        lm,
        found,
        run.texts("val_harmful"),
        run.texts("val_harmless"),
        run.refusal_ids,
        max_layer_frac=config.max_layer_frac,
        batch_size=run.batch_size,
        progress=run.bar("selection"),
    )
    tiny = lm.source == "tiny"  # an untrained wiring fixture refuses nothing: there is no rate to lower
    try:
        sel = select(scored, lm.n_layers, config.max_layer_frac, config.kl_threshold, allow_no_bypass=tiny)
        if tiny:
            verified: dict[str, Any] = {"skipped": "untrained tiny model (wiring only)"}
        else:
            sel, verified = verify_by_generation(
                lm,
                found,
                scored,
                sel,
                run.texts("val_harmful"),
                judge=is_refusal,
                max_new_tokens=config.max_new_tokens,
                batch_size=run.batch_size,
            )
    except ValueError as err:
        raise ExperimentError(f"no candidate direction could be selected: {err}") from None
    table = candidate_table(scored, sel, found.position_labels)
    record = {**_selection_record(sel, scored, table, found.position_labels), "verified_by_generation": verified}
    direction = found.direction(sel.layer, sel.pos_index)
    mean_target = projection_means(lm, run.texts("train_harmless"), direction, batch_size=run.batch_size)
    meta = {
        "model": lm.name,
        "layer": sel.layer,
        "position": sel.position,
        "position_label": found.position_labels[sel.pos_index],
        "data": run.data.description,
        "n_train": [len(run.data.train_harmful), len(run.data.train_harmless)],
        "mean_target": mean_target.tolist(),
        "norm": float(direction.norm()),
        "kind": "difference of means (harmful - harmless), unnormalised; resid_pre of `layer`",
    }
    return art.read_json_text(art.to_json(record)), direction, meta


def evaluation(*, run: Run, chosen: Chosen) -> dict[str, Any]:
    """Steps 4-5: necessity, sufficiency, controls and damage on the held-out prompts, with intervals."""
    config = run.config
    ev = evaluate_interventions(
        run.lm,
        chosen.direction,
        chosen.layer,
        run.texts("test_harmful"),
        run.texts("test_harmless"),
        run.refusal_ids,
        mean_target=chosen.mean_target,
        strength=config.strength,
        max_new_tokens=config.max_new_tokens,
        batch_size=run.batch_size,
        n_boot=config.n_boot,
        seed=config.seed,
        progress=run.bar("evaluation"),
    )
    proj_h = last_token_projections(run.lm, run.texts("test_harmful"), chosen.direction, run.batch_size)
    proj_b = last_token_projections(run.lm, run.texts("test_harmless"), chosen.direction, run.batch_size)
    return {
        "rates": ev.rates,
        "logit_scores": ev.logit_scores,
        "kl": ev.kl,
        "cross_entropy": ev.cross_entropy,
        "generations": ev.generations,
        "layer": ev.layer,
        "strength": ev.strength,
        "projections": {"harmful": proj_h, "harmless": proj_b},
    }


def frontier(*, run: Run, chosen: Chosen, evaluated: dict[str, Any]) -> dict[str, Any]:
    """Step 4b: the weight-edit sweep (mean form; zero form at each λ): refusal removed against damage done."""
    config = run.config
    return edit_frontier(
        run.lm,
        chosen.direction,
        chosen.mean_target,
        val_harmful=run.texts("val_harmful"),
        val_harmless=run.texts("val_harmless"),
        test_harmful=run.texts("test_harmful"),
        test_harmless=run.texts("test_harmless"),
        baseline_answers=evaluated["generations"]["harmless"]["baseline"],
        evaluation=evaluated,
        strengths=config.edit_strengths,
        tolerance=config.edit_tolerance,
        max_new_tokens=config.max_new_tokens,
        batch_size=run.batch_size,
        n_boot=config.n_boot,
        seed=config.seed,
        progress=run.bar("frontier"),
    )


def orthogonalization(*, run: Run, chosen: Chosen, swept: dict[str, Any]) -> dict[str, Any]:
    """Step 4c: the chosen edit baked into a copy of the weights, compared with its hooks and run on the
    held-out prompts; exported when asked."""
    config = run.config
    edit = chosen_edit(swept)
    report = run.bar("orthogonalization")
    report(0.0, f"baking the chosen edit ({edit.label}) into the weights; comparing with its hooks")
    prompts = run.texts("test_harmful")[: config.n_equivalence]
    record, edited = check_orthogonalization(
        run.lm,
        chosen.direction,
        prompts,
        max_new_tokens=config.max_new_tokens,
        batch_size=run.batch_size,
        edit=edit,
        target=chosen.mean_target.float(),
    )
    report(0.3, "the edited weights on the held-out prompts")
    record["held_out"] = evaluate_edited(
        edited,
        run.lm,
        run.texts("test_harmful"),
        run.texts("test_harmless"),
        max_new_tokens=config.max_new_tokens,
        batch_size=run.batch_size,
        n_boot=config.n_boot,
        seed=config.seed,
    )
    record["rule"] = swept["rule"]
    if config.export_model:
        with art.atomic_dir(run.out / EXPORT_DIR) as tmp:
            save_model(edited, tmp)
        record["exported_to"] = str(run.out / EXPORT_DIR)
    del edited
    return record


def heads(*, run: Run, chosen: Chosen) -> dict[str, Any]:
    """Step 6: head Δ, the ranking, top-k against random-k and the permutation test."""
    config, n = run.config, run.config.n_head_prompts
    analysis = analyse_heads(
        run.lm,
        chosen.direction,
        run.texts("train_harmful")[:n],
        run.texts("train_harmless")[:n],
        run.texts("val_harmful"),
        run.refusal_ids,
        ks=config.head_ks,
        n_random=config.n_random_head_sets,
        n_permutations=config.n_permutations,
        batch_size=run.batch_size,
        seed=config.seed,
        max_patch_heads=config.max_patch_heads,
        n_boot=min(config.n_boot, 1000),
        progress=run.bar("heads"),
    )
    return heads_record(analysis)


def generalisation_step(*, run: Run, chosen: Chosen, found: Candidates, evaluated: dict[str, Any]) -> dict[str, Any]:
    """Step 7: per-category rates, the category directions' cosines, and XSTest over-refusal."""
    config = run.config
    g = generalisation(
        run.lm,
        chosen.direction,
        chosen.layer,
        chosen.pos_index,
        run.data.test_harmful,
        evaluated["generations"]["harmful"],
        found.harmless_mean,
        run.data.xstest_safe,
        run.data.xstest_unsafe,
        max_new_tokens=config.max_new_tokens,
        batch_size=run.batch_size,
        n_boot=config.n_boot,
        seed=config.seed,
        progress=run.bar("generalisation"),
    )
    return {"per_category": g.per_category, "cosine_labels": g.cosine_labels, "cosine": g.cosine, "xstest": g.xstest}


def beyond(*, run: Run, chosen: Chosen) -> dict[str, Any]:
    """Step 8 (optional): harmfulness vs refusal, the refusal cone, the jailbreak families and a short suffix
    search, on the run's own prompts, layer and position."""
    from neuroscope.services.cone import refusal_cone
    from neuroscope.services.gcg import gcg_search
    from neuroscope.services.harmfulness import MAX_PROMPTS, harmfulness_vs_refusal
    from neuroscope.services.jailbreaks import jailbreak_families

    config, sub = run.config, run.bar("beyond")
    n_train, n_test = min(config.n_train, MAX_PROMPTS), min(config.n_test, 32)
    shared = dict(
        layer=chosen.layer,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        batch_size=run.batch_size,
        data=run.data,
        n_train=n_train,
    )
    harm = harmfulness_vs_refusal(
        run.lm,
        n_per_group=n_test,
        progress=lambda f, m: sub(0.4 * f, f"harmfulness vs refusal: {m}"),
        **shared,
    )
    cone = refusal_cone(
        run.lm,
        n_test=n_test,
        position=chosen.position,
        progress=lambda f, m: sub(0.4 + 0.3 * f, f"refusal cone: {m}"),
        **shared,
    )
    jail = jailbreak_families(
        run.lm,
        n_test=min(n_test, 16),
        progress=lambda f, m: sub(0.7 + 0.15 * f, f"jailbreak families: {m}"),
        **shared,
    )
    gcg = gcg_search(
        run.lm,
        jail.requests[:GCG_REQUESTS],
        steps=GCG_STEPS,
        time_budget_s=GCG_SECONDS,
        seed=config.seed,
        progress=lambda f, m: sub(0.85 + 0.15 * f, f"suffix search: {m}"),
    )
    record = gcg.to_json()
    record["histories"] = [a.history for a in gcg.attacks]
    return {"harmfulness": harm.to_json(), "cone": cone.to_json(), "jailbreaks": jail.to_json(), "gcg": record}
