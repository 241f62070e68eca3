"""User prompt files (txt, csv, json, jsonl), parsed with the standard library so that malformed input is
reported with the file name and the row or line number; every instruction is checked as typed text is."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from neuroscope import jsonio
from neuroscope.prompts import CATEGORY_KEY, INSTRUCTION_KEYS, Prompt, PromptFileError, check_instruction


MAX_PROMPT_FILE_BYTES = 8 * 2**20  # a prompt file is a list of instructions, not a corpus


def load_prompt_file(path: str | Path, harmful: bool | None = None) -> list[Prompt]:
    """Read prompts from a user file.

    Supported: ``.json`` (a list of objects with an ``instruction`` field, or of strings),
    ``.jsonl`` (one such object per line), ``.csv`` (a ``goal``/``instruction``/``prompt``
    column, case-insensitive) and ``.txt`` (one prompt per non-blank line). An optional
    ``category`` field/column is kept.

    Args:
        path: The file.
        harmful: Label given to every prompt (None when unknown).

    Returns:
        The prompts, in file order, with ``source`` set to the file's name (never its folder).

    Raises:
        PromptFileError: Missing, unreadable, empty or malformed file, naming file and row.
    """
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: prompt file not found")
    size = path.stat().st_size
    if size > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(
            f"{path}: the file is {size / 2**20:.1f} MB; prompt files are limited to "
            f"{MAX_PROMPT_FILE_BYTES // 2**20} MB"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    if not text.strip():
        raise PromptFileError(f"{path}: file is empty")
    readers = {".json": _json_records, ".jsonl": _jsonl_records, ".csv": _csv_records, ".txt": _txt_records}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise PromptFileError(f"{path}: unsupported extension; use one of {', '.join(readers)}")
    prompts = [Prompt(instr, cat, path.name, harmful) for instr, cat in reader(path, text)]
    if not prompts:
        raise PromptFileError(f"{path}: contains no prompts")
    return prompts


_Record = tuple[str, "str | None"]


def _find_key(keys: Iterable[str], wanted: Sequence[str]) -> str | None:
    """Return the first of ``wanted`` present in ``keys`` (case-insensitive), as spelled in keys."""
    lowered = {k.strip().lower(): k for k in keys if isinstance(k, str)}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _record_from_item(path: Path, where: str, item: Any) -> _Record:
    if isinstance(item, str):
        return check_instruction(path, where, item), None
    if not isinstance(item, dict):
        raise PromptFileError(f"{path}: {where}: expected an object or a string, got {type(item).__name__}")
    key = _find_key(item, INSTRUCTION_KEYS)
    if key is None:
        raise PromptFileError(
            f"{path}: {where}: no instruction field (expected one of {', '.join(INSTRUCTION_KEYS)}; "
            f"found {', '.join(map(str, item)) or 'no fields'})"
        )
    cat_key = _find_key(item, (CATEGORY_KEY,))
    category = item.get(cat_key) if cat_key else None
    return check_instruction(path, where, item[key]), (str(category) if category else None)


def _json_records(path: Path, text: str) -> list[_Record]:
    try:
        data = jsonio.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, list):
        raise PromptFileError(f"{path}: expected a JSON list of prompts, got a {type(data).__name__}")
    return [_record_from_item(path, f"item {i}", item) for i, item in enumerate(data, start=1)]


def _jsonl_records(path: Path, text: str) -> list[_Record]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = jsonio.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from exc
        records.append(_record_from_item(path, f"line {lineno}", item))
    return records


def _csv_records(path: Path, text: str) -> list[_Record]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        header = reader.fieldnames or []
        key = _find_key(header, INSTRUCTION_KEYS)
        if key is None:
            raise PromptFileError(
                f"{path}: no prompt column (expected one of {', '.join(INSTRUCTION_KEYS)}, "
                f"case-insensitive; found {', '.join(header)})"
            )
        cat_key = _find_key(header, (CATEGORY_KEY,))
        records = []
        for row in reader:
            where = f"row {len(records) + 1} (line {reader.line_num})"
            category = row.get(cat_key) if cat_key else None
            records.append((check_instruction(path, where, row.get(key) or ""), category or None))
    except csv.Error as exc:
        raise PromptFileError(f"{path}: malformed CSV at line {reader.line_num}: {exc}") from exc
    return records


def _txt_records(path: Path, text: str) -> list[_Record]:
    return [
        (check_instruction(path, f"line {i}", line), None)
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


# --------------------------------------------------------------------------- splits
