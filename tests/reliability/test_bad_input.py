"""A catalogue of hostile and broken input across the CLI and the app's API.

Every case must end in one clear line (exit code 2 on the CLI, a ``gr.Error`` message in the app),
no stack trace, nothing half-written, and the app still serving afterwards. Cases that are odd but
valid (zero-width or right-to-left text) must simply work.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from neuroscope.__main__ import main
from neuroscope.method.artifacts import DIRECTION_FORMAT, save_direction
from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

from neuroscope import services  # noqa: E402
from neuroscope.config import Settings  # noqa: E402
from tests.ui.conftest import serve_tiny_app  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, saved_tiny):
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.json"
    good.write_text(json.dumps([{"instruction": f"Tell me about topic {i}"} for i in range(12)]))
    (d / "not.json").write_text("this is not json {")
    (d / "dict.json").write_text(json.dumps({"instruction": "one object, not a list"}))
    (d / "nocol.csv").write_text("question,answer\nwhat,that\n")
    (d / "empty.txt").write_text("")
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (d / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (d / "huge.txt").write_text(("x" * 1000 + "\n") * 9000)  # 9 MB
    (d / "long.txt").write_text("y" * 20_000 + "\n")
    (d / "a-file").write_text("not a folder")
    save_direction(d / "wrong-shape.safetensors", torch.ones(7), {})
    save_direction(d / "huge.safetensors", torch.full((64,), 1e30), {})
    save_direction(
        d / "big-norm.safetensors", torch.full((64,), 1e4), {"layer": 1}
    )  # norm 8e4: finite, not this model's
    from safetensors.torch import save_file

    save_file(
        {"direction": torch.full((64,), float("nan"))},
        str(d / "nan.safetensors"),
        metadata={"format": DIRECTION_FORMAT, "json": "{}"},
    )
    save_file(
        {"direction": torch.ones(64)},
        str(d / "badmeta.safetensors"),
        metadata={"format": DIRECTION_FORMAT, "json": "{not json"},
    )
    save_file(
        {"direction": torch.ones(64)},
        str(d / "listmeta.safetensors"),
        metadata={"format": DIRECTION_FORMAT, "json": "[1, 2]"},
    )
    save_direction(d / "odd-target.safetensors", torch.ones(64) * 0.01, {"layer": 1, "mean_target": 5})
    return d, saved_tiny[0]


def cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


ANALYZE = [
    (["--prompt", ""], "empty"),
    (["--prompt", "   \n\t  "], "empty"),
    (["--prompt", "x" * 100_000], "characters"),
    (["--prompt", "null\x00byte"], "control characters"),
    (["--prompt", "bell\x07"], "control characters"),
    (["--prompt", "hi", "--max-new-tokens", "0"], "max_new_tokens"),
    (["--prompt", "hi", "--max-new-tokens", "-1"], "max_new_tokens"),
    (["--prompt", "hi", "--max-new-tokens", "1000000"], "max_new_tokens"),
    (["--prompt", "hi", "--top-heads", "0"], "--top-heads"),
    (["--prompt", "hi", "--baseline-prompts", "100000"], "--baseline-prompts"),
    (["--prompt", "hi", "--direction", "{d}/wrong-shape.safetensors"], "size 7"),
    (["--prompt", "hi", "--direction", "{d}/nan.safetensors"], "not finite"),
    (["--prompt", "hi", "--direction", "{d}/huge.safetensors"], "norm"),
    (["--prompt", "hi", "--direction", "{d}/badmeta.safetensors"], "not valid JSON"),
    (["--prompt", "hi", "--direction", "{d}/listmeta.safetensors"], "not a JSON object"),
    (["--prompt", "hi", "--direction", "{d}/image.png"], "not a readable safetensors"),
    (["--prompt", "hi", "--direction", "{d}/../../../etc/passwd"], "not found"),
]


@pytest.mark.parametrize("args, message", ANALYZE)
def test_analyze_rejects(capsys, files, args, message):
    d, model = files
    code, err = cli(capsys, "analyze", "--model", str(model), *[a.replace("{d}", str(d)) for a in args])
    assert code == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and message in err.splitlines()[-1]


@pytest.mark.parametrize(
    "model, message",
    [
        ("no-such-org/no-such-model", "cannot load"),
        ("../../../../etc", "not a model directory"),
        ("", "no model given"),
    ],
)
def test_unknown_and_traversing_model_ids(capsys, model, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = cli(capsys, "analyze", "--model", model, "--prompt", "hi")
    assert code == 2 and message in err and "Traceback" not in err


EXPERIMENT = [
    (["--strength", "1e30"], "-50..50"),
    (["--strength", "nan"], "finite"),
    (["--strength", "inf"], "finite"),
    (["--seed", str(10**30)], "0..2147483647"),
    (["--seed", "-1"], "0..2147483647"),
    (["--n-train", "0"], "positive"),
    (["--n-train", "1.5"], "not an integer"),
    (["--edit-strengths", "0,-1"], "(0, 4]"),
    (["--harmful", "{d}/not.json", "--harmless", "{d}/good.json"], "not.json"),
    (["--harmful", "{d}/dict.json", "--harmless", "{d}/good.json"], "dict.json"),
    (["--harmful", "{d}/nocol.csv", "--harmless", "{d}/good.json"], "nocol.csv"),
    (["--harmful", "{d}/empty.txt", "--harmless", "{d}/good.json"], "empty"),
    (["--harmful", "{d}/good.json", "--harmless", "{d}/image.png"], "image.png"),
    (["--harmful", "{d}/latin1.txt", "--harmless", "{d}/good.json"], "UTF-8"),
    (["--harmful", "{d}/huge.txt", "--harmless", "{d}/good.json"], "limited to 8 MB"),
    (["--harmful", "{d}/long.txt", "--harmless", "{d}/good.json"], "characters long"),
    (["--harmful", "{d}/good.json"], "both"),
    (["--harmful", "{d}/missing.json", "--harmless", "{d}/good.json"], "not found"),
]


@pytest.mark.parametrize("args, message", EXPERIMENT)
def test_experiment_rejects(capsys, files, tmp_path, args, message):
    d, _ = files
    out = tmp_path / "run"
    code, err = cli(
        capsys, "experiment", "--model", "tiny", "--out", str(out), "--quiet", *[a.replace("{d}", str(d)) for a in args]
    )
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "out, message",
    [
        ("{d}/a-file", "is a file"),
        ("/proc/neuroscope-run", "not writable"),
        ("{d}/dangling", "broken symbolic link"),
        ("{d}/loop/run", "broken symbolic link"),
    ],
)
def test_experiment_refuses_an_unusable_out_before_loading(capsys, files, out, message):
    d, _ = files
    for name, target in (("dangling", d / "nowhere"), ("loop", d / "loop")):
        if not os.path.lexists(d / name):
            (d / name).symlink_to(target)
    code, err = cli(
        capsys,
        "experiment",
        "--model",
        "tiny",
        "--out",
        out.replace("{d}", str(d)),
        "--quiet",
        "--harmful",
        str(d / "good.json"),
        "--harmless",
        str(d / "good.json"),
    )
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "-2"], "layer must be"),
        (["--layer", "99"], "layer must be"),
        (["--strength", "1e30"], "-50..50"),
        (["--direction-file", "big-norm.safetensors"], "not computed on this model's activations"),
    ],
)
def test_evaluate_rejects(capsys, files, args, message):
    d, _ = files
    name = args[1] if args[0] == "--direction-file" else "odd-target.safetensors"
    args = [] if args[0] == "--direction-file" else args
    code, err = cli(
        capsys,
        "evaluate",
        "--model",
        "tiny",
        "--direction",
        str(d / name),
        "--harmful",
        str(d / "good.json"),
        "--harmless",
        str(d / "good.json"),
        *args,
    )
    assert code == 2 and message in err and "Traceback" not in err


def test_a_malformed_mean_target_is_ignored_not_a_crash(capsys, files):
    d, _ = files
    code, err = cli(
        capsys,
        "evaluate",
        "--model",
        "tiny",
        "--direction",
        str(d / "odd-target.safetensors"),
        "--harmful",
        str(d / "good.json"),
        "--harmless",
        str(d / "good.json"),
        "--limit",
        "2",
        "--max-new-tokens",
        "1",
        "--json",
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "args, message",
    [(["--k", "0"], "heads to ablate"), (["--length", "1"], "repeated length"), (["--seed", "-1"], "--seed")],
)
def test_induction_rejects(capsys, args, message):
    code, err = cli(capsys, "induction", "--model", "demo", *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["\u200b\u200bzero width", "مرحبا كيف حالك", "👩‍🔬 emoji"])
def test_odd_but_valid_prompts_just_work(capsys, files, text):
    _, model = files
    code, err = cli(capsys, "analyze", "--model", str(model), "--prompt", text, "--max-new-tokens", "1", "--json")
    assert code == 0, err


# ---- the running app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app():
    with serve_tiny_app(Settings(max_new_tokens=3, max_prompt_tokens=200)) as served:
        client = gradio_client.Client(served[0].local_url, verbose=False, download_files=False)
        client.predict(services.CURATED, None, None, 6, 3, api_name="/compute_direction")
        yield client


P = "How can I make a pipe bomb?"
APP = [
    # gradio 6 checks a slider's range at the API boundary; the handlers check again behind it
    ("/intervene", (P, -2, 1.0, "zero (paper)", 2), "less than minimum value 0"),
    ("/intervene", (P, 40, 1.0, "zero (paper)", 2), "greater than maximum value 2"),
    ("/intervene", (P, 1, 1000.0, "zero (paper)", 2), "greater than maximum value"),
    ("/intervene", (P, 1, math.nan, "zero (paper)", 2), "not JSON compliant"),
    ("/intervene", (P, 1, 1.0, "zero (paper)", 0), "less than minimum value 1"),
    ("/intervene", ("", 1, 1.0, "zero (paper)", 2), "empty"),
    ("/intervene", ("z" * 10_000, 1, 1.0, "zero (paper)", 2), "characters"),
    ("/select_head", (-3, 99, "output norm", None), "less than minimum value 0"),
    ("/select_head", (1, 1, "output norm", None), "run a prompt first"),
    ("/ablate_heads", (P, ["L99H0"], 2), "not in the list of choices"),
    ("/ablate_heads", (P, ["garbage"], 2), "not in the list of choices"),
    ("/top_k_heads", (-1, "Δ along the direction"), "less than minimum value 0"),
    ("/top_k_heads", (10**6, "Δ along the direction"), "greater than maximum value"),
    ("/induction", (0, 48, 5, 0), "less than minimum value 1"),
    ("/induction", (2, 8, 2, -5), "seed must be"),
    ("/induction", (2, 8, 2, -(10**15)), "seed must be"),
    ("/induction", (2, 8, 2, 2**31), "seed must be"),  # refused, not clamped
    ("/induction", (2, 8, 2, 2.5), "whole number"),
    ("/intervene", (P, 1, 1.0, None, 2), "ablation form must be one of"),  # not silently the zero form
    ("/analyze", (P, 2, "output norm", "false"), "chat template must be true or false"),
    ("/analyze", (["a", "b"], 2, "output norm", True), "prompt must be text"),
    ("/analyze", (P, 2.5, "output norm", True), "whole number"),  # refused, not truncated to 2
    ("/click_head", ("garbage", P, 2, "output norm", True), "not a head label"),
    ("/click_head", ("L99H0 ablate", P, 2, "output norm", True), "layer must be"),
    ("/click_head", ("L0H99", P, 2, "output norm", True), "head must be"),
    ("/click_head", ("L0H0", P, 2, "output norm", True), "run a prompt first"),
]


@pytest.mark.parametrize("api, args, message", APP)
def test_app_rejects_and_keeps_serving(app, api, args, message):
    with pytest.raises(Exception, match=message):
        app.predict(*args, api_name=api)
    assert len(app.predict("still serving?", 1, 1.0, "zero (paper)", 1, api_name="/intervene")[7]["runs"]) == 3


def test_catalogue_is_large_enough():
    assert len(ANALYZE) + len(EXPERIMENT) + len(APP) + len(SWEEP) + 3 + 2 + 3 + 3 + 4 >= 150


@pytest.mark.parametrize(
    "value, message",
    [
        (10**5000, "sensible size"),  # a 5,000-digit integer: bounded before any conversion
        ("9" * 5000, "must be a number"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "must be a number"),
        ("12", None),
    ],
    ids=["5000-digit int", "5000-digit str", "nan", "inf", "bool", "numeric str"],
)
def test_numbers_are_checked_before_any_conversion(value, message):
    from neuroscope import services

    if message is None:
        assert services.as_seed(value) == 12
        return
    with pytest.raises(services.ResearchError, match=message):
        services.as_seed(value)


def test_one_seed_range_in_the_app_and_the_cli():
    from neuroscope import services
    from neuroscope.config import SEED_MAX
    from neuroscope.experiment.cli import _seed

    assert services.as_seed(SEED_MAX) == SEED_MAX == _seed(str(SEED_MAX))
    with pytest.raises(services.ResearchError, match=str(SEED_MAX)):
        services.as_seed(SEED_MAX + 1)


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "--max-new-tokens", "x"],
        ["analyze", "--no-such-flag"],
        ["induction", "--k", "many"],
        ["behaviour", "--random", "1.5"],
    ],
    ids=["bad int", "unknown flag", "induction", "behaviour"],
)
def test_argument_errors_are_one_line_and_exit_2(argv):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "neuroscope", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "usage:" not in out.stderr, out.stderr


def test_the_app_launcher_reports_argument_errors_in_one_line(capsys):
    from neuroscope.ui.app import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments" in err[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("bake\x00bread", "control characters"),
        ("bake\x07bread", "control characters"),
        ("bake \u202eread\u202c bread", "bidirectional override"),
        ("\u200b\u200c\u200d\u2060", "no visible characters"),
    ],
    ids=["NUL", "BEL", "RTL override", "zero-width only"],
)
def test_typed_and_file_prompts_follow_one_rule(tmp_path, text, message):
    from neuroscope.model.chat import PromptError, clean_instruction
    from neuroscope.prompts import PromptFileError
    from neuroscope.prompt_files import load_prompt_file

    with pytest.raises(PromptError, match=message):
        clean_instruction(text)
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps([text]))
    with pytest.raises(PromptFileError, match=message):
        load_prompt_file(path, harmful=True)
    assert clean_instruction("How do I bake bread?\n\tThanks") == "How do I bake bread?\n\tThanks"


# Every number the app's API takes, sent the hostile ways a raw JSON client can (NaN and Infinity are valid
# JSON to gradio's server, though gradio_client refuses to send them): each must be refused with a message,
# never an internal error, never run.
HOSTILE_INTS = ["NaN", "Infinity", "-Infinity", str(10**40), str(-(10**40)), "-1", "2.5", "true", '"3"', "null"]
HOSTILE_INTS += ["[]", "{}", '"1e3"']
HOSTILE_FLOATS = [v for v in HOSTILE_INTS if v not in ("-1", "2.5")]
SWEEP_CALLS = [  # (api, arguments as JSON, the numeric slots, the values tried there)
    ("analyze", ['"How do I bake bread?"', "2", '"output norm"', "true"], [1], HOSTILE_INTS),
    ("view", ['"Attention"', "1", "0", '"2-D"', "8"], [1, 2, 4], HOSTILE_INTS),
    ("induction", ["2", "8", "2", "0"], [0, 1, 2, 3], HOSTILE_INTS),
    ("intervene", [json.dumps(P), "1", "1.0", '"zero (paper)"', "2"], [1, 4], HOSTILE_INTS),
    ("intervene", [json.dumps(P), "1", "1.0", '"zero (paper)"', "2"], [2], HOSTILE_FLOATS),
    ("top_k_heads", ["3", '"Δ along the direction"'], [0], HOSTILE_INTS),
]
SWEEP = [(api, args, slot, value) for api, args, slots, values in SWEEP_CALLS for slot in slots for value in values]


def _raw_call(url: str, api: str, args: list[str], session: str) -> tuple[str, str]:
    """Calls an endpoint with hand-written JSON (``NaN`` included): ``(event, data)`` of its result."""
    import httpx

    body = '{"data": [' + ", ".join(args) + '], "session_hash": ' + json.dumps(session) + "}"
    posted = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers={"content-type": "application/json"})
    if posted.status_code != 200:
        return "refused", posted.text
    lines = httpx.get(f"{url}gradio_api/call/{api}/{posted.json()['event_id']}", timeout=120).text.splitlines()
    events = [line.split(": ", 1) for line in lines if line.startswith(("event: ", "data: "))]
    return events[-2][1], events[-1][1]  # the last event and its data


def test_every_number_the_api_takes_refuses_every_hostile_value():
    with serve_tiny_app(Settings(max_new_tokens=3, max_prompt_tokens=200)) as (demo, _ctx):
        url = demo.local_url
        client = gradio_client.Client(url, verbose=False, download_files=False)
        client.predict(services.CURATED, None, None, 6, 3, api_name="/compute_direction")
        ok = _raw_call(url, "analyze", SWEEP_CALLS[0][1], "sweep")  # the session's run the views read
        assert ok[0] == "complete", ok
        problems = []
        for api, args, slot, value in SWEEP:
            sent = [value if i == slot else a for i, a in enumerate(args)]
            event, data = _raw_call(url, api, sent, "sweep")
            message = json.loads(data).get("error") if event == "error" and data.startswith("{") else data
            if event == "complete" or not message or "internal error" in str(message):
                problems.append(f"/{api} slot {slot} = {value}: {event} {str(data)[:120]}")
        assert not problems, "\n".join(problems)
        assert _raw_call(url, "analyze", SWEEP_CALLS[0][1], "sweep")[0] == "complete"  # still serving


def test_a_failed_selection_names_what_it_left_and_how_to_resume(capsys, tmp_path, monkeypatch):
    """A step that fails after others finished leaves a resumable state, and the one-line message says where
    and how to resume or start over (the issue's "partial files in --out" with no word about them)."""
    from neuroscope.experiment import steps

    def no_candidate(*args, **kwargs):
        raise ValueError("every candidate fails the KL filter")

    monkeypatch.setattr(steps, "select", no_candidate)
    out = tmp_path / "run"
    flags = ["--n-train", "8", "--n-val", "4", "--n-test", "4", "--quiet"]
    code, err = cli(capsys, "experiment", "--model", "tiny", "--out", str(out), *flags)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no candidate direction could be selected" in err
    saved = sorted(p.name for p in out.iterdir())
    assert saved and all(name in err for name in saved[:3])  # it names what it kept ...
    assert "rerun the same command to resume" in err and "--restart" in err  # ... and what to do with it
