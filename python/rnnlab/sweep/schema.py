"""The runs table of a sweep's SQLite file: its columns and their SQLite types, shared by the
store (which creates and fills it), the run filters (which may name its columns) and the exports
(which type them)."""
from __future__ import annotations

#: (column, SQLite type) of the runs table, in order; JSON columns hold text.
COLUMNS = (
    ("run_id", "TEXT PRIMARY KEY"), ("sweep", "TEXT"), ("config", "JSON"), ("labels", "JSON"),
    ("task", "TEXT"), ("length", "INTEGER"), ("min_length", "INTEGER"), ("cell", "TEXT"), ("hidden", "INTEGER"),
    ("nonlinearity", "TEXT"), ("init", "TEXT"), ("init_gain", "REAL"), ("optimizer", "TEXT"), ("lr", "REAL"),
    ("clip", "REAL"), ("alpha", "REAL"), ("seed", "INTEGER"), ("batch_size", "INTEGER"), ("max_updates", "INTEGER"),
    ("success", "INTEGER"), ("updates", "INTEGER"), ("updates_to_success", "INTEGER"), ("final_loss", "REAL"),
    ("final_error", "REAL"), ("best_error", "REAL"), ("train_loss", "REAL"), ("grad_norm_mean", "REAL"),
    ("grad_norm_max", "REAL"), ("clip_fraction", "REAL"), ("fallbacks", "INTEGER"), ("rho_final", "REAL"),
    ("veg_steps", "INTEGER"), ("vanishing_steps", "INTEGER"), ("exploding_steps", "INTEGER"),
    ("veg_checks", "INTEGER"), ("vanishing_frac", "REAL"), ("exploding_frac", "REAL"), ("veg_vanishing", "INTEGER"),
    ("veg_exploding", "INTEGER"), ("veg", "INTEGER"), ("log10_r1_min", "REAL"), ("log10_r1_median", "REAL"),
    ("log10_r1_max", "REAL"), ("log10_r1", "JSON"), ("wall_time_s", "REAL"), ("population_id", "TEXT"), ("population_size", "INTEGER"),
    ("backend", "TEXT"), ("device", "TEXT"), ("host", "TEXT"), ("finished_at", "TEXT"),
    ("history", "JSON"), ("profile_first", "JSON"), ("profile_last", "JSON"),
)
#: the column names, in order.
NAMES = tuple(c for c, _ in COLUMNS)
#: the columns that hold JSON documents (config, labels, history, profiles) as text.
JSON_COLUMNS = frozenset(c for c, t in COLUMNS if t == "JSON")
