"""Micro-probe (session 15): which Gluon TMA loads run on this GPU/Triton. Each case copies a box
from global to shared memory with TMA and back to global with plain stores, and compares."""
import sys
import traceback

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

_load = tma.async_load if hasattr(tma, "async_load") else tma.async_copy_global_to_shared


@gluon.jit
def copy2d(desc, y_ptr, c0, c1, NB: gl.constexpr, IDX: gl.constexpr, PLAIN_READ: gl.constexpr):
    BR: gl.constexpr = desc.block_type.shape[0]
    BC: gl.constexpr = desc.block_type.shape[1]
    buf = gl.allocate_shared_memory(desc.dtype, [NB, BR, BC], desc.layout)
    bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(bar, count=1)
    mbarrier.expect(bar, desc.block_type.nbytes)
    _load(desc, [c0, c1], bar, buf.index(IDX))
    mbarrier.wait(bar, 0)
    BL: gl.constexpr = gl.BlockedLayout([1, 8], [1, 32], [4, 1], [1, 0])
    if PLAIN_READ:
        v = buf.index(IDX).load(BL)
    else:
        v = buf.index(IDX).load(BL)
    r = gl.arange(0, BR, layout=gl.SliceLayout(1, BL))
    c = gl.arange(0, BC, layout=gl.SliceLayout(0, BL))
    gl.store(y_ptr + gl.expand_dims(r, 1) * BC + gl.expand_dims(c, 0), v)


def case(name, shape, block, swz, nb, idx, c0, c1, dtype=torch.bfloat16):
    x = torch.randn(shape, device="cuda", dtype=dtype)
    y = torch.zeros(block, device="cuda", dtype=dtype)
    bits = x.element_size() * 8
    lay = (gl.NVMMASharedLayout.get_default_for(list(block), gl.bfloat16 if dtype == torch.bfloat16 else gl.float32)
           if swz == "default" else gl.NVMMASharedLayout(swizzle_byte_width=swz, element_bitwidth=bits, rank=2))
    try:
        d = TensorDescriptor(x, list(shape), [shape[1], 1], list(block), lay)
        copy2d[(1,)](d, y, c0, c1, NB=nb, IDX=idx, PLAIN_READ=True, num_warps=4)
        torch.cuda.synchronize()
        ref = torch.zeros(block, dtype=dtype)
        xs = x.cpu()
        for i in range(block[0]):
            for j in range(block[1]):
                a, b = c0 + i, c1 + j
                if 0 <= a < shape[0] and 0 <= b < shape[1]:
                    ref[i, j] = xs[a, b]
        ok = torch.equal(y.cpu(), ref)
        print(f"{name}: {'ok' if ok else 'WRONG data'} (layout {lay})", flush=True)
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:150]}", flush=True)
        traceback.print_exc()
        sys.exit(1)  # a CUDA error poisons the process


if __name__ == "__main__":
    which = sys.argv[1]
    cases = {
        "A_default_swizzle": ((64, 256), (4, 128), "default", 1, 0, 0, 0),
        "B_swz0": ((64, 256), (4, 128), 0, 1, 0, 0, 0),
        "C_swz0_3d_idx1": ((64, 256), (4, 128), 0, 2, 1, 0, 0),
        "D_swz0_neg": ((64, 256), (4, 128), 0, 1, 0, 0, -3),
        "E_swz0_odd_col": ((64, 256), (4, 128), 0, 1, 0, 0, 5),
        "F_default_neg": ((64, 256), (4, 128), "default", 1, 0, 0, -3),
        "G_swz0_64": ((64, 256), (4, 64), 0, 1, 0, 0, 0),
    }
    case(which, *cases[which])
