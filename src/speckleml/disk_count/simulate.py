"""Random 2D disk systems and their coherent speckle patterns (paper 002, Methods).

A system is ``n`` non-overlapping disks in an ``L x L`` box (``L = 2000``) whose total area
is fixed at ``2 pi 90^2`` (the two-disk system with radius 90), so ``r = sqrt(16200 / n)``
for monodisperse systems. Polydisperse systems draw Gaussian radii with standard deviation
mean/3 and rescale them to the same total area.

The far-field amplitude of a disk of radius ``r`` centred on ``c`` is exactly
``A(k) = pi r^2 * 2 J1(k r) / (k r) * exp(-i k.c)``; a pattern is ``|sum_j A_j(k)|^2`` on a
k grid of :mod:`speckleml.disk_count.kgrid`: by default the paper's quadrant
``k = (n_x, n_y) * pi / L`` with ``n = 0 .. S-1`` for an S x S pattern (paper 002 §2), or the
centred grid ``n = -(S-1)/2 .. (S-1)/2``.
The sum goes through :mod:`speckleml.scattering` (``disk_form_factor`` and
``point_amplitude``). :func:`raster_speckle` computes the same pattern from a rasterised
image with a zero-padded FFT; it is the independent cross-check used by the tests.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .kgrid import k_axis as _k_axis
from .kgrid import k_index

log = logging.getLogger(__name__)

#: Side of the real-space box (paper: 2000 x 2000 units).
BOX = 2000.0
#: Total disk area of every system: that of two disks of radius 90.
TOTAL_AREA = 2 * math.pi * 90.0**2
#: Polydisperse radii: standard deviation as a fraction of the mean (paper: 1/3).
POLY_SD_FRACTION = 1.0 / 3.0
DISPERSITIES = ("mono", "poly")


@dataclass(frozen=True)
class DiskSystem:
    """One configuration: disk centres ``(n, 2)`` as (x, y) and radii ``(n,)``, box units.

    Attributes
    ----------
    centres : ndarray, shape (n, 2)
    radii : ndarray, shape (n,)
    """

    centres: np.ndarray
    radii: np.ndarray

    @property
    def n(self) -> int:
        return int(self.radii.size)


def disk_radii(n: int, dispersity: str, rng: np.random.Generator, total_area: float = TOTAL_AREA) -> np.ndarray:
    """Radii of an ``n``-disk system with the given total area.

    Parameters
    ----------
    n : int
        Number of disks (>= 1).
    dispersity : {"mono", "poly"}
        ``mono``: all radii ``sqrt(total_area / (pi n))``. ``poly``: Gaussian radii with
        mean ``sqrt(total_area / (pi n))`` and sd = mean/3, redrawn until all are positive,
        then scaled so that the total area is exactly ``total_area``.
    rng : numpy.random.Generator
    total_area : float

    Returns
    -------
    ndarray, shape (n,)
    """
    if n < 1:
        raise InputError(f"number of disks must be >= 1, got {n}")
    if dispersity not in DISPERSITIES:
        raise InputError(f"dispersity must be one of {DISPERSITIES}, got {dispersity!r}")
    mean = math.sqrt(total_area / (math.pi * n))
    if dispersity == "mono":
        return np.full(n, mean)
    while True:  # a non-positive draw has probability ~1e-3 per disk: redraw the system
        radii = rng.normal(mean, POLY_SD_FRACTION * mean, size=n)
        if (radii > 0).all():
            break
    return radii * math.sqrt(total_area / (math.pi * np.sum(radii**2)))


def place_disks(radii: np.ndarray, rng: np.random.Generator, box: float = BOX, max_tries: int = 10000) -> np.ndarray:
    """Random sequential placement of non-overlapping disks fully inside the box.

    Larger disks are placed first (the hardest to fit); each centre is uniform in
    ``[r, box - r]^2`` and redrawn while it overlaps a placed disk. At the paper's area
    fraction (1.3 %) a redraw is rare.

    Parameters
    ----------
    radii : ndarray, shape (n,)
        Box units.
    rng : numpy.random.Generator
    box : float
        Box side.
    max_tries : int
        Draws per disk before giving up.

    Raises
    ------
    InputError
        A disk larger than the box, or one that cannot be placed in ``max_tries`` draws.

    Returns
    -------
    ndarray, shape (n, 2)
        Centres (x, y) in the order of ``radii``.
    """
    radii = np.asarray(radii, dtype=np.float64)
    if (2 * radii > box).any():
        raise InputError(f"a disk of radius {radii.max():.1f} does not fit in a box of {box}")
    centres = np.empty((radii.size, 2))
    placed: list[int] = []
    for index in np.argsort(-radii, kind="stable"):
        r = radii[index]
        for _ in range(max_tries):
            c = rng.uniform(r, box - r, size=2)
            if not placed:
                break
            gaps = np.hypot(*(centres[placed] - c).T) - (radii[placed] + r)
            if (gaps >= 0).all():
                break
        else:
            raise InputError(f"could not place {radii.size} disks without overlap in {max_tries} tries")
        centres[index] = c
        placed.append(index)
    return centres


def random_system(n: int, dispersity: str, rng: np.random.Generator, box: float = BOX,
                  total_area: float = TOTAL_AREA) -> DiskSystem:
    """Draw radii (:func:`disk_radii`) then positions (:func:`place_disks`) of one ``n``-disk system.

    Paper 002 §2 "Model system generation".

    Parameters
    ----------
    n : int
    dispersity : {"mono", "poly"}
    rng : numpy.random.Generator
    box, total_area : float
        Box side and total disk area (box units, squared for the area).

    Returns
    -------
    DiskSystem
    """
    radii = disk_radii(n, dispersity, rng, total_area)
    return DiskSystem(centres=place_disks(radii, rng, box), radii=radii)


def k_axis(size: int, box: float = BOX, grid: str = "quadrant") -> np.ndarray:
    """k values of one pattern axis (1 / box units); see :func:`speckleml.disk_count.kgrid.k_axis`.

    Quadrant grid (paper 002 §2): ``k = n pi / box``, ``n = 0 .. size-1``.

    Parameters
    ----------
    size : int
    box : float
    grid : {"quadrant", "centred"}

    Returns
    -------
    ndarray, float64, shape (size,)
    """
    return _k_axis(size, box, grid)


def disk_amplitudes(systems: list[DiskSystem], size: int, box: float = BOX, dtype=None, device=None,
                    grid: str = "quadrant"):
    """Exact far-field amplitudes of a batch of disk systems with the same number of disks.

    Parameters
    ----------
    systems : list of DiskSystem
        All with the same ``n``.
    size : int
        Pattern side; the grid is :func:`k_axis` in both directions.
    box : float
        Box side ``L`` that sets the k pixel ``pi / L``.
    dtype : torch.dtype, optional
        Real dtype of the computation (default float64).
    device : torch.device, optional
    grid : {"quadrant", "centred"}
        k grid (:mod:`speckleml.disk_count.kgrid`).

    Returns
    -------
    torch.Tensor, complex, shape (batch, size, size)
        Amplitude indexed (ky, kx).
    """
    import torch

    from ..scattering import point_amplitude

    dtype = dtype or torch.float64
    counts = {s.n for s in systems}
    if len(counts) != 1:
        raise ValueError(f"disk_amplitudes needs one disk number per batch, got {sorted(counts)}")
    k = torch.as_tensor(k_axis(size, box, grid), dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(k, k, indexing="ij")
    q = torch.stack((grid_x, grid_y), dim=-1)                                        # (S, S, 2), (x, y)
    # Centres relative to the box centre keep the phases k.c small (float32-friendly);
    # a translation changes only the phase of the amplitude, never the intensity.
    centres = torch.as_tensor(np.stack([s.centres for s in systems]) - box / 2, dtype=dtype, device=device)
    radii = torch.as_tensor(np.stack([s.radii for s in systems]), dtype=dtype, device=device)  # (B, N)
    # sum_j pi r_j^2 * 2 J1(k r_j) / (k r_j) * exp(+i k.c_j); the paper's exp(-i k.c) gives the
    # complex conjugate, which has the same modulus.
    amplitude = point_amplitude(centres, q, radii=radii, form_factor="disk", volume_weighted=True)
    return torch.conj(amplitude)


def disk_speckle(systems: list[DiskSystem], size: int, box: float = BOX, dtype=None, device=None,
                 grid: str = "quadrant") -> np.ndarray:
    """Speckle intensities ``|A(k)|^2`` of a batch of disk systems (paper 002 §2).

    Parameters
    ----------
    systems, size, box, dtype, device, grid
        As :func:`disk_amplitudes`.

    Returns
    -------
    ndarray, float64, shape (batch, size, size)
        Indexed (ky, kx), in (box unit)^4.
    """
    amplitude = disk_amplitudes(systems, size, box, dtype=dtype, device=device, grid=grid)
    return (amplitude.real**2 + amplitude.imag**2).cpu().double().numpy()


def rasterise(system: DiskSystem, pixels: int, box: float = BOX, supersample: int = 4) -> np.ndarray:
    """Disk indicator image (y, x) of the box with area-weighted (supersampled) pixels.

    Each pixel's value is the fraction of ``supersample^2`` sub-pixel centres inside a disk,
    an approximation of its area coverage; only pixels near each disk are evaluated.

    Parameters
    ----------
    system : DiskSystem
    pixels : int
        Raster side; the pixel is ``box / pixels``.
    box : float
    supersample : int
        Sub-pixels per axis.

    Returns
    -------
    ndarray, float64, shape (pixels, pixels)
        In [0, 1], indexed (y, x).
    """
    dx = box / pixels
    image = np.zeros((pixels, pixels))
    offsets = (np.arange(supersample) + 0.5) / supersample
    for (cx, cy), r in zip(system.centres, system.radii):
        lo_x, hi_x = max(int((cx - r) / dx) - 1, 0), min(int((cx + r) / dx) + 2, pixels)
        lo_y, hi_y = max(int((cy - r) / dx) - 1, 0), min(int((cy + r) / dx) + 2, pixels)
        xs = (np.arange(lo_x, hi_x)[:, None] + offsets).reshape(-1) * dx
        ys = (np.arange(lo_y, hi_y)[:, None] + offsets).reshape(-1) * dx
        inside = ((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) <= r**2
        coverage = inside.reshape(hi_y - lo_y, supersample, hi_x - lo_x, supersample).mean(axis=(1, 3))
        image[lo_y:hi_y, lo_x:hi_x] = np.maximum(image[lo_y:hi_y, lo_x:hi_x], coverage)
    return image


def raster_speckle(system: DiskSystem, size: int, pixels: int, box: float = BOX, supersample: int = 4,
                   grid: str = "quadrant") -> np.ndarray:
    """Speckle of a rasterised system by zero-padded FFT, on the same k grid as :func:`disk_speckle`.

    The ``pixels x pixels`` raster of the box is zero-padded to ``2 * pixels`` so that the FFT
    frequency step is ``2 pi / (2 box) = pi / box``; the pixel's box-filter transform
    (a sinc per axis) is divided out. What remains is the raster (staircase) error.

    Parameters
    ----------
    system : DiskSystem
    size : int
        Pattern side.
    pixels : int
        Raster side; must exceed the largest ``|n|`` of the k grid.
    box : float
    supersample : int
        See :func:`rasterise`.
    grid : {"quadrant", "centred"}

    Raises
    ------
    InputError
        A raster too coarse for the k range.

    Returns
    -------
    ndarray, shape (size, size)
    """
    n = k_index(size, grid)
    if np.abs(n).max() >= pixels:
        raise InputError(f"raster of {pixels} pixels is too coarse for a {size} pattern on the {grid} grid")
    dx = box / pixels
    image = rasterise(system, pixels, box, supersample)
    # FFT index m of a 2 * pixels transform is the frequency m pi / box (negative n wrap around)
    field = np.fft.fft2(image, s=(2 * pixels, 2 * pixels)) * dx**2
    index = n % (2 * pixels)
    crop = field[np.ix_(index, index)]
    k = n * (math.pi / box)
    pixel_transform = np.sinc(k * dx / (2 * np.pi))  # numpy sinc(x) = sin(pi x)/(pi x)
    crop = crop / (pixel_transform[:, None] * pixel_transform[None, :])
    return np.abs(crop) ** 2


def simulate_class(n: int, count: int, size: int, dispersity: str, rng: np.random.Generator,
                   box: float = BOX, batch: int = 16, dtype=None, device=None, grid: str = "quadrant"):
    """Simulate ``count`` patterns of ``n``-disk systems (paper 002 §2, model system and speckle).

    Parameters
    ----------
    n : int
        Disks per system.
    count : int
        Systems (patterns) to draw.
    size : int
        Pattern side in k pixels (odd, see :func:`k_axis`).
    dispersity : {"mono", "poly"}
    rng : numpy.random.Generator
        Draws the radii and positions.
    box : float
        Box side ``L`` (box units); the k pixel is ``pi / L``.
    batch : int
        Systems per amplitude evaluation (memory vs speed; results do not depend on it).
    dtype, device : torch dtype and device of the amplitude sum.
    grid : {"quadrant", "centred"}
        k grid (:mod:`speckleml.disk_count.kgrid`).

    Returns
    -------
    patterns : ndarray, float32, shape (count, size, size)
        Intensities ``|A(k)|^2`` in (box unit)^4, indexed (ky, kx).
    disks : ndarray, float64, shape (count, n, 3)
        Columns x, y, radius (box units).

    Raises
    ------
    InputError
        Bad ``n``, ``dispersity`` or ``size``, or disks that cannot be placed.
    """
    systems = [random_system(n, dispersity, rng, box) for _ in range(count)]
    patterns = np.empty((count, size, size), np.float32)
    for start in range(0, count, batch):
        chunk = systems[start: start + batch]
        patterns[start: start + len(chunk)] = disk_speckle(chunk, size, box, dtype=dtype, device=device, grid=grid)
    disks = np.stack([np.column_stack([s.centres, s.radii]) for s in systems])
    return patterns, disks


def simulate_store(output, *, dispersity: str, n_disks: list[int], per_class: int, size: int, box: float,
                   k_grid: str, precision: str, batch: int, seed: int, device: str):
    """Simulate one data set (``per_class`` patterns per disk number) into a patterns store.

    Paper 002 §2 ("Model system generation", "Speckle pattern dataset generation"): random
    non-overlapping ``n``-disk systems of constant total area in an ``L x L`` box and their
    exact far-field speckle on the k grid of :func:`k_axis`.

    Parameters
    ----------
    output : path
        Patterns store to write (:data:`speckleml.disk_count.data.PATTERNS`), atomically.
    dispersity : {"mono", "poly"}
    n_disks : list of int
        Disk numbers, one class each; distinct and >= 1.
    per_class : int
        Patterns per disk number (>= 1).
    size : int
        Pattern side in k pixels (>= 3; odd on the centred grid).
    box : float
        Box side ``L`` in box units (> 0); the k pixel is ``pi / L``.
    k_grid : {"quadrant", "centred"}
        ``quadrant``: the paper's ``k = n pi / L``, ``n = 0 .. size-1``; ``centred``: k = 0 in
        the centre pixel (:mod:`speckleml.disk_count.kgrid`).
    precision : {"float32", "float64"}
        Real dtype of the amplitude sum.
    batch : int
        Systems per amplitude evaluation (>= 1).
    seed : int
        Seeds torch and the configuration stream; the stream also depends on ``size`` and
        ``dispersity``, so data sets of other sizes or dispersities hold independent systems.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    pathlib.Path
        ``output``. The store holds ``patterns`` (pattern, ky, kx) float32, ``n_disks``
        (pattern,), ``disks`` (pattern, max n, [x, y, r]) zero-padded, ``kx``, ``ky``.

    Raises
    ------
    InputError
        Non-positive counts or box, repeated or non-positive disk numbers, even ``size``.
    """
    import torch

    from ..progress import progress
    from ..provenance import make_provenance
    from ..runtime import resolve_device, seed_everything
    from ..stores import write_store
    from .data import PATTERNS

    if per_class < 1 or batch < 1:
        raise InputError(f"--per-class and --batch must be >= 1, got {per_class} and {batch}")
    if len(set(n_disks)) != len(n_disks) or min(n_disks) < 1:
        raise InputError(f"--n-disks must be distinct positive integers, got {n_disks}")
    if not box > 0:
        raise InputError(f"--box must be positive, got {box}")
    if dispersity not in DISPERSITIES:
        raise InputError(f"dispersity must be one of {DISPERSITIES}, got {dispersity!r}")
    k = k_axis(size, box, k_grid)
    seed_everything(seed)
    rng = np.random.default_rng([seed, size, DISPERSITIES.index(dispersity)])
    torch_device = resolve_device(device)
    dtype = getattr(torch, precision)
    classes = sorted(n_disks)
    patterns = np.empty((len(classes) * per_class, size, size), np.float32)
    disks = np.zeros((len(classes) * per_class, max(classes), 3))
    for i, n in enumerate(progress(classes, desc="simulate", every=10.0)):
        rows = slice(i * per_class, (i + 1) * per_class)
        patterns[rows], disks[rows, :n] = simulate_class(n, per_class, size, dispersity, rng, box=box, batch=batch,
                                                        dtype=dtype, device=torch_device, grid=k_grid)
    labels = np.repeat(np.asarray(classes, np.int64), per_class)
    attrs = {"box": box, "dispersity": dispersity, "k_pixel": float(np.pi / box), "k_grid": k_grid,
             "total_area": TOTAL_AREA,
             "classes": classes,
             "units": {"k": "1/box unit", "intensity": "(box unit)^4, |sum_j pi r^2 2J1(kr)/(kr) exp(-ik.c)|^2"},
             "disks_columns": ["x", "y", "radius"]}
    settings = {"dispersity": dispersity, "n_disks": list(n_disks), "per_class": per_class, "size": size,
                "box": box, "k_grid": k_grid, "precision": precision, "batch": batch, "seed": seed, "device": device}
    path = write_store(output, PATTERNS, {"patterns": patterns, "n_disks": labels, "disks": disks, "kx": k, "ky": k},
                       attrs=attrs, provenance=make_provenance(config=settings, seed=seed))
    log.info("wrote %d patterns (%d classes, %dx%d) to %s", len(labels), len(classes), size, size, output)
    return path
