"""Frame import tools: ``speckleml import-frames`` and ``synthetic-frames`` (and the correlation
tools of :mod:`speckleml.xpcs.cli`, which this module registers)."""

from __future__ import annotations

import logging

from ..cli import add_config_option, add_stage, finite_float, int_at_least, positive_float, positive_int
from . import cli as xpcs_cli  # registered with these commands, so every xpcs stage imports it

log = logging.getLogger(__name__)

IMPORT_FRAMES_EXAMPLE = """\
examples:
  speckleml import-frames img_stack.npy.zip results/real/frames.zarr \\
      --pixel-size 0.108 --distance 2230 --wavelength 1.546 --center 143 123 --dt 1.30068e-3
  speckleml import-frames scan.h5 frames.zarr --dataset /entry/data/data --mask mask.npy --dt 0.01
"""


def register(commands) -> None:
    """Add the frame import commands and the correlation tools to the top-level parser."""
    parser = add_stage(commands, "import-frames", import_frames,
                       "import measured frames (npy, npy.zip, HDF5, zarr) into a frames store",
                       epilog=IMPORT_FRAMES_EXAMPLE)
    parser.add_argument("input", help="frame stack: .npy, .npy.zip, .h5/.nxs or .zarr")
    parser.add_argument("output", help="frames store to write (*.zarr)")
    parser.add_argument("--dataset", help="HDF5 dataset or zarr array (default /entry/data/data or frames)")
    parser.add_argument("--mask", help=".npy boolean mask (y, x), True = valid pixel")
    parser.add_argument("--pixel-size", type=positive_float, help="pixel pitch in mm")
    parser.add_argument("--distance", type=positive_float, help="sample-detector distance in mm")
    parser.add_argument("--wavelength", type=positive_float, help="wavelength in Angstrom")
    parser.add_argument("--center", type=finite_float, nargs=2, metavar=("ROW", "COL"), help="beam centre in pixels")
    add_config_option(parser, "--dt", key="xpcs.dt", type=positive_float,
                      help="frame time in seconds (default %(default)s, the config's)")
    parser.add_argument("--max-frames", type=positive_int, help="keep only the first N frames (N >= 1)")

    parser = add_stage(commands, "synthetic-frames", synthetic_frames,
                       "write a synthetic speckle stack with g2-1 = exp(-2 t/tau) (tests, demos)")
    parser.add_argument("output", help="frames store to write (*.zarr)")
    add_config_option(parser, "--frames", key="xpcs.synthetic.frames", type=int_at_least(2),
                      help="frames per series (default %(default)s)")
    add_config_option(parser, "--size", key="xpcs.synthetic.size", type=int_at_least(8),
                      help="detector size in pixels (default %(default)s)")
    add_config_option(parser, "--tau", key="xpcs.synthetic.tau", type=positive_float,
                      help="correlation time in frames (default %(default)s)")
    add_config_option(parser, "--mean-counts", key="xpcs.synthetic.mean_counts", type=positive_float,
                      help="Poisson counts per pixel (default %(default)s)")
    add_config_option(parser, "--dt", key="xpcs.dt", type=positive_float,
                      help="frame time in seconds (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser = add_stage(commands, "import-cxi", import_cxi,
                       "import a CXI ptychography scan (frames, mask, geometry, scan positions) into a frames store",
                       epilog="example:\n  speckleml import-cxi scan.cxi results/scan/frames.zarr --figure scan.png\n")
    parser.add_argument("input", help="CXI file (HDF5, cxidb.org format, SI units)")
    parser.add_argument("output", help="frames store to write (*.zarr); scan positions (m) in its attrs")
    parser.add_argument("--figure", help="also write a figure of the scan positions and mean pattern (.png/.pdf)")
    xpcs_cli.register(commands)


def import_frames(args) -> int:
    from ..errors import InputError
    from ..cli import provenance_from_args
    from .frames import Geometry
    from .ingest import import_frames as run

    geometry_args = (args.pixel_size, args.distance, args.wavelength, args.center)
    geometry = None
    if any(v is not None for v in geometry_args):
        if any(v is None for v in geometry_args):
            raise InputError("geometry needs all of --pixel-size, --distance, --wavelength and --center")
        geometry = Geometry(args.pixel_size, args.distance, args.wavelength, tuple(args.center))
    run(args.input, args.output, dt=args.dt, dataset=args.dataset, mask=args.mask, geometry=geometry,
        max_frames=args.max_frames, provenance=provenance_from_args(args, inputs=[args.input]))
    return 0


def synthetic_frames(args) -> int:
    from ..cli import provenance_from_args
    from .synthetic_stack import synthetic_frames as run

    run(args.output, frames=args.frames, size=args.size, tau=args.tau, mean_counts=args.mean_counts, dt=args.dt,
        seed=args.seed, provenance=provenance_from_args(args))
    return 0


def import_cxi(args) -> int:
    from ..cli import provenance_from_args
    from .cxi import import_cxi as run

    run(args.input, args.output, figure=args.figure, provenance=provenance_from_args(args, inputs=[args.input]))
    return 0
