"""`convbench profile`: torch.profiler traces of sweep cases for TensorBoard and Perfetto."""

from __future__ import annotations

from pathlib import Path

import click


def _fail(msg: str):
    from .cli import UserError  # lazily: cli imports this module to register the command

    raise UserError(msg)


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--impl", "impls", multiple=True, help="Only these implementations (repeatable).")
@click.option("--case", "patterns", multiple=True,
              help="Only cases whose name contains this text, e.g. 'N19-C1024' or 'nlc-bfloat16' "
                   "(repeatable; any match).")
@click.option("--limit", type=int, default=None, help="Only the first N (selected) cases.")
@click.option("--logdir", type=click.Path(file_okay=False), default="tb", show_default=True,
              help="TensorBoard log folder; each case x implementation is a run (sub-folder) in it.")
@click.option("--device", "devices", multiple=True,
              help="Override `devices`: auto, cpu, cuda, cuda:N (the first device of each is used).")
@click.option("--precision", type=click.Choice(["default", "ieee", "tf32"]), default=None,
              help="Override `precision` (float32 TF32 policy).")
@click.option("--wait", type=int, default=1, show_default=True, help="Schedule: calls skipped first.")
@click.option("--warmup", type=int, default=2, show_default=True,
              help="Schedule: calls traced and discarded.")
@click.option("--active", type=int, default=3, show_default=True, help="Schedule: calls recorded.")
def profile(config, impls, patterns, limit, logdir, devices, precision, wait, warmup, active):
    """Record torch.profiler traces of the cases in CONFIG, one TensorBoard run per case x
    implementation (view: tensorboard --logdir LOGDIR; the .pt.trace.json files also open in
    ui.perfetto.dev)."""
    from .profile import ProfileSchedule, case_name, profile_cases, select_cases

    if limit is not None and limit < 1:
        _fail(f"--limit: {limit!r} is not allowed; give a number of cases >= 1")
    for opt, val, low in (("--wait", wait, 0), ("--warmup", warmup, 0), ("--active", active, 1)):
        if val < low:
            _fail(f"{opt}: {val!r} is not allowed; give an integer >= {low}")
    from .cli import load_config_for_cli

    cfg = load_config_for_cli(config, devices, precision, impls)
    cases = select_cases(cfg, tuple(patterns), limit)
    if not cases:
        sample = ", ".join(case_name(c) for c in select_cases(cfg)[:3])
        _fail(f"--case: no case of {config!r} matches {', '.join(map(repr, patterns))}; case "
              f"names look like {sample}")

    out = Path(logdir)
    written = 0
    for r in profile_cases(cfg, out, tuple(impls) or None, tuple(patterns), limit,
                           ProfileSchedule(wait, warmup, active)):
        if r.status == "ok":
            written += 1
            att = r.attribution
            dev_ms = f", {att.kernel_time_ms:.4f} ms device/call" if att and att.kernel_time_ms else ""
            note = f" (replaced {r.replaced} old trace(s))" if r.replaced else ""
            click.echo(f"traced   {r.run_name}  backend={att.backend if att else '?'}{dev_ms}{note}")
        else:
            click.echo(f"{r.status:<8} {r.run_name}: {r.reason}")
    if written:
        click.echo(f"wrote {written} run(s) to {out}; view with: tensorboard --logdir {out}")
    else:
        click.echo(f"no traces written: every selected case x implementation was skipped "
                   f"(see the reasons above); {out} is unchanged")
