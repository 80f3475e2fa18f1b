"""`convbench compare BASE NEW`: the regression gate's command and its table/Markdown/JSON output."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import click

from .compare import ALPHA, RESAMPLES, Gate, Report, compare_runs, parse_alpha, parse_threshold
from .problem import OPS

_STYLE = {"broken": "bold red", "missing": "red", "added": "red", "slower": "red",
          "noisy": "yellow", "faster": "green", "fixed": "green", "same": "dim",
          "unmeasured": "dim"}


def _ms(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _ratio(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _ci(c) -> str:
    return f"{c.ci_low:.3f}-{c.ci_high:.3f}" if c.ci_low is not None else ""


def _status(c) -> str:
    if c.base_status == c.new_status:
        return ""
    return f"{c.base_status or '-'} -> {c.new_status or '-'}"


def _note(c) -> str:
    parts = [p for p in (_status(c), c.note) if p]
    if c.verdict == "broken" and c.reason:
        parts.append(c.reason)
    return "; ".join(parts)


def _headers(report: Report) -> list[str]:
    conf = f"{(1 - report.gate.alpha) * 100:g}% CI"
    ratio = f"new/base vs {report.normalize_to}" if report.normalize_to else "new/base"
    return ["verdict", "op/impl", "dtype", "layout", "device", "shape", "base ms", "new ms",
            ratio, conf, "note"]


def _cells(c) -> list[str]:
    g = c.get
    return [c.verdict, f"{g('op')}/{g('impl')}", g("dtype"), g("layout"),
            f"{g('device_type')} {g('mode')}", c.shape_label, _ms(c.base_ms), _ms(c.new_ms),
            _ratio(c.ratio), _ci(c), _note(c)]


def render_table(report: Report):
    """A rich Table, regressions first."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"convbench compare: {report.summary()}", title_justify="left")
    for h in _headers(report):
        t.add_column(h, overflow="fold", justify="right" if h.endswith(("ms", "base", "CI"))
                     or h.startswith("new/base") else "left")
    for c in report.comparisons:
        style = _STYLE.get(c.verdict, "")
        cells = [escape(x) for x in _cells(c)]
        cells[0] = f"[{style}]{cells[0]}[/]" if style else cells[0]
        t.add_row(*cells)
    return t


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(report: Report, rows) -> list[str]:
    heads = _headers(report)
    out = ["| " + " | ".join(heads) + " |",
           "|" + "|".join("---:" if h.endswith("ms") or "CI" in h or h.startswith("new/base")
                          else "---" for h in heads) + "|"]
    for c in rows:
        cells = _cells(c)
        if report.gate.failing(c.verdict):
            cells[0] = f"**{cells[0]}**"
        out.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    return out


def render_md(report: Report) -> str:
    """Markdown for a CI job summary or a PR comment: failures and changes in the open, the
    unchanged rows folded away."""
    fails = report.failures
    head = (f"**FAIL**: {len(fails)} regression{'s' if len(fails) != 1 else ''}" if fails
            else "**PASS**")
    lines = [f"### convbench gate: {head}", "",
             f"`{report.base}` (base) vs `{report.new}` (new). {report.summary()}", ""]
    if report.env_diff:
        lines += ["> [!WARNING]", "> The runs' environments differ; timings may not be comparable.",
                  ">", "> | field | base | new |", "> |---|---|---|"]
        lines += [f"> | {_md_cell(k)} | {_md_cell(a)} | {_md_cell(b)} |"
                  for k, (a, b) in report.env_diff.items()]
        lines.append("")
    for w in report.warnings:
        lines += [f"> {_md_cell(w)}", ""]
    if fails:
        lines += ["**Failures**", ""] + [f"- {_md_cell(m)}" for m in fails] + [""]
    quiet = {"same", "unmeasured"}
    shown = [c for c in report.comparisons if c.verdict not in quiet]
    folded = [c for c in report.comparisons if c.verdict in quiet]
    if shown:
        lines += _md_table(report, shown) + [""]
    if folded:
        lines += [f"<details><summary>{len(folded)} unchanged or unmeasured rows</summary>", ""]
        lines += _md_table(report, folded) + ["", "</details>", ""]
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str, allow_nan=False)


def _table_text(report: Report, width: int = 200) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, highlight=False).print(render_table(report))
    return buf.getvalue()


@click.command("compare")
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--threshold", default="5%", show_default=True,
              help="Smallest slowdown that fails: '5%' or 0.05.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--fail-on-noisy", is_flag=True, help="Rows too noisy to call fail the gate too.")
@click.option("--impl", "impls", multiple=True, help="Only these implementations (repeatable).")
@click.option("--op", "ops", multiple=True, type=click.Choice(list(OPS)), help="Only these ops (repeatable).")
@click.option("--normalize-to", "normalize_to", default=None, metavar="IMPL",
              help="Compare each implementation's time relative to IMPL in the same run and case, "
                   "so a whole-machine slowdown is not a regression.")
@click.option("--alpha", type=float, default=ALPHA, show_default=True,
              help="Significance level: (1 - alpha) confidence intervals.")
@click.option("--resamples", type=click.IntRange(min=100), default=RESAMPLES, show_default=True,
              help="Bootstrap resamples per row.")
@click.option("--common-only", is_flag=True,
              help="Leave out rows found in one run only (a focused run against a wider one) "
                   "instead of failing them as missing/added.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the --format output to this file (the terminal still gets the table).")
def compare(base, new, threshold, fmt, fail_on_noisy, impls, ops, normalize_to, alpha, resamples,
            common_only, out_file):
    """Compare run NEW against baseline run BASE; exit 1 on a regression.

    Rows are matched by case, implementation and device type (float32 rows also by precision
    policy: a tf32 and an ieee row are different measurements). A row is `slower` when its
    new/base ratio of medians is above 1 + threshold and the bootstrap CI of the ratio lies
    above 1; a row whose status went from ok to wrong/error/oom/timeout/skipped is `broken`;
    rows on one side only are `missing`/`added` (left out with --common-only). All of these
    fail (exit 1); bad input exits 2.
    """
    from rich.console import Console
    from rich.markup import escape

    from .cli import UserError
    from .progress import stdout_console
    from .results import ResultsError

    try:
        gate = Gate(parse_threshold(threshold), parse_alpha(alpha), fail_on_noisy)
    except ValueError as exc:
        opt = "--threshold" if "threshold" in str(exc) else "--alpha"
        raise UserError(f"{opt}: {exc}") from None
    try:
        report = compare_runs(base, new, gate, normalize_to, impls or None, ops or None, resamples,
                              common_only=common_only)
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None

    err = Console(stderr=True, highlight=False)
    if report.env_diff:
        err.print("[yellow]warning:[/] the runs' environments differ; timings may not be comparable:")
        for k, (a, b) in report.env_diff.items():
            err.print(f"  {k}: {a!s} (base) -> {b!s} (new)", markup=False)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")

    rendered = {"md": render_md, "json": render_json}.get(fmt)
    text = rendered(report) if rendered else None
    out = stdout_console(highlight=False)
    if out_file:
        Path(out_file).write_text(text if text is not None else _table_text(report))
        out.print(render_table(report))
    elif text is not None:
        click.echo(text)
    else:
        out.print(render_table(report))
    for m in report.failures:
        err.print(f"[red]regression:[/] {escape(m)}", soft_wrap=True)
    click.echo(report.summary(), err=True)
    if report.exit_code:
        raise SystemExit(report.exit_code)
