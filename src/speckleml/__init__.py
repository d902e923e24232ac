"""speckleml: coherent X-ray scattering (speckle) to physics, four published methods end to end."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("speckleml")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
