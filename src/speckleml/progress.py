"""Progress for long loops: a tqdm bar on a terminal, periodic log lines otherwise.

Rules redirect stderr to their log file, where a bar would be noise; there we log a line
every ``every`` seconds (and at the end) so a scientist can follow a job with ``tail -f``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, every: float = 30.0,
             logger: logging.Logger | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` reporting progress.

    Parameters
    ----------
    iterable : iterable
        What to loop over.
    desc : str
        Short label (``"simulate"``, ``"train"``...).
    total : int, optional
        Number of items (taken from ``len(iterable)`` when possible).
    every : float
        Seconds between log lines when stderr is not a terminal.
    logger : logging.Logger, optional
        Where log lines go (default ``speckleml.progress``).
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, total=total, dynamic_ncols=True)
        return
    log = logger or logging.getLogger("speckleml.progress")
    start = last = time.monotonic()
    count = 0
    for count, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= every:
            last = now
            of = f"/{total}" if total else ""
            log.info("%s: %d%s done, %.0f s elapsed", desc, count, of, now - start)
    log.info("%s: finished %d items in %.1f s", desc, count, time.monotonic() - start)
