"""Join shard run folders (or per-device runs) into one run folder."""

from __future__ import annotations

from pathlib import Path

from . import results


class MergeError(ValueError):
    """Runs that cannot be joined: missing, not convbench's, incomparable or overlapping."""


def merge_runs(runs, out_dir) -> Path:
    """Rows of every run into a new run folder; refuses incomparable settings and duplicate rows."""
    if not runs:
        raise MergeError("give at least one run folder to merge")
    out = Path(out_dir)
    if (out / results.RESULTS_FILE).exists():
        raise MergeError(f"{str(out_dir)!r} already holds a run; choose an empty folder")
    metas, rows, seen = [], [], {}
    for r in runs:
        try:
            d = results.run_dir_of(r)
            meta = results.load_meta(d)
            run_rows = results.read_rows(d / results.RESULTS_FILE)
        except results.ResultsError as exc:
            raise MergeError(str(exc)) from None
        if not isinstance(meta.get("comparability"), dict):
            raise MergeError(f"{str(r)!r} has no meta.json with the settings of its run, so it was "
                             "not written by `convbench run`; only convbench run folders merge")
        if metas and meta["comparability"] != metas[0]["comparability"]:
            a, b = metas[0]["comparability"], meta["comparability"]
            diff = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b))
                             if a.get(k) != b.get(k))
            raise MergeError(f"{str(r)!r} was run with other settings than {str(runs[0])!r} "
                             f"({diff}); their rows would not be comparable")
        metas.append(meta)
        for row in run_rows:
            key = results.row_key(row)
            if key in seen:
                raise MergeError(f"the row {_describe(row)} is in both {seen[key]!r} and {str(r)!r}; "
                                 "merge disjoint shards (--shard I/N of one config), not overlapping runs")
            seen[key] = str(r)
            rows.append(row)
    try:
        writer = results.RunWriter(out)
    except results.ResultsError as exc:
        raise MergeError(str(exc)) from None
    with writer as w:
        w.write_many(rows)
    merged = dict(metas[0])
    for key in ("devices", "ceilings"):
        merged[key] = {k: v for m in metas for k, v in (m.get(key) or {}).items()}
    merged["merged_from"] = [str(r) for r in runs]
    merged["shard"] = None
    merged["interrupted"] = next((m["interrupted"] for m in metas if m.get("interrupted")), None)
    results.write_meta(out, merged)
    results.write_csv(out)
    return out


def _describe(row: dict) -> str:
    keys = ("impl", *results.CASE_KEY)
    return " ".join(f"{k}={row.get(k)}" for k in keys)
