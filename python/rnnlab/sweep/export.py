"""A sweep's runs as a table for researchers' tools: one row per run, every column of the runs
table (:data:`rnnlab.sweep.schema.COLUMNS`), then one ``labels.<factor>`` column per bundle
factor (e.g. Pascanu's ``labels.method``), so the table groups like the reports do.

* :func:`write_csv`: the standard library's csv (no pandas needed); JSON columns (config, labels,
  history, profiles) as their JSON text, NULL as an empty field.
* :func:`write_parquet`: needs pyarrow; columns typed from the schema (INTEGER int64, REAL
  float64, TEXT and JSON text string), NULL as null.
* :meth:`rnnlab.sweep.ResultStore.to_pandas`: a DataFrame (needs pandas) with the JSON columns
  decoded into dicts and lists.
"""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .schema import COLUMNS, JSON_COLUMNS, NAMES

_ARROW_TYPES = {"INTEGER": "int64", "REAL": "float64", "TEXT": "string", "JSON": "string"}


def table(rows: Sequence[dict], json_as_text: bool) -> tuple[list[str], list[dict]]:
    """(columns, records) of ``rows`` (:meth:`ResultStore.rows`): the runs columns in order, then
    ``labels.<factor>`` for every factor some run has a label of; JSON columns as JSON text when
    ``json_as_text``, else as the decoded objects."""
    factors = sorted({k for r in rows for k in (r.get("labels") or {})})
    columns = [*NAMES, *(f"labels.{k}" for k in factors)]
    records = []
    for r in rows:
        record = {c: json.dumps(r[c]) if json_as_text and c in JSON_COLUMNS and r.get(c) is not None else r.get(c)
                  for c in NAMES}
        record.update({f"labels.{k}": (r.get("labels") or {}).get(k) for k in factors})
        records.append(record)
    return columns, records


def write_csv(rows: Sequence[dict], out: str | Path) -> None:
    """Write ``rows`` as CSV to the file ``out`` ("-": standard output)."""
    columns, records = table(rows, json_as_text=True)
    stream = sys.stdout if str(out) == "-" else open(out, "w", newline="")
    try:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    finally:
        if stream is not sys.stdout:
            stream.close()


def write_parquet(rows: Sequence[dict], out: str | Path) -> None:
    """Write ``rows`` as a Parquet file ``out`` (needs pyarrow)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Parquet export needs pyarrow: pip install pyarrow (or export CSV: --format csv)") from None
    if str(out) == "-":
        raise ValueError("Parquet is written to a file: give --out FILE (standard output takes CSV only)")
    columns, records = table(rows, json_as_text=True)
    kinds = {name: kind.split()[0] for name, kind in COLUMNS}
    schema = pa.schema([(c, getattr(pa, _ARROW_TYPES[kinds.get(c, "TEXT")])()) for c in columns])
    pq.write_table(pa.Table.from_pylist(records, schema=schema), out)


#: format name -> writer.
WRITERS = {"csv": write_csv, "parquet": write_parquet}
FORMATS = tuple(WRITERS)


def write(rows: Sequence[dict], out: str | Path, format: str) -> None:
    """Write ``rows`` in ``format`` (:data:`FORMATS`) to ``out``."""
    if format not in WRITERS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    WRITERS[format](rows, out)


def to_pandas(rows: Sequence[dict]):
    """``rows`` as a pandas DataFrame (JSON columns decoded; integer columns as nullable Int64)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("ResultStore.to_pandas needs pandas: pip install pandas "
                          "(or, without it, rnnlab sweep export DB --format csv)") from None
    columns, records = table(rows, json_as_text=False)
    frame = pd.DataFrame.from_records(records, columns=columns)
    kinds = {name: kind.split()[0] for name, kind in COLUMNS}
    return frame.astype({c: {"INTEGER": "Int64", "REAL": "float64"}[kinds[c]] for c in NAMES
                         if kinds[c] in ("INTEGER", "REAL")})
