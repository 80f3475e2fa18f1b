"""The convbench command line: parse and validate at the edge, then delegate."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import click

from .config import ConfigError, _did_you_mean


class UserError(click.ClickException):
    """Bad input: one paragraph, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"convbench: error: {self.format_message()}", err=True)


def fail(msg: str):
    raise UserError(msg)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m:
        fail(f"--shard: could not parse {value!r}; write I/N with 1 <= I <= N, e.g. 1/4")
    if not 1 <= int(m.group(1)) <= int(m.group(2)):
        fail(f"--shard: {value!r} names shard {m.group(1)} of {m.group(2)}, which does not exist; "
             "write I/N with 1 <= I <= N, e.g. 1/4")
    return int(m.group(1)), int(m.group(2))


def load_config_for_cli(config: str, devices, precision, impls, l2=None, graph=None):
    """Load CONFIG with the --device/--precision/--l2/--graph overrides and check --impl names;
    exit 2 on error."""
    from .config import load_config
    from .registry import all_impls

    try:
        cfg = load_config(config, {"devices": list(devices) or None, "precision": precision, "l2": l2,
                                    "graph": graph})
    except ConfigError as exc:
        fail(str(exc))
    known = sorted({i.name for i in all_impls() if i.op in cfg.ops})
    for name in impls or ():
        if name not in known:
            fail(f"--impl: no implementation named {name!r} for ops {', '.join(cfg.ops)} of "
                 f"{config!r}.{_did_you_mean(name, known)} Known: {', '.join(known)}.")
    return cfg


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="convbench")
def main():
    """Choose, prove and guard Conv1d kernels (depthwise and pointwise) for speech models."""


@main.command("list")
@click.option("--device", default="auto", show_default=True, help="Device to check support on.")
def list_cmd(device):
    """Implementations and what each supports on this machine."""
    from rich.table import Table

    from .config import resolve_devices
    from .impls import TRITON_IMPORT_ERROR
    from .problem import make_problem
    from .progress import stdout_console
    from .registry import Case, all_impls

    try:
        label, devs = next(iter(resolve_devices([device], "--device", "").items()))
    except ConfigError as exc:
        fail(str(exc))
    dev = devs[0]
    t = Table(title=f"convbench implementations (support checked on {dev})")
    for col in ("op", "name", "layout", "dtypes", "modes", "baseline", "here", "description"):
        t.add_column(col, overflow="fold")
    for impl in sorted(all_impls(), key=lambda i: (i.op, i.layout, not i.baseline, i.name)):
        prob = make_problem(impl.op, N=1, C_in=8, C_out=8, L=16, K=3 if impl.op == "depthwise" else 1, padding=1 if impl.op == "depthwise" else 0)
        reasons = {d: impl.skip_reason(Case(prob, d, impl.layout, dev)) for d in impl.dtypes}
        runs = [d for d, r in reasons.items() if r is None]
        if len(runs) == len(reasons):
            here = "yes"
        elif runs:
            here = f"{','.join(runs)} only"
        else:
            here = f"no: {next(iter(reasons.values()))}"
        t.add_row(impl.op, impl.name, impl.layout, ",".join(impl.dtypes), ",".join(impl.modes),
                  "yes" if impl.baseline else "", here, impl.description)
    stdout_console().print(t)
    if TRITON_IMPORT_ERROR:
        click.echo(f"Triton families not loaded: {TRITON_IMPORT_ERROR}", err=True)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: runs/<name>-<timestamp>).")
@click.option("--device", "devices", multiple=True, help="Override `devices`: auto, cpu, cuda, cuda:N, all.")
@click.option("--impl", "impls", multiple=True, help="Only these implementations (repeatable).")
@click.option("--resume", "resume", type=click.Path(file_okay=False), default=None,
              help="Continue this run folder, skipping finished rows.")
@click.option("--shard", default=None, help="Run the I-th of N deterministic slices of the cases, e.g. 1/4.")
@click.option("--isolation", type=click.Choice(["process", "none"]), default="process", show_default=True,
              help="Run cases in a worker process (crash/hang isolation) or in this process.")
@click.option("--precision", type=click.Choice(["default", "ieee", "tf32"]), default=None,
              help="Override `precision` (float32 TF32 policy).")
@click.option("--l2", type=click.Choice(["cold", "clean", "warm"]), default=None,
              help="Override `measure.l2`: cold (dirty flush, as do_bench), clean (a flush that writes, then reads), warm.")
@click.option("--graph/--events", "graph", default=None,
              help="Override `measure.graph`: time CUDA-graph replays (flushes inside, subtracted) or events.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary table.")
def run(config, out_dir, devices, impls, resume, shard, isolation, precision, l2, graph, quiet):
    """Run the sweep described by CONFIG (YAML) and write a run folder.

    Ctrl-C (or SIGTERM) stops at once with every finished row kept; --resume continues.
    """
    from rich.console import Console

    from . import results
    from .progress import Reporter, stdout_console, summary_table
    from .runner import Interrupted, ResumeError, WorkerError, check_resume, run_sweep

    shard_t = parse_shard(shard)
    cfg = load_config_for_cli(config, devices, precision, impls, l2, graph)
    if resume:
        if out_dir and Path(out_dir).resolve() != Path(resume).resolve():
            fail(f"--out {out_dir!r} and --resume {resume!r} name different folders; a resumed "
                 "run is written where it was started, so give only --resume")
        run_dir = Path(resume)
        try:
            shard_t = check_resume(cfg, run_dir, shard_t)
        except ResumeError as exc:
            fail(f"--resume: {exc}")
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(out_dir) if out_dir else Path("runs") / f"{cfg.name}-{stamp}"
        if (run_dir / results.RESULTS_FILE).exists():
            fail(f"--out: {str(run_dir)!r} already holds a run; pass --resume {str(run_dir)!r} to "
                 f"continue it, or choose another folder")
    again = _resume_command(config, run_dir, devices, impls, isolation, precision, l2, graph)
    done_file = run_dir / results.RESULTS_FILE
    before = len(results.read_rows(done_file)) if resume and done_file.exists() else 0
    console = Console(stderr=True)
    reporter = Reporter(enabled=not quiet, console=console)
    try:
        run_sweep(cfg, run_dir, impl_filter=set(impls) or None, shard=shard_t,
                  isolation=isolation, reporter=reporter)
    except results.ResultsError as exc:
        fail(f"--out: {exc}")
    except Interrupted as exc:
        click.echo(f"\nconvbench: interrupted ({exc}); every finished row is in "
                   f"{run_dir / results.RESULTS_FILE}.\nResume with: {again}", err=True)
        sys.exit(130)
    except WorkerError as exc:
        click.echo(f"convbench: error: {exc}\nRows finished so far are kept; resume with: {again}",
                   err=True)
        sys.exit(1)
    df = results.load(run_dir)
    if not quiet:
        from .registry import all_impls as _all

        baselines = {(i.op, i.layout): i.name for i in _all() if i.baseline}
        stdout_console().print(summary_table(df, baselines))
    counts = df.status.value_counts().to_dict()
    resumed = f"; {len(df) - before} new, {before} from before --resume" if resume else ""
    click.echo(f"wrote {len(df)} rows to {run_dir} ({', '.join(f'{k}: {v}' for k, v in counts.items())}"
               f"{resumed})")


def _resume_command(config, run_dir, devices, impls, isolation, precision, l2=None, graph=None) -> str:
    """The command line that continues this run (the shard is read back from the run)."""
    import shlex

    parts = ["convbench", "run", str(config), "--resume", str(run_dir)]
    for d in devices:
        parts += ["--device", d]
    for i in impls:
        parts += ["--impl", i]
    if isolation != "process":
        parts += ["--isolation", isolation]
    if precision:
        parts += ["--precision", precision]
    if l2:
        parts += ["--l2", l2]
    if graph is not None:
        parts += ["--graph" if graph else "--events"]
    return shlex.join(parts)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
def merge(runs, out_dir):
    """Join shard run folders into one run."""
    from .merge import MergeError, merge_runs

    try:
        path = merge_runs(runs, out_dir)
    except MergeError as exc:
        fail(str(exc))
    click.echo(f"merged {len(runs)} runs into {path}")


# Further verbs live in their own modules; each registers here with one line.
# compare (regression gate)
from .cmd_compare import compare as _compare; main.add_command(_compare)  # noqa: E402, E702, I001
# report / plot / select
from .cmd_report import plot, report, select; main.add_command(report); main.add_command(plot); main.add_command(select)  # noqa: E402, E702, I001
# profile
from .cmd_profile import profile; main.add_command(profile)  # noqa: E402, E702, I001


if __name__ == "__main__":  # pragma: no cover
    main()
