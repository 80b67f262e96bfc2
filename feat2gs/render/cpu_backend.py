"""The CPU backend: torch projection + SH (autograd) and a compiled C++/OpenMP tile rasteriser.

The kernel (``csrc/rasterize_cpu.cpp``) is compiled once with ``torch.utils.cpp_extension.load`` (ninja,
``-O3 -fopenmp``, ``-march=native`` on x86-64) into feat2gs's cache root (``feat2gs.paths.cache_root``:
``$FEAT2GS_CACHE_DIR`` or ``~/.cache/feat2gs``; ``torch_extensions/<python, torch, CPU and source tag>``) and
reused by later processes; a source change triggers a rebuild. Threads: ``torch.get_num_threads()``. It follows
gsplat 1.5.3's classic rasterisation (see ``base.py`` and the kernel's header) and its analytic backward is wrapped in a
``torch.autograd.Function`` over (means2d, conics, colors (C, N, D), opacities, background), so any number
of channels works -- the depth rides along as a fourth channel when requested.

Determinism: the kernel writes the gradient of every Gaussian-tile intersection to its own slot and sums
the slots per Gaussian in a fixed order (no atomics), so images and gradients are bit-identical between
runs, whatever the thread count (``torch.get_num_threads()`` threads are used).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import threading
from pathlib import Path
import torch

from ..errors import InputError
from ..paths import cache_root
from .projection import Splats, SplatRenderer

_EXT_NAME = "feat2gs_render_cpu"
MAX_TILE_SIZE = 64  # kMaxTile in the kernel
_SOURCES = [Path(__file__).with_name("csrc") / "rasterize_cpu.cpp"]
_lock = threading.Lock()
_ops = None


def _native_flags() -> tuple[list[str], str]:
    """Extra compiler flags and a build-folder tag for them.

    On x86-64 Linux the kernel is compiled for the host CPU (``-march=native``; AVX2/AVX-512 speed up the
    vectorised alpha evaluation) and the folder is tagged with a hash of the CPU's feature flags, so machines
    sharing a home directory never load each other's builds. ``FEAT2GS_CPU_NATIVE=0`` turns this off.
    ``-ffp-contract=off`` keeps float results independent of FMA availability.
    """
    flags = ["-O3", "-fopenmp", "-ffp-contract=off"]
    if os.environ.get("FEAT2GS_CPU_NATIVE", "1") != "0" and platform.machine() in ("x86_64", "AMD64"):
        try:
            cpu = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        except (OSError, StopIteration):
            return flags, "generic"
        return flags + ["-march=native"], "native-" + hashlib.sha1(cpu.encode()).hexdigest()[:10]
    return flags, "generic"


def build_dir(tag: str) -> Path:
    """The build folder: per Python, torch, CPU tag and source location (ninja rebuilds when the source path
    changes, so two checkouts sharing one folder would rebuild each other's kernel on every first use)."""
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    torch_tag = f"torch{torch.__version__}".replace("+", "_")
    src = hashlib.sha1(str(_SOURCES[0].resolve().parent).encode()).hexdigest()[:8]
    return cache_root() / "torch_extensions" / f"{py}_{torch_tag}_{tag}_src{src}" / _EXT_NAME


def load_kernel(verbose: bool = False):
    """Compiles (first call only) and loads the kernel; returns ``torch.ops.feat2gs_render_cpu``."""
    global _ops
    if _ops is not None:
        return _ops
    with _lock:
        if _ops is None:
            # importing cpp_extension warns about a missing CUDA runtime on CPU-only machines: irrelevant here
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            from torch.utils.cpp_extension import load

            flags, tag = _native_flags()
            d = build_dir(tag)
            d.mkdir(parents=True, exist_ok=True)
            try:
                load(name=_EXT_NAME, sources=[str(s) for s in _SOURCES], build_directory=str(d),
                     extra_cflags=flags, extra_ldflags=["-fopenmp"], is_python_module=False, verbose=verbose)
            except Exception as e:  # compiler missing or broken
                raise RuntimeError(
                    f"could not build the CPU rasteriser ({_SOURCES[0]}) in {d}: {e}. It needs a C++17 "
                    "compiler with OpenMP and ninja (pip install ninja)."
                ) from e
            _ops = getattr(torch.ops, _EXT_NAME)
    return _ops


def _soa(t: torch.Tensor) -> torch.Tensor:
    """(C, N, k) -> contiguous component-major (k, C, N) (free for the front end's views)."""
    return t.detach().permute(2, 0, 1).contiguous()


class _RasterizeCPU(torch.autograd.Function):
    """Kernel forward/backward over (means2d, conics, colors, opacities, background)."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, background, depths, radii, width, height, tile_size):
        ins = [_soa(means2d), _soa(conics), _soa(colors), opacities.detach().contiguous(),
               background.detach().contiguous()]
        image, alpha, *state = load_kernel().rasterize_fwd(
            *ins[:4], depths.detach().contiguous(), radii.permute(2, 0, 1).contiguous(), ins[4],
            width, height, tile_size)
        # state: t_final, last, tile_offsets, flat_ids, isect_slot, gauss_offsets, packed
        ctx.save_for_backward(*ins, *state)
        ctx.size = (width, height, tile_size)
        return image, alpha

    @staticmethod
    def backward(ctx, v_image, v_alpha):
        means2d, conics, colors, opacities, background, *state = ctx.saved_tensors
        t_final = state[0]
        width, height, tile_size = ctx.size
        if v_image is None:
            v_image = colors.new_zeros(colors.shape[1], colors.shape[0], height, width)
        if v_alpha is None:
            v_alpha = t_final.new_zeros(t_final.shape)
        v_image = v_image.contiguous()
        v_means2d, v_conics, v_colors, v_opacities = load_kernel().rasterize_bwd(
            means2d, conics, colors, opacities, background, *state, v_image, v_alpha.contiguous(), width, height,
            tile_size)
        v_background = None
        if ctx.needs_input_grad[4]:
            v_background = (v_image * t_final[:, None]).sum(dim=(2, 3))
        return (v_means2d.permute(1, 2, 0), v_conics.permute(1, 2, 0), v_colors.permute(1, 2, 0), v_opacities,
                v_background, None, None, None, None, None)


def rasterize_cpu(splats: Splats) -> tuple[torch.Tensor, torch.Tensor]:
    """Composites ``splats`` with the C++ kernel: colours (C, D, H, W), accumulated alpha (C, 1, H, W)."""
    image, alpha = _RasterizeCPU.apply(splats.means2d, splats.conics, splats.colors, splats.opacities,
                                       splats.background, splats.depths, splats.radii, splats.width,
                                       splats.height, splats.tile_size)
    return image, alpha[:, None]


class CPURenderer(SplatRenderer):
    """gsplat-conventions renderer on the CPU (float32 or float64 Gaussians)."""

    name = "cpu"

    def prepare(self, means: torch.Tensor) -> None:
        if means.device.type != "cpu":
            raise InputError("gaussians.means", f"the cpu renderer needs CPU tensors, got device {means.device}")
        if means.dtype not in (torch.float32, torch.float64):
            raise InputError("gaussians.means", f"the cpu renderer needs float32 or float64, got {means.dtype}")
        if self.settings.tile_size > MAX_TILE_SIZE:
            raise InputError("render.tile_size", f"the cpu renderer supports tiles of up to {MAX_TILE_SIZE} pixels")
        load_kernel()

    def rasterize(self, splats: Splats) -> tuple[torch.Tensor, torch.Tensor]:
        return rasterize_cpu(splats)
