"""JSON from outside is parsed with limits: deep nesting is a clear message, never a RecursionError."""

from __future__ import annotations

import json
import random

import pytest
import torch

from neuroscope import jsonio

DEEP = "[" * 10_000 + "]" * 10_000


def _depth(obj) -> int:  # the reference: recursion over the parsed object
    if isinstance(obj, dict):
        return 1 + max((_depth(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_depth(v) for v in obj), default=0)
    return 0


def test_nesting_depth_equals_the_parsed_objects_depth_even_with_brackets_in_strings():
    rng = random.Random(0)
    leaves = ['a"[{', 'x\\"]', "\\\\", 1, None, "}}}", '\\\\"', "\\u005b", ""]

    def make(d):
        if d == 0 or rng.random() < 0.3:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [make(d - 1) for _ in range(rng.randint(0, 3))]
        return {f'k{i}["{{': make(d - 1) for i in range(rng.randint(0, 3))}

    for _ in range(2000):
        obj = make(rng.randint(0, 8))
        assert jsonio.nesting_depth(json.dumps(obj)) == _depth(obj)


def test_deep_json_is_refused_with_a_message():
    with pytest.raises(json.JSONDecodeError, match="nested deeper than 64"):
        jsonio.loads(DEEP)
    assert jsonio.loads("[" * 64 + "]" * 64) is not None


def test_a_deep_prompt_file_is_a_prompt_file_error(tmp_path):
    from neuroscope.prompts import PromptFileError
    from neuroscope.prompt_files import load_prompt_file

    for name, text in (("deep.json", DEEP), ("deep.jsonl", DEEP + "\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(PromptFileError, match="nested deeper"):
            load_prompt_file(path, harmful=True)


def test_a_direction_with_deep_metadata_is_an_artifact_error(tmp_path):
    from safetensors.torch import save_file

    from neuroscope.method import artifacts

    path = tmp_path / "d.safetensors"
    save_file({"direction": torch.ones(4)}, str(path), metadata={"format": artifacts.DIRECTION_FORMAT, "json": DEEP})
    with pytest.raises(artifacts.ArtifactError, match="not valid JSON"):
        artifacts.load_tensors(path)
