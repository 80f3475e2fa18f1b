"""Bad input everywhere a user types: exit code 2, one paragraph naming the file, key and value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from convbench.cli import main

GOOD = """\
ops: [depthwise]
impls: [torch]
devices: [cpu]
shapes: {N: [1], C_in: [4], L: [16], K: [3], padding: [same]}
measure: {min_samples: 3, max_time_s: 0.02, warmup_ms: 1}
"""

# (id, config text, extra CLI args, strings the message must contain)
CASES = [
    ("yaml-syntax", "ops: [depthwise\nshapes: {N: [1]}\n", [], ["line 2", "column", "YAML syntax error"]),
    ("yaml-tab", "ops:\n\t- depthwise\n", [], ["line 2", "column 1"]),
    ("duplicate-key", GOOD + "ops: [pointwise]\n", [], ["duplicate key", "'ops' is given twice", "line 1"]),
    ("top-level-list", "- ops\n- shapes\n", [], ["(top level)", "expected a mapping"]),
    ("unknown-top-key", GOOD + "shape: {N: [1]}\n", [], ["'shape'", "Did you mean 'shapes'?"]),
    ("misspelled-measure-key", GOOD.replace("min_samples", "min_sample"), [],
     ["measure.min_sample", "Did you mean 'min_samples'?"]),
    ("unknown-axis", GOOD.replace("K: [3]", "KK: [3]"), [], ["shapes.KK", "Did you mean 'K'?"]),
    ("unknown-op", GOOD.replace("ops: [depthwise]", "ops: [depthwize]"), [],
     ["ops[0]", "'depthwize'", "Did you mean 'depthwise'?"]),
    ("unknown-dtype", GOOD + "dtypes: [fp32]\n", [], ["dtypes[0]", "'fp32'", "float32"]),
    ("unknown-layout", GOOD + "layouts: [nhwc]\n", [], ["layouts[0]", "'nhwc'", "ncl, nlc"]),
    ("unknown-impl", GOOD.replace("impls: [torch]", "impls: [trition]"), [],
     ["impls[0]", "'trition'", "Did you mean 'triton'?"]),
    ("impl-no-layout", GOOD.replace("impls: [torch]", "impls: [torch_nlc]"), [],
     ["impls[0]", "'torch_nlc'", "layouts are ncl"]),
    ("unknown-device", GOOD.replace("devices: [cpu]", "devices: [gpu]"), [],
     ["devices[0]", "'gpu'", "auto, cpu, cuda, cuda:N, all"]),
    ("missing-cuda", GOOD, ["--device", "cuda:7"], ["--device", "'cuda:7'", "does not exist"]),
    ("wrong-type-seed", GOOD + "seed: lots\n", [], ["seed", "expected an integer", "'lots'"]),
    ("negative-seed", GOOD + "seed: -1\n", [], ["seed", "must be >= 0"]),
    ("wrong-type-timeout", GOOD + "timeout_s: [1]\n", [], ["timeout_s", "expected a number"]),
    ("wrong-type-axis", GOOD.replace("N: [1]", "N: [one]"), [], ["shapes.N[0]", "expected an integer", "'one'"]),
    ("bad-padding", GOOD.replace("padding: [same]", "padding: [valid]"), [],
     ["shapes.padding[0]", "an integer or 'same'", "'valid'"]),
    ("bias-not-bool", GOOD.replace("K: [3]", "K: [3], bias: [yes please]"), [],
     ["shapes.bias[0]", "true or false"]),
    ("empty-axis", GOOD.replace("L: [16]", "L: []"), [], ["shapes.L", "empty list"]),
    ("empty-ops", GOOD.replace("ops: [depthwise]", "ops: []"), [], ["ops", "non-empty list"]),
    ("missing-L", GOOD.replace("L: [16], ", ""), [], ["shapes.L", "is required"]),
    ("pointwise-needs-C_out", GOOD.replace("depthwise", "pointwise").replace("K: [3], padding: [same]", "K: [1]"), [],
     ["shapes.C_out", "required for pointwise"]),
    ("measure-not-mapping", GOOD.replace("measure: {min_samples: 3, max_time_s: 0.02, warmup_ms: 1}", "measure: fast"),
     [], ["measure", "expected a mapping"]),
    ("measure-l2", GOOD.replace("min_samples: 3", "l2: hot"), [], ["measure.l2", "'hot'", "cold, clean, warm"]),
    ("max-below-min", GOOD.replace("min_samples: 3", "min_samples: 5, max_samples: 2"), [],
     ["measure.max_samples", "below measure.min_samples"]),
    ("unknown-preset", GOOD + "presets: [dtts_dec_b91]\n", [], ["presets[0]", "Did you mean 'dtts_dec_b19'?"]),
    ("zip-unequal", GOOD.replace("L: [16]", "L: [16, 32]") + "zip: [[L, K]]\n", [],
     ["zip[0]", "equal lengths"]),
    ("zip-unknown-axis", GOOD + "zip: [[L, Q]]\n", [], ["zip[0]", "'Q'"]),
    ("where-unparsable", GOOD + "where: ['K less than L']\n", [], ["where[0]", "cannot parse"]),
    ("where-unknown-axis", GOOD + "where: ['KK <= L']\n", [], ["where[0]", "'KK'", "Did you mean 'K'?"]),
    ("exclude-unknown-key", GOOD + "exclude: [{opp: depthwise}]\n", [], ["exclude[0].opp", "Did you mean 'op'?"]),
    ("exclude-bad-value", GOOD + "exclude: [{dtype: fp16}]\n", [], ["exclude[0].dtype", "'fp16'"]),
    ("excludes-everything", GOOD + "exclude: [{op: depthwise}]\n", [], ["expands to no cases"]),
    ("mixed-per-op-shapes", GOOD.replace("shapes: {", "shapes: {depthwise: {N: [1]}, "), [],
     ["shapes.depthwise", "mixes per-op blocks"]),
    ("precision", GOOD + "precision: fp64\n", [], ["precision", "'fp64'", "ieee"]),
    ("empty-file", "", [], ["the file is empty"]),
    ("bad-shard", GOOD, ["--shard", "3/2"], ["--shard", "'3/2'", "1 <= I <= N"]),
    ("bad-shard-text", GOOD, ["--shard", "half"], ["--shard", "'half'"]),
    ("unknown-impl-option", GOOD, ["--impl", "torhc"], ["--impl", "'torhc'", "Did you mean 'torch'?"]),
    ("resume-missing", GOOD, ["--resume", "{tmp}/nowhere"], ["--resume", "nowhere", "does not exist"]),
    ("resume-foreign", GOOD, ["--resume", "{tmp}"], ["--resume", "not a convbench run folder"]),
]


@pytest.mark.parametrize("name,text,args,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_config_exits_2_with_a_located_message(tmp_path, name, text, args, needles):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(text)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if "--resume" in args else ["--out", str(tmp_path / "out")]
    res = CliRunner().invoke(main, ["run", str(cfg), *out, "--quiet", *args])
    msg = res.output
    assert res.exit_code == 2, (res.exit_code, msg, res.exception)
    assert "Traceback" not in msg
    assert msg.startswith("convbench: error: ")
    if not name.startswith(("bad-shard", "resume-", "unknown-impl-option")):
        assert str(cfg) in msg  # the file is named
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert not (tmp_path / "out" / "results.jsonl").exists()  # nothing ran


def test_config_file_missing(tmp_path):
    res = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml" in res.output and "not found" in res.output


def test_unknown_plugin_module(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_PLUGINS", "no_such_plugin_module")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    res = CliRunner().invoke(main, ["run", str(cfg), "--quiet"])
    assert res.exit_code == 2
    assert "$CONVBENCH_PLUGINS" in res.output and "'no_such_plugin_module'" in res.output


def test_real_process_prints_no_traceback(tmp_path):
    """The same through a real interpreter: stderr holds one paragraph, never a traceback."""
    cfg = tmp_path / "typo.yaml"
    cfg.write_text(GOOD.replace("measure:", "mesure:"))
    res = subprocess.run([sys.executable, "-m", "convbench", "run", str(cfg)], capture_output=True,
                         text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{cfg}: mesure: unknown key 'mesure'. Did you mean 'measure'?" in res.stderr
    assert res.stdout == ""


def test_merge_errors(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.jsonl").write_text("not json\n")
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "not a convbench run folder"),
        ([str(foreign)], "line 1 is not a JSON row"),
    ]
    for runs, needle in cases:
        res = CliRunner().invoke(main, ["merge", *runs, "-o", str(tmp_path / "m")])
        assert res.exit_code == 2, res.output
        assert needle in res.output and "Traceback" not in res.output
    (foreign / "results.jsonl").write_text('{"impl": "torch"}\n')
    res = CliRunner().invoke(main, ["merge", str(foreign), "-o", str(tmp_path / "m")])
    assert res.exit_code == 2 and "no meta.json" in res.output


def test_impossible_shape_is_recorded_invalid_not_raised(tmp_path):
    """K larger than the padded input, C_in = 0: rows with status invalid and the reason."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(GOOD).replace("C_in: [4], L: [16], K: [3], padding: [same]",
                                                 "C_in: [0, 4], L: [4], K: [9], padding: [0]"))
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet",
                                    "--isolation", "none"])
    assert res.exit_code == 0, res.output
    from convbench.results import load

    df = load(tmp_path / "r")
    assert list(df.status) == ["invalid", "invalid"]
    assert "C_in=0 must be >= 1" in df.reason[0]
    assert "L_out=-4 < 1" in df.reason[1]
