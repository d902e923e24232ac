"""Shared tools: ``speckleml import-frames`` (and the correlation tools of :mod:`xpcs_cli`)."""

from __future__ import annotations

import logging

from ..cli import add_stage

log = logging.getLogger(__name__)

IMPORT_FRAMES_EXAMPLE = """\
examples:
  speckleml import-frames img_stack.npy.zip results/real/frames.zarr \\
      --pixel-size 0.108 --distance 2230 --wavelength 1.546 --center 143 123 --dt 1.30068e-3
  speckleml import-frames scan.h5 frames.zarr --dataset /entry/data/data --mask mask.npy
"""


def register(commands) -> None:
    parser = add_stage(commands, "import-frames", import_frames,
                       "import measured frames (npy, npy.zip, HDF5, zarr) into a frames store",
                       epilog=IMPORT_FRAMES_EXAMPLE)
    parser.add_argument("input", help="frame stack: .npy, .npy.zip, .h5/.nxs or .zarr")
    parser.add_argument("output", help="frames store to write (*.zarr)")
    parser.add_argument("--dataset", help="HDF5 dataset or zarr array (default /entry/data/data or frames)")
    parser.add_argument("--mask", help=".npy boolean mask (y, x), True = valid pixel")
    parser.add_argument("--pixel-size", type=float, help="pixel pitch in mm")
    parser.add_argument("--distance", type=float, help="sample-detector distance in mm")
    parser.add_argument("--wavelength", type=float, help="wavelength in Angstrom")
    parser.add_argument("--center", type=float, nargs=2, metavar=("ROW", "COL"), help="beam centre in pixels")
    parser.add_argument("--dt", type=float, default=1.0, help="frame time in seconds (default %(default)s)")
    parser.add_argument("--max-frames", type=int, help="keep only the first N frames")
    parser = add_stage(commands, "synthetic-frames", synthetic_frames,
                       "write a synthetic speckle stack with g2-1 = exp(-2 t/tau) (tests, demos)")
    parser.add_argument("output", help="frames store to write (*.zarr)")
    parser.add_argument("--frames", type=int, default=200, help="frames per series (default %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="detector size in pixels (default %(default)s)")
    parser.add_argument("--tau", type=float, default=10.0, help="correlation time in frames (default %(default)s)")
    parser.add_argument("--mean-counts", type=float, help="Poisson counts per pixel (default: noise-free)")
    parser.add_argument("--dt", type=float, default=1.0, help="frame time in seconds (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    from . import cli as xpcs_cli

    xpcs_cli.register(commands)


def import_frames(args) -> int:
    import numpy as np

    from ..errors import InputError
    from .frames import Geometry, read_frame_array
    from ..provenance import provenance_from_args
    from ..stores import write_frames

    data = read_frame_array(args.input, args.dataset)
    if data.ndim == 3:
        data = data[None]
    if args.max_frames:
        data = data[:, : args.max_frames]
    if not np.isfinite(data).all():
        raise InputError(f"{args.input}: frames contain NaN or infinite values")
    ny, nx = data.shape[-2:]
    mask = None
    if args.mask:
        mask = np.load(args.mask, allow_pickle=False).astype(bool)
        if mask.shape != (ny, nx):
            raise InputError(f"{args.mask}: mask shape {mask.shape} does not match frames {(ny, nx)}")
    geometry_args = (args.pixel_size, args.distance, args.wavelength, args.center)
    attrs = {"dt": args.dt, "units": {"t": "s", "intensity": "counts"}, "source": str(args.input)}
    qx = qy = None
    if any(v is not None for v in geometry_args):
        if any(v is None for v in geometry_args):
            raise InputError("geometry needs all of --pixel-size, --distance, --wavelength and --center")
        geometry = Geometry(args.pixel_size, args.distance, args.wavelength, tuple(args.center))
        qx, qy = geometry.axis_q(nx, 1), geometry.axis_q(ny, 0)
        attrs["geometry"] = geometry.to_attrs()
        attrs["units"]["q"] = "1/Angstrom"
    else:
        attrs["units"]["q"] = "pixel"
    write_frames(args.output, data.astype(np.float32), mask=mask, qx=qx, qy=qy, attrs=attrs,
                 provenance=provenance_from_args(args, inputs=[args.input]))
    log.info("wrote %s: %d series x %d frames of %dx%d", args.output, *data.shape)
    return 0


def synthetic_frames(args) -> int:
    from ..errors import InputError
    from ..provenance import provenance_from_args
    from ..stores import write_frames
    from ..synthetic import ou_speckle

    if args.frames < 2 or args.size < 8 or args.tau <= 0:
        raise InputError("need --frames >= 2, --size >= 8 and --tau > 0")
    frames = ou_speckle(args.frames, args.size, args.tau, seed=args.seed, mean_counts=args.mean_counts)
    attrs = {"dt": args.dt, "units": {"t": "s", "intensity": "counts" if args.mean_counts else "a.u.", "q": "pixel"},
             "source": "synthetic", "truth": {"tau_frames": args.tau, "beta": 1.0, "gamma": 1.0}}
    write_frames(args.output, frames, attrs=attrs, provenance=provenance_from_args(args))
    log.info("wrote %s: %d frames of %dx%d, tau=%g frames", args.output, args.frames, args.size, args.size, args.tau)
    return 0
