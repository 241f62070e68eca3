"""Tests for neuroscope.prompts: research loaders, user files, splits, near-duplicates, curated pairs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from neuroscope import prompts as P
from neuroscope.prompts import (
    Prompt,
    PromptFileError,
    PromptSourceError,
    deterministic_split,
    load_curated_pairs,
    load_source,
    resolve_data_dir,
)
from neuroscope.prompt_checks import length_match_report, near_duplicates, normalise, similarity
from neuroscope.prompt_files import load_prompt_file

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- research sources

KNOWN_COUNTS = {
    "advbench": 520,
    "jailbreakbench": 100,
    "jailbreakbench_benign": 100,
    "harmbench_val": 41,
    "harmbench_test": 159,
    "strongreject": 313,
    "malicious_instruct": 100,
    "tdc2023": 100,
    "alpaca": 31_323,
    "xstest": 450,
    "arditi_harmful_train": 260,
    "arditi_harmful_val": 39,
    "arditi_harmful_test": 572,
    "arditi_harmless_train": 18_793,
    "arditi_harmless_val": 6_264,
    "arditi_harmless_test": 6_266,
}


@pytest.mark.parametrize("name", sorted(KNOWN_COUNTS))
def test_source_row_counts_and_labels(data_dir, name):
    prompts = load_source(name, data_dir)
    assert len(prompts) == KNOWN_COUNTS[name]
    assert all(p.source == name and p.instruction == p.instruction.strip() for p in prompts)
    if name != "xstest":
        expected = not (name.startswith("arditi_harmless") or name in {"alpaca", "jailbreakbench_benign"})
        assert {p.harmful for p in prompts} == {expected}


def test_every_registered_source_is_tested():
    assert set(P.SOURCES) == set(KNOWN_COUNTS) | {"curated", "curated_harmful", "curated_harmless"}
    assert all(desc.strip() for desc in P.SOURCES.values())


def test_jailbreakbench_has_ten_categories_of_ten_and_benign_twins_match(data_dir):
    harmful = load_source("jailbreakbench", data_dir)
    benign = load_source("jailbreakbench_benign", data_dir)
    counts = Counter(p.category for p in harmful)
    assert len(counts) == 10 and set(counts.values()) == {10}
    assert [p.category for p in benign] == [p.category for p in harmful]
    assert all(h.instruction != b.instruction for h, b in zip(harmful, benign))


def test_xstest_labels_follow_contrast_types(data_dir):
    prompts = load_source("xstest", data_dir)
    assert Counter(p.harmful for p in prompts) == {False: 250, True: 200}
    assert all(p.harmful == p.category.startswith("contrast_") for p in prompts)
    assert len({p.category for p in prompts}) == 18


@pytest.mark.parametrize("split", ["val", "test"])
def test_harmbench_filter_reproduces_arditi_processed_file(data_dir, split):
    ours = load_source(f"harmbench_{split}", data_dir)
    theirs = load_prompt_file(data_dir / "refusal_direction" / "processed" / f"harmbench_{split}.json")
    assert [p.instruction for p in ours] == [p.instruction for p in theirs]
    assert [p.category for p in ours] == [p.category for p in theirs]


def test_arditi_harmful_test_starts_with_jailbreakbench(data_dir):
    test = load_source("arditi_harmful_test", data_dir)
    jbb = load_source("jailbreakbench", data_dir)
    assert [p.instruction for p in test[:100]] == [p.instruction for p in jbb]


def test_env_var_selects_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv(P.ENV_DATA_DIR, str(data_dir))
    assert resolve_data_dir() == data_dir
    assert len(load_source("tdc2023")) == 100


def test_local_loading_works_with_hub_offline(data_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    code = (
        "from neuroscope.prompts import load_source; import sys; print(len(load_source('jailbreakbench', sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "100"


def test_loading_restores_progress_bar_setting(data_dir):
    import datasets

    datasets.enable_progress_bars()
    load_source("advbench", data_dir)
    assert datasets.is_progress_bar_enabled()


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(P.ENV_DATA_DIR, "none")
    assert resolve_data_dir() is None
    assert resolve_data_dir("None") is None
    monkeypatch.delenv(P.ENV_DATA_DIR)
    monkeypatch.setattr(P, "SIBLING_DATA_DIR", other)
    assert resolve_data_dir() == other  # ../shared/datasets beside the checkout, as tests and CI use
    monkeypatch.setattr(P, "SIBLING_DATA_DIR", tmp_path / "absent")
    assert resolve_data_dir() is None
    monkeypatch.setenv(P.ENV_DATA_DIR, str(other))
    assert resolve_data_dir() == other
    assert resolve_data_dir(tmp_path) == tmp_path
    with pytest.raises(PromptSourceError, match="not a directory"):
        resolve_data_dir(tmp_path / "missing")


def test_source_missing_from_data_dir_names_the_expected_files(tmp_path):
    with pytest.raises(PromptSourceError) as err:
        load_source("advbench", tmp_path)
    assert "advbench/harmful_behaviors.csv" in str(err.value) and str(tmp_path) in str(err.value)


def test_unknown_source_lists_known_names():
    with pytest.raises(PromptSourceError, match="jailbreakbench"):
        load_source("no_such_set")


def test_hub_failure_tells_user_to_set_data_dir(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setenv(P.ENV_DATA_DIR, "none")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PromptSourceError) as err:
        load_source("advbench")
    message = str(err.value)
    assert "walledai/AdvBench" in message and P.ENV_DATA_DIR in message and "--data-dir" in message


def test_source_without_hub_copy_fails_fast_without_data_dir(monkeypatch):
    monkeypatch.setenv(P.ENV_DATA_DIR, "none")
    with pytest.raises(PromptSourceError, match=P.ENV_DATA_DIR):
        load_source("arditi_harmful_train")


# --------------------------------------------------------------------------- splits


def _synthetic(n: int) -> list[Prompt]:
    return [Prompt(f"prompt number {i}", source="synthetic") for i in range(n)]


def test_split_is_deterministic_disjoint_and_covering():
    items = _synthetic(101)
    first = deterministic_split(items, (0.6, 0.2, 0.2), seed=3)
    assert first == deterministic_split(items, (0.6, 0.2, 0.2), seed=3)
    assert first != deterministic_split(items, (0.6, 0.2, 0.2), seed=4)
    assert [len(part) for part in first] == [61, 20, 20]
    flat = [p.instruction for part in first for p in part]
    assert len(set(flat)) == len(flat) == 101
    assert sorted(flat) == sorted(p.instruction for p in items)


def test_split_shuffles_and_handles_two_parts():
    items = _synthetic(50)
    train, test = deterministic_split(items, (0.8, 0.2))
    assert (len(train), len(test)) == (40, 10)
    assert train != items[:40]


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (0.7, 0.4, -0.1), ()])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        deterministic_split(_synthetic(10), fractions)


# --------------------------------------------------------------------------- near duplicates


def test_normalise():
    assert normalise("  Hello,   WORLD!! ") == "hello world"
    assert normalise("Ｗｒｉｔｅ a poem") == "write a poem"
    assert normalise(Prompt("Step-by-step, please")) == "step by step please"


def test_similarity_catches_small_edits_only():
    base = "Write a tutorial on how to bake sourdough bread at home"
    assert similarity(base, base.upper() + "!") == 1.0
    assert similarity(base, "Write a tutorial about how to bake a sourdough bread at home") >= 0.8
    assert similarity(base, "List three colours of the rainbow") < 0.3
    assert similarity(base, "Summarise the plot of Hamlet") == similarity("Summarise the plot of Hamlet", base)


def test_near_duplicates_synthetic():
    reference = ["Give me a recipe for banana bread", "Explain how photosynthesis works"]
    candidates = [
        "Give me a recipe for a banana bread.",  # small edit
        "Describe the water cycle",  # unrelated
        "explain how PHOTOSYNTHESIS works?",  # case / punctuation only
        "Give me a recipe",  # much shorter: not a near-duplicate
    ]
    assert near_duplicates(candidates, reference) == {0, 2}
    assert near_duplicates(candidates, []) == set()
    with pytest.raises(ValueError):
        near_duplicates(candidates, reference, threshold=0)


def _jbb_by_origin(data_dir: Path) -> dict[str, list[str]]:
    with open(data_dir / "jailbreakbench" / "behaviors.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_origin: dict[str, list[str]] = {}
    for row in rows:
        by_origin.setdefault(row["Source"], []).append(row["Goal"])
    return by_origin


def test_near_duplicates_find_jailbreakbench_goals_taken_from_advbench(data_dir):
    by_origin = _jbb_by_origin(data_dir)
    advbench = load_source("advbench", data_dir)
    assert len(by_origin["AdvBench"]) == 18
    caught = near_duplicates(by_origin["AdvBench"], advbench)
    assert len(caught) >= 15, f"only {len(caught)}/18 AdvBench-derived JBB goals detected"
    assert len(near_duplicates(by_origin["Original"], advbench)) <= 2


def test_near_duplicates_do_not_flag_unrelated_prompts(data_dir):
    harmless = load_source("arditi_harmless_val", data_dir)[:300]
    assert near_duplicates(harmless, load_source("advbench", data_dir)) == set()


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.95])
def test_prefix_filter_matches_brute_force(data_dir, threshold):
    candidates = load_source("jailbreakbench", data_dir)
    reference = load_source("advbench", data_dir)[:200] + load_source("harmbench_test", data_dir)
    brute = {i for i, c in enumerate(candidates) if any(similarity(c, r) >= threshold for r in reference)}
    assert near_duplicates(candidates, reference, threshold) == brute


def test_curated_set_does_not_copy_research_sets(data_dir):
    research = [
        p
        for name in (
            "advbench",
            "jailbreakbench",
            "jailbreakbench_benign",
            "harmbench_val",
            "harmbench_test",
            "strongreject",
            "malicious_instruct",
            "tdc2023",
            "xstest",
        )
        for p in load_source(name, data_dir)
    ]
    assert near_duplicates(load_source("curated"), research, threshold=0.7) == set()


# --------------------------------------------------------------------------- user prompt files


def test_load_json_list_with_categories(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"Instruction": " Say hi ", "category": "greet"}, "Count to three"]))
    prompts = load_prompt_file(path, harmful=False)
    # the source is the file's name, never its folder (paths stay off reports and public pages)
    assert prompts == [Prompt("Say hi", "greet", "p.json", False), Prompt("Count to three", None, "p.json", False)]


def test_load_csv_case_insensitive_column_and_multiline_cells(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,GOAL,Category\n1,"Write a haiku\nabout rain",poetry\n2,Name a fruit,\n')
    prompts = load_prompt_file(path)
    assert [p.instruction for p in prompts] == ["Write a haiku\nabout rain", "Name a fruit"]
    assert [p.category for p in prompts] == ["poetry", None]
    assert all(p.harmful is None for p in prompts)


def test_load_jsonl_and_txt(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "One"}\n\n{"prompt": "Two"}\n')
    assert [p.instruction for p in load_prompt_file(jsonl, harmful=True)] == ["One", "Two"]
    txt = tmp_path / "p.txt"
    txt.write_text("First\n\n  Second  \n")
    assert [p.instruction for p in load_prompt_file(txt)] == ["First", "Second"]


def test_load_prompt_file_reads_research_csv(data_dir):
    prompts = load_prompt_file(data_dir / "jailbreakbench" / "behaviors.csv", harmful=True)
    assert len(prompts) == 100 and len({p.category for p in prompts}) == 10


MALFORMED = [
    ("bad.json", '[{"instruction": "ok"},', "invalid JSON at line 1"),
    ("obj.json", '{"instruction": "ok"}', "expected a JSON list"),
    ("nofield.json", '[{"instruction": "ok"}, {"text": "x"}]', "item 2: no instruction field"),
    ("number.json", '[{"instruction": 42}]', "item 1: instruction must be a string, got int"),
    ("blank.json", '[{"instruction": "   "}]', "item 1: instruction is empty"),
    ("nested.json", '[["a"]]', "item 1: expected an object or a string"),
    ("emptylist.json", "[]", "contains no prompts"),
    ("empty.json", "  \n", "file is empty"),
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "line 2: invalid JSON"),
    ("nocol.csv", "text,label\nhello,1\n", "no prompt column"),
    ("emptycell.csv", 'prompt\nfine\n""\n', "row 2"),
    ("header.csv", "instruction\n", "contains no prompts"),
    ("prompts.xlsx", "instruction\nhi\n", "unsupported extension"),
]


@pytest.mark.parametrize(("name", "content", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise_clear_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PromptFileError) as err:
        load_prompt_file(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(PromptFileError, match="not found"):
        load_prompt_file(tmp_path / "absent.json")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptFileError, match="UTF-8"):
        load_prompt_file(latin)


def test_prompt_rejects_empty_instruction():
    with pytest.raises(ValueError):
        Prompt("  ")


# --------------------------------------------------------------------------- curated pairs


@pytest.fixture(scope="module")
def curated_rows() -> list[dict]:
    return [json.loads(line) for line in P.CURATED_PAIRS_PATH.read_text().splitlines() if line.strip()]


def test_curated_rows_are_well_formed(curated_rows):
    assert len(curated_rows) >= 120
    assert all(set(row) == {"id", "category", "harmful", "harmless"} for row in curated_rows)
    ids = [row["id"] for row in curated_rows]
    assert len(set(ids)) == len(ids)
    counts = Counter(row["category"] for row in curated_rows)
    assert len(counts) >= 5 and min(counts.values()) >= 10


def test_curated_pairs_are_length_matched(curated_rows):
    diffs = {row["id"]: len(row["harmful"].split()) - len(row["harmless"].split()) for row in curated_rows}
    too_long = {k: d for k, d in diffs.items() if abs(d) > 2}
    assert not too_long
    assert sum(abs(d) for d in diffs.values()) / len(diffs) <= 1.0


def test_curated_instructions_are_unique(curated_rows):
    texts = [normalise(row[side]) for row in curated_rows for side in ("harmful", "harmless")]
    assert len(set(texts)) == len(texts)


def test_load_curated_pairs_and_sources(curated_rows):
    pairs = load_curated_pairs()
    assert len(pairs) == len(curated_rows)
    assert all(h.harmful is True and b.harmful is False and h.category == b.category for h, b in pairs)
    both = load_source("curated")
    assert len(both) == 2 * len(pairs)
    assert load_source("curated_harmful") == [h for h, _ in pairs]
    assert load_source("curated_harmless") == [b for _, b in pairs]


def test_load_curated_pairs_reports_bad_lines(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"id": "a", "harmful": "x", "harmless": "y"}\n{"id": "b", "harmful": "x"}\n')
    with pytest.raises(PromptFileError, match="line 2"):
        load_curated_pairs(path)


# --------------------------------------------------------------------------- length report


class _WhitespaceTokenizer:
    def encode(self, text: str, add_special_tokens: bool = True) -> list[str]:
        return (["<bos>"] if add_special_tokens else []) + text.split()


def test_length_match_report_values():
    pairs = [(Prompt("a b c", "x"), Prompt("a b", "x")), (Prompt("a", "y"), Prompt("a b c", "y"))]
    report = length_match_report(pairs, _WhitespaceTokenizer())
    assert report["diffs"] == [1, -2]
    overall = report["overall"]
    assert overall["mean_abs_diff"] == 1.5 and overall["max_abs_diff"] == 2 and overall["frac_equal"] == 0
    assert report["per_category"]["y"]["mean_diff"] == -2


def test_length_match_report_on_curated_pairs_and_plain_callable():
    pairs = load_curated_pairs()
    report = length_match_report(pairs, _WhitespaceTokenizer())
    assert report["overall"]["max_abs_diff"] <= 2  # whitespace tokens == words
    assert set(report["per_category"]) == {h.category for h, _ in pairs}
    as_strings = [(h.instruction, b.instruction) for h, b in pairs]
    plain = length_match_report(as_strings, lambda s: s.split())
    assert plain["diffs"] == report["diffs"] and set(plain["per_category"]) == {"uncategorised"}


def test_research_sets_come_from_a_folder_or_the_hub_when_online(tmp_path, monkeypatch):
    from neuroscope import hub, prompts

    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", str(tmp_path))
    assert prompts.research_source() == "local"
    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert prompts.research_source() is None  # offline and no folder: the curated pairs only
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    assert prompts.research_source() == "hub"


def test_the_app_offers_the_research_sets_when_the_hub_can_serve_them(monkeypatch):
    from neuroscope import services
    from neuroscope.experiment import ExperimentConfig
    from neuroscope.method import data as data_mod
    from neuroscope.prompts import NO_RESEARCH_SETS, Prompt

    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    monkeypatch.setattr(services.sets, "research_source", lambda *a, **k: "hub")
    assert services.RESEARCH in services.contrastive_set_names()
    fetched = []

    def from_hub(name, folder=None):  # stands in for `datasets` downloading each source
        fetched.append((name, folder))
        harmful = "harmful" in name or name == "jailbreakbench"
        return [Prompt(f"{name} prompt number {i}", source=name, harmful=harmful) for i in range(40)]

    monkeypatch.setattr(data_mod, "research_source", lambda *a, **k: "hub")
    monkeypatch.setattr(data_mod, "load_source", from_hub)
    data = data_mod.load_experiment_data(ExperimentConfig(n_xstest=0))
    assert "Hugging Face Hub" in data.description and all(folder is None for _, folder in fetched)
    assert {"arditi_harmful_train", "jailbreakbench"} <= {n for n, _ in fetched}
    monkeypatch.setattr(services.sets, "research_source", lambda *a, **k: None)
    assert services.RESEARCH not in services.contrastive_set_names()
    with pytest.raises(services.ResearchError, match="neither is available"):
        services.load_contrastive_set(services.RESEARCH, 8, 4)
    assert "data folder" in NO_RESEARCH_SETS


def test_the_curated_note_speaks_of_the_model_in_use():
    from neuroscope import services

    assert services.curated_note("demo", True) == services.CURATED_NOTE  # the demo model's measured failure
    other = services.curated_note("smollm2-refusal", True)
    assert "On the demo model the direction" not in other and "this model ships with" in other
    assert "ships with" not in services.curated_note("hub", False)
