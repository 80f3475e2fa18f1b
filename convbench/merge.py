"""Join shard run folders (or per-device runs) into one run folder."""

from __future__ import annotations

from pathlib import Path

from . import results


class MergeError(ValueError):
    pass


def merge_runs(runs, out_dir) -> Path:
    metas, rows, seen = [], [], {}
    for r in runs:
        try:
            meta = results.load_meta(r)
            shard_rows = results.read_rows(results.run_dir_of(r) / results.RESULTS_FILE)
        except results.ResultsError as exc:
            raise MergeError(str(exc)) from None
        if metas and meta.get("comparability") != metas[0].get("comparability"):
            raise MergeError(
                f"{str(r)!r} was run with other measurement settings than {str(runs[0])!r} "
                f"({meta.get('comparability')} vs {metas[0].get('comparability')}); rows would not be comparable"
            )
        metas.append(meta)
        for row in shard_rows:
            key = results.row_key(row)
            if key in seen:
                raise MergeError(f"row {key} appears in both {seen[key]!r} and {str(r)!r}")
            seen[key] = str(r)
            rows.append(row)
    out = Path(out_dir)
    if (out / results.RESULTS_FILE).exists():
        raise MergeError(f"{str(out_dir)!r} already holds a run; choose an empty folder")
    with results.RunWriter(out) as w:
        for row in rows:
            w.write(row)
    merged = dict(metas[0])
    for key in ("devices", "ceilings"):
        merged[key] = {k: v for m in metas for k, v in (m.get(key) or {}).items()}
    merged["merged_from"] = [str(r) for r in runs]
    merged["shard"] = None
    results.write_meta(out, merged)
    results.write_csv(out)
    return out
