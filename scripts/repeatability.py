"""The same config run twice: per-row median ratio (B/A) and its spread, as a markdown note."""

from __future__ import annotations

import sys

import numpy as np

from convbench.results import ROW_KEY, load, load_meta


def main(a: str, b: str, out: str | None = None) -> None:
    da, db = load(a), load(b)
    keys = list(ROW_KEY)
    m = da[da.status == "ok"].merge(db[db.status == "ok"], on=keys, suffixes=("_a", "_b"))
    m["ratio"] = m.median_ms_b / m.median_ms_a
    r = m.ratio.to_numpy()
    dev = load_meta(a).get("devices", {})
    lines = [
        f"# Repeatability: {a} vs {b}",
        "",
        f"Device: {', '.join(d.get('device_name', '?') for d in dev.values())}. {len(m)} rows measured ok in both runs.",
        "",
        f"- median of B/A: {np.median(r):.4f}",
        f"- 5th / 95th percentile of B/A: {np.percentile(r, 5):.4f} / {np.percentile(r, 95):.4f}",
        f"- max |B/A - 1|: {np.max(np.abs(r - 1)) * 100:.2f} %",
        f"- rows within ±2 %: {np.mean(np.abs(r - 1) <= 0.02) * 100:.0f} %; within ±5 %: {np.mean(np.abs(r - 1) <= 0.05) * 100:.0f} %",
        f"- median of each run's own CI half-width (rel): {np.median(m.rel_ci_a) * 100:.2f} % / {np.median(m.rel_ci_b) * 100:.2f} %",
        "",
        "| op | impl | layout | dtype | N | C_in | C_out | L | K | A µs | B µs | B/A |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in m.sort_values("ratio").iterrows():
        lines.append(f"| {row['op']} | {row['impl']} | {row['layout']} | {row['dtype']} | {row['N']} | {row['C_in']} | {row['C_out']} | {row['L']} | {row['K']} "
                     f"| {row.median_ms_a * 1e3:.1f} | {row.median_ms_b * 1e3:.1f} | {row.ratio:.3f} |")
    text = "\n".join(lines) + "\n"
    print("\n".join(lines[:10]))
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(*sys.argv[1:4])
