"""Dynamics cases of paper 000, one module each; importing the package registers them all.

See :mod:`.registry` for what a case provides. To add a case: write ``systems/<case>.py``
ending with ``register_case(DynamicsCase(...))`` and import it below.
"""

from .registry import CASES, DynamicsCase, get_case, register_case
from . import kuramoto  # noqa: E402,F401  (registers "kuramoto")
from . import lotka_volterra  # noqa: E402,F401  (registers "lotka_volterra")
from . import swarm  # noqa: E402,F401  (registers "swarm")
from . import scan  # noqa: E402,F401  (registers "scan")

__all__ = ["CASES", "DynamicsCase", "get_case", "register_case"]
