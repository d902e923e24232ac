"""The measured-data door: detector frames in, two-time C2 / g2 / fits and APS files out.

- :mod:`.frames` -- read detector frame stacks (npy, npy.zip, HDF5, zarr) and beam geometry.
- :mod:`.aps` -- read C2 / g2 files of other software; write APS-layout HDF5 results.
- :mod:`.import_cli`, :mod:`.cli` -- the top-level ``speckleml`` commands of this chain.

The physics it calls (:mod:`speckleml.correlation`, :mod:`speckleml.fitting`) is shared with
the studies and lives beside it.
"""
