"""Named real-model shapes (the rows of shared/SHAPES.md), usable by label in a sweep config."""

from __future__ import annotations

# Depthwise: stride 1, "same" padding unless noted; C is the depthwise channel count.
DEPTHWISE = {
    "dtts_dec_b19": dict(N=19, C_in=1024, L=517, K=11),
    "dtts_dec_b5": dict(N=5, C_in=1024, L=517, K=11),
    "dtts_enc": dict(N=19, C_in=1024, L=128, K=7),
    "dtts_varpred": dict(N=19, C_in=512, L=128, K=5),
    "nemo_conformer_L": dict(N=16, C_in=512, L=418, K=31),
    "nemo_fastconformer_L": dict(N=128, C_in=512, L=209, K=9),
    "nemo_fastconformer_S": dict(N=128, C_in=176, L=209, K=9),
    "nemo_fastconformer_XXL": dict(N=128, C_in=1024, L=209, K=5),
    "torchaudio_doc": dict(N=10, C_in=80, L=400, K=31, bias=False),
    "long_seq": dict(N=1, C_in=4096, L=8192, K=4),
    "long_kernel": dict(N=32, C_in=768, L=768, K=768),
}

# Pointwise companions (C_in -> C_out) and the GPU-ANCHORS GEMM shapes.
POINTWISE = {
    "dtts_pw_up": dict(N=19, C_in=512, C_out=2048, L=517),
    "dtts_pw_down": dict(N=19, C_in=1024, C_out=512, L=517),
    "fastconformer_L_pw": dict(N=128, C_in=512, C_out=1024, L=209),
    "pw_16x384x768x1024": dict(N=16, C_in=384, C_out=768, L=1024),
    "pw_32x1024x1024x4096": dict(N=32, C_in=1024, C_out=1024, L=4096),
}

PRESETS: dict[str, tuple[str, dict]] = {
    **{k: ("depthwise", v) for k, v in DEPTHWISE.items()},
    **{k: ("pointwise", v) for k, v in POINTWISE.items()},
}


def preset(label: str) -> tuple[str, dict]:
    """(op, shape) of a preset, padding "same" for depthwise."""
    op, shape = PRESETS[label]
    shape = dict(shape)
    if op == "depthwise":
        shape.setdefault("padding", "same")
    return op, shape
