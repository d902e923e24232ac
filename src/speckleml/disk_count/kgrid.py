"""The k grid of a disk-count speckle pattern (paper 002 §2, "Speckle pattern dataset generation").

The paper samples the pattern at ``k = (n_x w, n_y w)`` with pixel ``w = pi / L`` (``L`` the
box side) and ``n_x, n_y = 0 .. n_max`` (``n_max`` = 256 or 512: 257 x 257 and 513 x 513
patterns): one quadrant from ``k = 0`` to ``k_max = n_max pi / L`` along each axis. That is the
``"quadrant"`` grid, the default. (The authors' MATLAB code differs from the text; we follow
the text.) Because the speckle of a real object obeys ``I(k) = I(-k)``, the quadrant holds half
of the independent information of the full pattern up to ``k_max``, and all of its k range.

``"centred"`` is the grid of earlier versions of this package, kept for comparison:
``n = -(S-1)/2 .. (S-1)/2`` for an odd side ``S``, k = 0 in the centre pixel, which reaches
only half the k range of a quadrant pattern of the same side.

The beamstop: the paper blocks an 11 x 11 square at the "center" to hide the "excessive
brightness of the center pixels", i.e. the pixels around k = 0. We block the same k region in
both grids, ``|n_x|, |n_y| <= (block - 1) / 2`` (:func:`block_mask`): on the centred grid the
11 x 11 square around the centre pixel; on the quadrant grid the 6 x 6 corner
``n_x, n_y = 0 .. 5`` (the part of that square with k >= 0). The literal image centre of a
0 .. k_max grid (n = 123 .. 133 for 257 x 257) holds no bright pixels, so blocking it would
not be a beamstop.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: k grids of a pattern: the paper's quadrant (k = 0 .. n_max pi/L) or centred on k = 0.
K_GRIDS = ("quadrant", "centred")


def k_index(size: int, grid: str) -> np.ndarray:
    """Integer k coordinates ``n`` (k = n pi/L) of the pixels of one pattern axis.

    Parameters
    ----------
    size : int
        Pixels along the axis; >= 3, and odd for the centred grid.
    grid : {"quadrant", "centred"}
        ``quadrant``: ``n = 0 .. size-1`` (paper 002 §2). ``centred``: ``n = -(size-1)/2 ..
        (size-1)/2``.

    Returns
    -------
    ndarray of int64, shape (size,)

    Raises
    ------
    InputError
        Unknown ``grid``, ``size`` < 3, or an even ``size`` on the centred grid.
    """
    if grid not in K_GRIDS:
        raise InputError(f"k grid must be one of {K_GRIDS}, got {grid!r}")
    if size < 3:
        raise InputError(f"pattern size must be >= 3, got {size}")
    if grid == "quadrant":
        return np.arange(size, dtype=np.int64)
    if size % 2 == 0:
        raise InputError(f"pattern size must be odd on the centred k grid (k = 0 in the centre pixel), got {size}")
    half = (size - 1) // 2
    return np.arange(-half, half + 1, dtype=np.int64)


def k_axis(size: int, box: float, grid: str) -> np.ndarray:
    """k values of one pattern axis, ``k_index(size, grid) * pi / box`` (1 / box units).

    Quadrant grid: first pixel k = 0, spacing ``pi / box``, last ``(size-1) pi / box``.

    Parameters
    ----------
    size : int
        Pixels along the axis (see :func:`k_index`).
    box : float
        Real-space box side ``L`` (box units).
    grid : {"quadrant", "centred"}

    Returns
    -------
    ndarray, float64, shape (size,)

    Raises
    ------
    InputError
        See :func:`k_index`; also a non-positive ``box``.
    """
    if not box > 0:
        raise InputError(f"box side must be positive, got {box}")
    return k_index(size, grid).astype(np.float64) * (np.pi / box)


def block_mask(shape: tuple[int, int], block: int, grid: str) -> np.ndarray:
    """Boolean (y, x) mask of the beamstop: pixels with ``|n_x|, |n_y| <= (block - 1) / 2``.

    Parameters
    ----------
    shape : (ny, nx)
    block : int
        Side of the blocked square centred on k = 0 in k pixels (odd), 0 for none; paper 11.
    grid : {"quadrant", "centred"}

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        ``block x block`` pixels around the centre (centred grid) or the
        ``(block+1)/2`` square corner at k = 0 (quadrant grid).

    Raises
    ------
    InputError
        Even or negative ``block``, or a block that covers the whole pattern.
    """
    ny, nx = shape
    if block < 0 or (block and block % 2 == 0):
        raise InputError(f"--block must be an odd number of pixels (or 0), got {block}")
    if not block:
        return np.zeros((ny, nx), bool)
    half = block // 2
    mask = (np.abs(k_index(ny, grid))[:, None] <= half) & (np.abs(k_index(nx, grid))[None, :] <= half)
    if mask.all():
        raise InputError(f"--block {block} leaves nothing of a {ny}x{nx} pattern")
    return mask
