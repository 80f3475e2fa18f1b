"""`convbench report | plot | select`: kernel-choice reports, ad hoc figures, selection tables."""

from __future__ import annotations

from pathlib import Path

import click


def _user_error(msg: str):
    from .cli import UserError  # lazily: cli imports this module

    return UserError(msg)


def _runs(paths):
    from .report import load_runs
    from .results import ResultsError

    try:
        return load_runs(paths)
    except ResultsError as exc:
        raise _user_error(str(exc)) from None


def parse_filter(text: str) -> tuple[str, list[str]]:
    """'op=depthwise' -> ('op', ['depthwise']); 'L=128,517' -> ('L', ['128', '517'])."""
    col, sep, value = text.partition("=")
    if not sep or not col.strip() or not value.strip():
        raise ValueError(f"--filter: could not parse {text!r}; write COLUMN=VALUE[,VALUE...], "
                         "e.g. op=depthwise or L=128,517")
    return col.strip(), [v.strip() for v in value.split(",")]


def apply_filter(df, col: str, values: list[str]):
    import pandas as pd

    if col not in df.columns:
        raise KeyError(col)
    s = df[col]
    if pd.api.types.is_bool_dtype(s) or set(s.dropna().map(type)) == {bool}:
        want = {v.lower() in ("1", "true", "yes") for v in values}
        return df[s.isin(want)]
    if pd.api.types.is_numeric_dtype(s):
        try:
            nums = [float(v) for v in values]
        except ValueError:
            raise ValueError(f"--filter {col}={','.join(values)!r}: {col} is numeric") from None
        return df[s.astype(float).isin(nums)]
    return df[s.astype(str).isin(values)]


def _columns_msg(df) -> str:
    return ", ".join(c for c in df.columns if c not in ("samples_ms", "kernels"))


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="Output file: .html (self-contained) or .md (figures beside it).")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default=None,
              help="Output format (default: from the suffix of -o).")
@click.option("--image-format", type=click.Choice(["png", "svg"]), default="png", show_default=True)
def report(runs, out, fmt, image_format):
    """Kernel-choice report of one or more run folders (shards or devices are concatenated)."""
    from .report import write_report
    from .results import ResultsError

    out_p = Path(out)
    suffix = out_p.suffix.lower()
    if fmt is None and suffix not in (".html", ".htm", ".md", ".markdown"):
        raise _user_error(f"-o: cannot tell the report format from {out!r}: name the file .html "
                          "(self-contained) or .md (figures beside it), or pass --format html|md")
    fmt = fmt or ("md" if suffix in (".md", ".markdown") else "html")
    try:
        write_report(runs, out_p, fmt, image_format)
    except ResultsError as exc:
        raise _user_error(str(exc)) from None
    click.echo(f"wrote {fmt} report of {len(runs)} run folder(s) to {out_p}")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--x", "x", default="L", show_default=True, help="Column on the x axis.")
@click.option("--y", "y", default="median_ms", show_default=True,
              help="Column on the y axis (also: speedup, ai).")
@click.option("--hue", default="impl", show_default=True, help="A line per value of this column ('' for none).")
@click.option("--filter", "filters", multiple=True, help="COLUMN=VALUE[,VALUE...], repeatable.")
@click.option("--all-status", is_flag=True, help="Keep rows that are not ok (default: ok rows only).")
@click.option("--logx", is_flag=True)
@click.option("--logy", is_flag=True)
@click.option("-o", "--out", default="plot.png", show_default=True, type=click.Path(dir_okay=False),
              help="Figure file: .png, .svg or .pdf.")
def plot(runs, x, y, hue, filters, all_status, logx, logy, out):
    """One ad hoc figure from run folders, e.g. --x L --y tflops --filter op=depthwise."""
    from . import plots
    from .report import with_speedup

    df = with_speedup(_runs(runs).df)
    for name, col in (("--x", x), ("--y", y), ("--hue", hue)):
        if col and col not in df.columns:
            raise _user_error(f"{name}: no column named {col!r}; columns: {_columns_msg(df)}")
    parsed = []
    for f in filters:
        try:
            parsed.append(parse_filter(f))
        except ValueError as exc:
            raise _user_error(str(exc)) from None
    for col, values in parsed:
        try:
            df = apply_filter(df, col, values)
        except KeyError:
            raise _user_error(f"--filter {col}=...: no column named {col!r}; columns: "
                              f"{_columns_msg(df)}") from None
        except ValueError as exc:
            raise _user_error(str(exc)) from None
    if not all_status:
        df = df[df["status"] == "ok"]
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise _user_error(f"-o: {out!r} must end in .png, .svg or .pdf")
    if df.empty or df[y].notna().sum() == 0:
        raise _user_error(f"nothing to plot: no row with a value of {y!r} is left after the filters "
                          f"{list(filters)}")
    import matplotlib.pyplot as plt

    fig = plots.adhoc(df, x, y, hue or None, logx, logy, title=" ".join(filters) or None)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", dpi=110)
    plt.close(fig)
    click.echo(f"wrote {out} ({len(df)} rows)")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Selection table (JSON) for DepthWiseConv1d/PointwiseConv1d(backend='auto').")
def select(runs, out):
    """Best implementation per (op, device, dtype, layout, mode, shape) -> a selection table."""
    from .report import write_selection

    loaded = _runs(runs)
    path = write_selection(loaded, out)
    import json

    data = json.loads(path.read_text())
    click.echo(f"wrote {len(data['entries'])} entries to {path}"
               + (f" ({data['unresolved_cases']} cases had no valid implementation)"
                  if data["unresolved_cases"] else ""))
    if (warning := loaded.timing_warning()):
        click.echo(f"warning: {warning}", err=True)
    if not data["entries"]:
        click.echo("warning: the table is empty: no case of these runs had an implementation that ran "
                   "correctly (skipped, wrong or failed rows never win), so backend='auto' would fall "
                   "back to the baseline everywhere", err=True)
