"""Command-line entry: ``python -m neuroscope <command> [options]``.

Commands are dispatched lazily so ``--help`` is instant and a command only imports what it needs.
Every command returns a process exit code; user errors print one clear line to stderr and exit 2.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "analyze": (
        "neuroscope.cli",
        "analyze_main",
        "One prompt through the model: answer, refusal, top heads, logit lens.",
    ),
    "induction": ("neuroscope.cli", "induction_main", "Induction heads: scores per head and a mean-ablation test."),
    "behaviour": (
        "neuroscope.cli",
        "behaviour_main",
        "A behaviour's direction (e.g. French vs English): necessity and sufficiency against random directions.",
    ),
    "harmfulness": (
        "neuroscope.cli_beyond",
        "harmfulness_main",
        "Harmfulness vs refusal: two directions, their cosine per layer, and where prompts and jailbreaks sit.",
    ),
    "cone": (
        "neuroscope.cli_beyond",
        "cone_main",
        "The refusal cone: ablate k = 1..4 dimensions against random subspaces; is one direction enough?",
    ),
    "jailbreak": (
        "neuroscope.cli_beyond",
        "jailbreak_main",
        "Jailbreak template families: success under both judges, and the refusal signal of successful vs failed.",
    ),
    "experiment": (
        "neuroscope.experiment.cli",
        "experiment_main",
        "The full refusal-direction experiment with a report.",
    ),
    "evaluate": (
        "neuroscope.experiment.cli",
        "evaluate_main",
        "Refusal rates for prompt files under a saved direction.",
    ),
    "standin": (
        "neuroscope.model.standin",
        "main",
        "Build a random-weight Llama-3.2-3B-Instruct stand-in (real shape, tokenizer and template) offline.",
    ),
}


def usage() -> str:
    lines = ["usage: python -m neuroscope <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines.append("\nRun `python -m neuroscope <command> --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"neuroscope: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
