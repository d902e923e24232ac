"""The measured-data door: detector frames in, two-time C2 / g2 / fits and APS files out.

- :mod:`.frames` -- read detector frame stacks (npy, npy.zip, HDF5, zarr) and beam geometry.
- :mod:`.ingest`, :mod:`.synthetic_stack` -- measured or synthetic frame stacks into frames stores.
- :mod:`.correlate` -- q-ring ROIs and the two-time C2 / g2 of a frames store.
- :mod:`.fit` -- KWW fits of g2 curves (c2 stores or g2 tables).
- :mod:`.export` -- measured C2 into c2 stores, c2 stores into APS-layout HDF5.
- :mod:`.aps` -- the file formats of other software (APS C2 / g2 layouts, g2 tables).
- :mod:`.figures` -- the g2 / C2 figure.
- :mod:`.import_cli`, :mod:`.cli` -- the top-level ``speckleml`` commands of this chain: each
  parses its options and calls one function of the modules above.

The physics it calls (:mod:`speckleml.correlation`, :mod:`speckleml.fitting`) is shared with
the studies and lives beside it.
"""
