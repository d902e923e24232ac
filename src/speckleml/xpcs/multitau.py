"""Multi-tau one-time correlation ``g2(q, tau)``, streamed over the frames in one pass.

The standard multi-tau estimator (Schätzel, Drewel & Stimac 1988; for area detectors
Lumma, Lurio, Mochrie & Sutton, Rev. Sci. Instrum. 71, 3274 (2000)), as in scikit-beam's
``skbeam.core.correlation.lazy_one_time`` / ``multi_tau_auto_corr`` and APS ``boost_corr``:

- Level 0 holds the frames themselves; level ``L > 0`` holds the averages of consecutive,
  non-overlapping pairs of level ``L - 1`` frames, i.e. means of ``2**L`` raw frames.
- With ``buffers`` (``m``, even) per level, level 0 gives the lags ``0, 1, ..., m - 1``
  frames and level ``L > 0`` the lags ``i * 2**L`` for ``i = m/2, ..., m - 1`` (scikit-beam
  ``skbeam.core.utils.multi_tau_lags``: ``(m/2 + j) 2**L``). A lag is kept when its level
  has at least one pair of frames; with ``n_levels`` unset, every level that has one.
- For each pixel ``p`` and lag ``i`` at level ``L`` (level frames ``B_0 .. B_{n-1}``,
  ``n = T // 2**L``) over the ``n - i`` pairs: ``G2 = <B_t B_{t+i}>``, ``IP = <B_t>``
  (past), ``IF = <B_{t+i}>`` (future), accumulated in float64.

Symmetric normalisation ``G2 / (IP IF)``: where the ratio is taken is a convention.

``"roi"`` (default; scikit-beam ``multi_tau_auto_corr``)
    ``g2 = <G2_p>_roi / (<IP_p>_roi <IF_p>_roi)``: ROI means first, one ratio after. Each
    pixel weighs by its photons, so sparse pixels do not bias it.
``"pixel"``
    ``g2_p = G2_p / (IP_p IF_p)`` per pixel, then the mean over the ROI's pixels. Pixels
    with ``IP IF = 0`` at a lag (never lit) are left out of that lag's mean. Biased low where
    pixels collect few photons: a pixel with a handful of counts that never falls on a
    pair gives ``g2_p = 0``. On the scikit-beam demo stack (100 frames, most ring pixels
    dark) it gives ``g2(1 frame) = 0.84 .. 0.98`` against ``3.1 .. 5.0`` for ``"roi"``.
``"static"`` (APS ``boost_corr`` ``XpcsQPartitionMap.compute_g2``)
    The ratio of means over each static bin (the pixels of an ROI that share a label of
    ``static_labels``, the finer "static" q partition), then the mean over the ROI's static
    bins. ``"pixel"`` and ``"roi"`` are its two limits (one pixel per bin, one bin per ROI).
    Bins with ``IP IF = 0`` are left out (boost_corr sets their ratio to ~0 instead).

Speckle contrast makes the conventions differ: the ROI-level ratio adds the spatial variance
of the mean intensity (static speckle) to ``g2``, the per-pixel ratio does not.

``g2_err`` is, in every convention, the standard deviation over the ROI's pixels of the
per-pixel ``g2_p`` divided by ``sqrt(n_pixels)`` (as boost_corr computes its error).

Frames are correlated as given; recent boost_corr (``multitau.py``, ``flush_level``) first
divides every frame by its mean over the detector (a flux correction), which changes ``g2``
where the beam intensity drifts.

Memory is ``O(pixels x buffers x levels)`` float64 (ring buffers, first frames and the
``G2`` sums of every level) plus one block of frames: never ``O(T^2)`` or ``O(T x pixels)``.
``IP`` and ``IF`` need no running sums: they are the level's total minus its last
(respectively first) ``i`` frames, which the level keeps anyway.

Examples
--------
>>> lag, g2, g2_err = multitau_g2(frames, labels, buffers=8, dt=1e-3)          # doctest: +SKIP
>>> lag, g2, g2_err = multitau_g2_store("frames.zarr", labels)                 # doctest: +SKIP
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Buffers (channels) per level, as scikit-beam's examples and boost_corr use.
DEFAULT_BUFFERS = 8

#: Normalisation conventions (see the module docstring).
MULTITAU_NORMALIZATIONS = ("roi", "pixel", "static")

#: Frames per block when the input array has no time chunking of its own.
DEFAULT_BLOCK = 64


def _check_buffers(buffers: int) -> int:
    if int(buffers) != buffers or buffers < 2 or buffers % 2:
        raise ValueError(f"buffers must be an even integer >= 2, got {buffers}")
    return int(buffers)


def _level_lags(level: int, buffers: int) -> np.ndarray:
    """Lags of one level in units of that level's frames (``2**level`` raw frames)."""
    return np.arange(0 if level == 0 else buffers // 2, buffers)


def multitau_lags(n_frames: int, buffers: int = DEFAULT_BUFFERS,
                  n_levels: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-tau lags of a series of ``n_frames`` frames and the pairs behind each.

    Parameters
    ----------
    n_frames : int
        Frames in the series.
    buffers : int
        Buffers per level (even, >= 2).
    n_levels : int, optional
        Levels to use (default: every level that has at least one pair).

    Returns
    -------
    lag : ndarray of int64 (n_lags,)
        Lags in frames, increasing: ``0 .. buffers-1``, then ``i * 2**L`` for
        ``i = buffers/2 .. buffers-1`` at level ``L >= 1`` (scikit-beam ``multi_tau_lags``).
    level : ndarray of int64 (n_lags,)
        Level of each lag.
    n_pairs : ndarray of int64 (n_lags,)
        Frame pairs averaged at each lag: ``n_frames // 2**L - i`` (always >= 1).

    Raises
    ------
    ValueError
        If ``buffers`` is odd or < 2, or ``n_levels`` < 1.
    """
    buffers = _check_buffers(buffers)
    if n_levels is not None and n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    lags, levels, pairs = [], [], []
    level = 0
    while (n_levels is None or level < n_levels) and (n_frames >> level) > 0:
        steps = _level_lags(level, buffers)
        count = (n_frames >> level) - steps
        keep = count >= 1
        if not keep.any():
            break
        lags.append(steps[keep] << level)
        levels.append(np.full(int(keep.sum()), level))
        pairs.append(count[keep])
        level += 1
    if not lags:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return (np.concatenate(lags).astype(np.int64), np.concatenate(levels).astype(np.int64),
            np.concatenate(pairs).astype(np.int64))


class _Level:
    """Running state of one multi-tau level (float64, ``P`` = ROI pixels, ``h = buffers - 1``).

    ``frames[:kept]`` holds the level's last ``kept <= h`` frames (the history that pairs
    with new frames); new frames are written after them, correlated, and the last ``h``
    rows are moved back to the front.
    """

    def __init__(self, lags: np.ndarray, history: int, n_pixels: int, capacity: int):
        self.lags = lags
        self.history = history
        self.frames = np.empty((history + capacity, n_pixels))
        self.kept = 0
        self.head = np.zeros((history, n_pixels))   # the level's first h frames
        self.products = np.zeros((lags.size, n_pixels))  # sums of B_t B_{t+i}
        self.total = np.zeros(n_pixels)             # sum of all frames (level 0 only)
        self.count = 0

    def room(self, n_new: int) -> np.ndarray:
        """The (n_new, P) rows after the history, growing the buffer when needed."""
        need = self.kept + n_new
        if need > self.frames.shape[0]:
            grown = np.empty((need, self.frames.shape[1]))
            grown[:self.kept] = self.frames[:self.kept]
            self.frames = grown
        return self.frames[self.kept:need]


class MultiTauAccumulator:
    """Streaming multi-tau correlator: feed frame blocks with :meth:`update`, read :meth:`result`.

    Parameters
    ----------
    labels : array of int (y, x)
        ROI labels, 0 = excluded (:func:`speckleml.correlation.q_ring_rois`).
    buffers : int
        Buffers per level (even, >= 2; default 8).
    n_levels : int, optional
        Levels to compute (default: as many as the frames allow).
    n_roi : int, optional
        Number of ROIs (default ``labels.max()``; larger values give all-NaN ROIs).

    Raises
    ------
    ValueError
        For bad ``buffers``/``n_levels``, negative labels or no labelled pixel.

    Notes
    -----
    Only the labelled pixels are kept. Each :meth:`update` call costs about
    ``1.5 * buffers`` multiply-adds per frame and pixel (all levels together).
    """

    def __init__(self, labels, *, buffers: int = DEFAULT_BUFFERS, n_levels: int | None = None,
                 n_roi: int | None = None):
        self.buffers = _check_buffers(buffers)
        if n_levels is not None and n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        self.n_levels = n_levels
        flat = np.asarray(labels).ravel()
        if flat.dtype.kind not in "iub":
            raise ValueError(f"labels must be integers, got dtype {flat.dtype}")
        if flat.size and flat.min() < 0:
            raise ValueError("labels must be >= 0 (0 = excluded)")
        self.n_roi = int(flat.max(initial=0)) if n_roi is None else int(n_roi)
        if self.n_roi < 1:
            raise ValueError("labels contain no ROI (all zero)")
        self.shape_yx = np.shape(labels)
        self.n_detector = flat.size
        self.pixels = np.flatnonzero((flat > 0) & (flat <= self.n_roi))
        if self.pixels.size == 0:
            raise ValueError("labels contain no pixel of ROIs 1..n_roi")
        self.roi_of_pixel = flat[self.pixels].astype(np.int64) - 1
        self.levels: list[_Level] = []

    @property
    def n_frames(self) -> int:
        """Frames fed so far."""
        return self.levels[0].count if self.levels else 0

    def update(self, block) -> None:
        """Add frames that follow the ones already fed.

        Parameters
        ----------
        block : array (b, y, x), (b, y * x) or (y, x)
            Intensities of the next ``b`` frames (any real dtype; products in float64).

        Raises
        ------
        ValueError
            If the block does not match the labels' detector or holds non-finite values.
        """
        block = np.asarray(block)
        if block.ndim == 2 and block.shape == self.shape_yx:
            block = block[None]
        if block.ndim < 2 or int(np.prod(block.shape[1:])) != self.n_detector:
            raise ValueError(f"frames of shape {block.shape[1:]} do not match labels of shape {self.shape_yx}")
        if block.shape[0] == 0:
            return
        pixels = np.take(block.reshape(block.shape[0], self.n_detector), self.pixels, axis=1)
        if pixels.dtype.kind not in "uifb":
            raise ValueError(f"frames must be real numbers, got dtype {pixels.dtype}")
        if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
            raise ValueError("frames contain non-finite values in the ROI pixels")
        if not self.levels:
            self._add_level(block.shape[0])
        level = self.levels[0]
        level.room(pixels.shape[0])[...] = pixels
        level.total += level.frames[level.kept:level.kept + pixels.shape[0]].sum(axis=0)
        self._correlate(0, pixels.shape[0])

    def _add_level(self, capacity: int) -> _Level:
        level = len(self.levels)
        self.levels.append(_Level(_level_lags(level, self.buffers), self.buffers - 1, self.pixels.size,
                                  max(1, capacity)))
        return self.levels[-1]

    def _correlate(self, level: int, n_new: int) -> None:
        """Correlate the ``n_new`` frames written after the history of ``level``; pass pairs up."""
        state = self.levels[level]
        rows, kept = state.frames, state.kept
        stop = kept + n_new
        if state.count < state.history:
            take = min(state.history - state.count, n_new)
            state.head[state.count:state.count + take] = rows[kept:kept + take]
        for k, lag in enumerate(state.lags):
            # Pairs (t - lag, t) whose later frame is new: t >= kept and t - lag >= 0.
            start = max(kept, int(lag))
            if start < stop:
                state.products[k] += np.einsum("tp,tp->p", rows[start - lag:stop - lag], rows[start:stop])
        # Level frames pair as (2j, 2j + 1): an odd count leaves the last old frame unpaired.
        first = kept - state.count % 2
        n_pairs = (stop - first) // 2
        state.count += n_new
        if n_pairs and (self.n_levels is None or level + 1 < self.n_levels):
            upper = self.levels[level + 1] if level + 1 < len(self.levels) else self._add_level(n_pairs)
            out = upper.room(n_pairs)
            np.add(rows[first:stop - 1:2][:n_pairs], rows[first + 1:stop:2][:n_pairs], out=out)
            out *= 0.5
            self._correlate(level + 1, n_pairs)
        state.kept = min(state.history, state.count)
        rows[:state.kept] = rows[stop - state.kept:stop].copy()

    def result(self, dt: float = 1.0, normalization: str = "roi",
               static_labels=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised ``g2`` of the frames fed so far.

        Parameters
        ----------
        dt : float
            Frame time in seconds (the lags are returned in seconds).
        normalization : {"roi", "pixel", "static"}
            Where the ratio ``G2 / (IP IF)`` is taken: per ROI (scikit-beam, default), per
            pixel or per static bin (boost_corr); see the module docstring.
        static_labels : array of int (y, x), optional
            Static q partition, required for (and only for) ``"static"``: every ROI pixel
            needs a label > 0; a static bin is a (ROI, static label) pair.

        Returns
        -------
        lag : ndarray of float64 (n_lags,)
            Lags in seconds (``multitau_lags(...)[0] * dt``), starting with 0.
        g2 : ndarray of float64 (n_roi, n_lags)
            Baseline-1 correlation; NaN for an ROI without a usable pixel.
        g2_err : ndarray of float64 (n_roi, n_lags)
            Standard deviation over pixels of the per-pixel ``g2`` / sqrt(pixels); NaN with
            fewer than 2 pixels and at a lag with a single pair of frames (each pixel's
            ratio is then exactly 1, so the spread says nothing). Few pairs (the last lags)
            also shrink the spread: weight those points with care.

        Raises
        ------
        ValueError
            For an unknown normalisation, bad ``static_labels``, a non-positive ``dt`` or
            fewer than 2 frames.
        """
        bin_of_pixel, roi_of_bin = self._bins(normalization, static_labels)
        if not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        if self.n_frames < 2:
            raise ValueError(f"need at least 2 frames for multi-tau g2, got {self.n_frames}")
        lag, level_of, _ = multitau_lags(self.n_frames, self.buffers, self.n_levels)
        g2 = np.full((self.n_roi, lag.size), np.nan)
        err = np.full_like(g2, np.nan)
        column = 0
        total = self.levels[0].total
        for level, state in enumerate(self.levels):
            if level:
                # Level L sums its pair averages: half the level L-1 total without an unpaired last frame.
                below = self.levels[level - 1]
                total = 0.5 * (total - (below.frames[below.kept - 1] if below.count % 2 else 0.0))
            for k in range(int(np.sum(level_of == level))):
                i = int(state.lags[k])
                pairs = state.count - i
                first = state.head[:i].sum(axis=0)
                last = state.frames[state.kept - i:state.kept].sum(axis=0)
                g2[:, column], err[:, column] = self._normalise(
                    state.products[k] / pairs, (total - last) / pairs, (total - first) / pairs,
                    bin_of_pixel, roi_of_bin)
                if pairs == 1:
                    err[:, column] = np.nan   # one pair: every per-pixel ratio is 1, no spread
                column += 1
        return lag * float(dt), g2, err

    def _bins(self, normalization: str, static_labels) -> tuple[np.ndarray, np.ndarray]:
        """Normalisation bin of every ROI pixel and the ROI (0-based) of every bin."""
        if normalization not in MULTITAU_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {MULTITAU_NORMALIZATIONS}, got {normalization!r}")
        if (static_labels is not None) != (normalization == "static"):
            raise ValueError('static_labels are required for, and only used by, normalization="static"')
        roi = self.roi_of_pixel
        if normalization == "pixel":
            return np.arange(roi.size), roi
        if normalization == "roi":
            return roi, np.arange(self.n_roi)
        static = np.asarray(static_labels)
        if static.shape != self.shape_yx or static.dtype.kind not in "iu":
            raise ValueError(f"static_labels must be integers of shape {self.shape_yx}, got "
                             f"{static.dtype} {static.shape}")
        static = static.ravel()[self.pixels].astype(np.int64)
        if static.min() < 1:
            raise ValueError("static_labels must be >= 1 on every ROI pixel")
        keys, bin_of_pixel = np.unique(roi * (int(static.max()) + 1) + static, return_inverse=True)
        return bin_of_pixel.ravel(), keys // (int(static.max()) + 1)

    def _normalise(self, product, past, future, bin_of_pixel, roi_of_bin):
        """ROI g2 and its error at one lag from per-pixel ``G2``, ``IP``, ``IF`` (P,)."""
        roi, n_roi, n_bins = self.roi_of_pixel, self.n_roi, roi_of_bin.size
        with np.errstate(invalid="ignore", divide="ignore"):
            # Per-pixel g2 gives the error bar; pixels with IP IF = 0 (never lit) are left out.
            norm = past * future
            valid = norm > 0
            per_pixel = np.divide(product, norm, out=np.zeros_like(product), where=valid)
            counts = np.bincount(roi, weights=valid, minlength=n_roi)
            mean = np.bincount(roi, weights=per_pixel, minlength=n_roi) / counts
            spread = np.where(valid, per_pixel - mean[roi], 0.0)
            var = np.bincount(roi, weights=spread**2, minlength=n_roi) / (counts - 1)
            err = np.where(counts > 1, np.sqrt(var / counts), np.nan)
            # Ratio of bin means (sums: the bin sizes cancel), then the mean over an ROI's bins.
            sizes = np.bincount(bin_of_pixel, minlength=n_bins)
            ratio = (np.bincount(bin_of_pixel, weights=product, minlength=n_bins) * sizes
                     / (np.bincount(bin_of_pixel, weights=past, minlength=n_bins)
                        * np.bincount(bin_of_pixel, weights=future, minlength=n_bins)))
            usable = np.isfinite(ratio)
            g2 = (np.bincount(roi_of_bin, weights=np.where(usable, ratio, 0.0), minlength=n_roi)
                  / np.bincount(roi_of_bin, weights=usable, minlength=n_roi))
        return np.where(np.isfinite(g2), g2, np.nan), err


def _blocks(frames, series: int, block: int | None):
    """Time blocks (b, y, x) of one series of an array-like or an iterable of blocks."""
    if not hasattr(frames, "shape"):
        yield from frames
        return
    shape = tuple(frames.shape)
    if len(shape) == 4:
        if not 0 <= series < shape[0]:
            raise ValueError(f"series {series} out of range for {shape[0]} series")
        index = (series,)
    elif len(shape) == 3:
        index = ()
    else:
        raise ValueError(f"frames must be (time, y, x) or (series, time, y, x), got shape {shape}")
    chunks = getattr(frames, "chunks", None)
    if block is None:
        block = int(chunks[len(index)]) if chunks else DEFAULT_BLOCK
    n_frames = shape[len(index)]
    block = max(1, int(block))

    def read(t0):
        return np.asarray(frames[index + (slice(t0, min(n_frames, t0 + block)),)])

    # Read the next block in a thread while this one is correlated: zarr decompression and
    # numpy release the GIL, so reading and correlating overlap on two cores.
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(read, 0)
        for t0 in range(block, n_frames + block, block):
            current = ahead.result()
            if t0 < n_frames:
                ahead = reader.submit(read, t0)
            yield current


def multitau_g2(frames, labels, *, buffers: int = DEFAULT_BUFFERS, n_levels: int | None = None,
                dt: float = 1.0, normalization: str = "roi", static_labels=None, series: int = 0,
                n_roi: int | None = None, block: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-tau one-time ``g2`` of every ROI, in one streamed pass over the frames.

    Parameters
    ----------
    frames : array (time, y, x) or (series, time, y, x), or iterable of arrays (b, y, x)
        Intensities. Arrays (numpy, or lazy zarr such as a frames store's ``frames``) are
        read ``block`` frames at a time; an iterable yields consecutive frame blocks.
    labels : array of int (y, x)
        ROI labels, 0 = excluded.
    buffers : int
        Buffers per level (even, >= 2; default 8 as scikit-beam and boost_corr).
    n_levels : int, optional
        Levels (default: as many as the series allows).
    dt : float
        Frame time in seconds.
    normalization : {"roi", "pixel", "static"}
        Where ``G2 / (IP IF)`` is taken; see the module docstring (default ``"roi"``, as
        scikit-beam).
    static_labels : array of int (y, x), optional
        Static q partition for ``normalization="static"`` (every ROI pixel labelled > 0).
    series : int
        Series to correlate when ``frames`` is 4-D.
    n_roi : int, optional
        Number of ROIs (default ``labels.max()``).
    block : int, optional
        Frames read at once from an array (default: its time chunk, else 64).

    Returns
    -------
    lag : ndarray of float64 (n_lags,)
        Lags in seconds; ``lag[0] = 0`` (``<I^2>/<I>^2``, with the shot noise).
    g2, g2_err : ndarray of float64 (n_roi, n_lags)
        Multi-tau ``g2`` (baseline 1) and its error over pixels (NaN at a lag with a single
        pair of frames; see :meth:`MultiTauAccumulator.result`).

    Raises
    ------
    ValueError
        For inconsistent shapes, non-finite frames, bad options or fewer than 2 frames.
    """
    correlator = MultiTauAccumulator(labels, buffers=buffers, n_levels=n_levels, n_roi=n_roi)
    for chunk in _blocks(frames, series, block):
        correlator.update(chunk)
    return correlator.result(dt=dt, normalization=normalization, static_labels=static_labels)


def multitau_g2_store(path, labels, *, series: int = 0, buffers: int = DEFAULT_BUFFERS,
                      n_levels: int | None = None, normalization: str = "roi", static_labels=None,
                      n_roi: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-tau ``g2`` of one series of a frames store, read chunk by chunk.

    Parameters
    ----------
    path : path
        Frames store (:func:`speckleml.stores.write_frames`); its ``dt`` attr (seconds,
        default 1) sets the lag unit.
    labels : array of int (y, x)
        ROI labels, 0 = excluded.
    series, buffers, n_levels, normalization, static_labels, n_roi
        As for :func:`multitau_g2`.

    Returns
    -------
    lag, g2, g2_err
        As for :func:`multitau_g2`.

    Raises
    ------
    speckleml.errors.StoreError
        If ``path`` is not a valid frames store.
    ValueError
        As for :func:`multitau_g2`.
    """
    from ..stores import read_frames

    store = read_frames(path, lazy=True)
    dt = float(store.attrs.get("dt", 1.0))
    return multitau_g2(store["frames"], labels, buffers=buffers, n_levels=n_levels, dt=dt,
                       normalization=normalization, static_labels=static_labels, series=series,
                       n_roi=n_roi)
