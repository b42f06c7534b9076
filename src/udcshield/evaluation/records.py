"""Result records: one row per image x model x defense x attack x budget x metric (x draw).

Tables and plots are views of records. A record is a dict::

    {"image_id": str, "model": str, "defense": str, "attack": str,
     "budget": int,      # L-infinity budget in units of 1/256 (Song et al., arXiv 2402.13629); 0 = clean
     "metric": str,      # e.g. "psnr", "ssim" (BasicSR convention)
     "value": float,
     "draw": int,        # optional: draw index of a stochastic defense
     "seed": int}        # optional: seed of that draw / attack
"""

from __future__ import annotations

import contextlib
import csv
import math
import operator
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS: tuple[str, ...] = ("image_id", "model", "defense", "attack", "budget", "metric", "value")
OPTIONAL_COLUMNS: tuple[str, ...] = ("draw", "seed")
STRING_COLUMNS: tuple[str, ...] = ("image_id", "model", "defense", "attack", "metric")
CLEAN_ATTACK: str = "clean"

Record = dict[str, Any]


def _int_field(value: Any, column: str, where: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{where}: {column} must be an int, got {value!r}") from None
    if isinstance(value, bool):
        raise ValueError(f"{where}: {column} must be an int, got {value!r}")
    try:
        number = operator.index(value)  # int or numpy integer; rejects floats
    except TypeError:
        raise ValueError(f"{where}: {column} must be an int, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{where}: {column} must be >= 0, got {number}")
    return number


def validate_record(record: Mapping[str, Any], where: str = "record") -> Record:
    """Check one record and return a normalized copy (str fields, int budget/draw/seed, float value).

    Raises ValueError naming the record and the column: missing or unknown keys, empty strings,
    negative or non-integer budget/draw/seed, NaN or non-numeric value (+-inf is allowed).
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(record).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise ValueError(f"{where} is missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    unknown = sorted(set(record) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise ValueError(
            f"{where} has unknown column(s) {unknown}; allowed: {list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    out: Record = {}
    for column in STRING_COLUMNS:
        text = str(record[column]) if record[column] is not None else ""
        if not text.strip():
            raise ValueError(f"{where}: {column} must be a non-empty string")
        out[column] = text
    out["budget"] = _int_field(record["budget"], "budget", where)
    try:
        value = float(record["value"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: value must be a number, got {record['value']!r}") from None
    if math.isnan(value):
        raise ValueError(f"{where}: value is NaN")
    out["value"] = value
    for column in OPTIONAL_COLUMNS:
        if column in record and record[column] is not None and record[column] != "":
            out[column] = _int_field(record[column], column, where)
    return out


def write_records_csv(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Validate and write records to CSV atomically (temporary file in the same folder, then rename).

    Columns: the required ones, then ``draw``/``seed`` if any record has them (empty when absent).
    Floats are written with ``repr`` so they read back bit-identically. Returns the path.
    """
    rows = [validate_record(r, f"record {i}") for i, r in enumerate(records)]
    columns = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "value": repr(row["value"])})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_records_csv(path: str | os.PathLike[str]) -> list[Record]:
    """Read and validate records written by :func:`write_records_csv`.

    Raises FileNotFoundError for a missing file and ValueError naming the file, the missing or unknown
    columns, or the offending line.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown:
            raise ValueError(f"{path}: unknown column(s) {unknown}")
        records = []
        for row in reader:
            if None in row:
                raise ValueError(f"{path} line {reader.line_num}: more fields than columns")
            records.append(validate_record(row, f"{path} line {reader.line_num}"))
    return records
