"""The research service behind the Direction, Interventions and Explorer tabs (no gradio here).

It holds the *current refusal direction* of each loaded model together with what the views need
to show it: candidate scores, per-layer candidates for the cosine matrix, held-out projections for
the separation plot, each head's mean-difference projection on the direction (head Δ) and the mean
per-head ``z`` used by head mean ablation. Locally there is one direction per model; in public
mode each visitor's is their own (``DirectionStore``). Interventions are per request: each call
builds its own intervention objects and runs under the model's lock, so two users never see each
other's edits.

Data flow: prompts -> model layer (means, logits, generations) -> pure analysis -> plain tensors
and dataclasses, which ``neuroscope.ui`` turns into figures.

Modules, along the seams of the work:

- ``sets``: the contrastive prompt sets offered (curated pairs, research sets, uploads, behaviours);
- ``state``: the current direction (``DirectionResult``), the per-session store and the visitor's session;
- ``direction``: find, load and describe the current direction;
- ``generation``: one prompt under interventions (baseline, ablated, added), whole or streamed;
- ``heads``: head Δ, the per-prompt callout, attribution (patching), head ablation, head attention;
- ``checks``: input checks and ``ResearchError``.

Everything is re-exported here: ``from neuroscope import services; services.find_direction(...)``.
"""

from __future__ import annotations

from neuroscope.types import Progress
from neuroscope.services.checks import (
    ResearchError,
    as_bool,
    as_choice,
    as_float,
    as_int,
    as_seed,
    plain_text,
    positive_int,
)
from neuroscope.services.state import DirectionResult, DirectionStore, current_session
from neuroscope.services.direction import (
    DIRECTION_SCALE_LIMIT,
    check_behaviour_at_baseline,
    describe,
    direction_from_file,
    find_direction,
    from_experiment,
    keep_current_reason,
    save_current,
    select_from_record,
    shipped_ablation_form,
    shipped_direction,
    works,
)
from neuroscope.services.generation import (
    MAX_STRENGTH,
    Generation,
    check_new_tokens,
    check_prompt,
    compare_interventions,
    intervention_conditions,
    run_condition,
    stream_condition,
    stream_interventions,
)
from neuroscope.analysis.heads import head_label, parse_head_label
from neuroscope.services.heads import (
    MAX_HEAD_PROMPTS,
    MEASURES,
    ablate_heads,
    describe_heads,
    head_attention,
    head_attribution,
    with_causal,
    head_callout,
    parse_heads,
    prompt_head_values,
    top_heads,
)
from neuroscope.services.sets import (
    CURATED,
    CURATED_NOTE,
    curated_note,
    RESEARCH,
    UPLOADED,
    ContrastiveSet,
    behaviour_pairs,
    behaviour_set_name,
    set_behaviour,
    contrastive_set_names,
    load_contrastive_set,
)

__all__ = [
    "CURATED",
    "CURATED_NOTE",
    "curated_note",
    "DIRECTION_SCALE_LIMIT",
    "MAX_HEAD_PROMPTS",
    "MAX_STRENGTH",
    "MEASURES",
    "RESEARCH",
    "UPLOADED",
    "ContrastiveSet",
    "DirectionResult",
    "DirectionStore",
    "Generation",
    "Progress",
    "ResearchError",
    "ablate_heads",
    "as_float",
    "as_int",
    "as_bool",
    "as_choice",
    "as_seed",
    "behaviour_pairs",
    "behaviour_set_name",
    "set_behaviour",
    "check_behaviour_at_baseline",
    "check_new_tokens",
    "check_prompt",
    "compare_interventions",
    "contrastive_set_names",
    "current_session",
    "describe",
    "describe_heads",
    "direction_from_file",
    "find_direction",
    "from_experiment",
    "head_attention",
    "head_attribution",
    "with_causal",
    "head_callout",
    "head_label",
    "parse_head_label",
    "intervention_conditions",
    "load_contrastive_set",
    "parse_heads",
    "plain_text",
    "positive_int",
    "prompt_head_values",
    "run_condition",
    "save_current",
    "select_from_record",
    "shipped_ablation_form",
    "shipped_direction",
    "keep_current_reason",
    "works",
    "stream_condition",
    "stream_interventions",
    "top_heads",
]
