"""The registry of dynamics cases: what a case plugs into the shared driver.

A case of paper 000 (Kuramoto moments, swarm, Lotka-Volterra beam, ptychographic scan) is a
truth simulator, a differentiable forward model (states -> detector intensities) and a neural
ODE right-hand side. The training driver (:func:`speckleml.dynamics.train.run_training`), the
checkpointed loop (:func:`speckleml.dynamics.training.train_ode`) and the model files
(:func:`speckleml.dynamics.models.save_model`, :func:`~speckleml.dynamics.models.load_model`)
only ever see a :class:`DynamicsCase`; they pick it by the ``system`` attribute of the states
store (written by the case's simulator) or the ``case`` entry of a model file. A new case is one
module in ``dynamics/systems/`` that ends with ``register_case(DynamicsCase(...))`` and one
import line in ``dynamics/systems/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ...errors import InputError


@dataclass(frozen=True)
class DynamicsCase:
    """One dynamics case: the pieces the shared driver calls.

    Attributes
    ----------
    name : str
        The case's name; the ``system`` attribute of its states stores and the ``case`` entry of
        its model files.
    simulate : callable
        Truth simulator ``(n_series, ..., rng) -> (states (series, time, ...), t (time,))``;
        its parameters are the case's own (the case's ``simulate`` stage calls it).
    geometry : type
        Frozen dataclass of the scattering geometry; ``geometry(**frames.attrs["geometry"])``
        rebuilds the one a frames store was made with.
    forward_model : callable
        ``(geometry, dtype, device) -> f`` with ``f(states (batch, time, ...)) -> intensities
        (batch, time, y, x)``, differentiable in the states: the forward model the NODE is trained
        through (what the experimenter knows of the geometry).
    build_model : callable
        ``(**model_options) -> torch.nn.Module``, the NODE right-hand side ``model(t, y) -> dy/dt``;
        random initial weights come from torch's generator (seed it first).
    architecture : callable
        ``model -> dict``: the keyword arguments of ``build_model`` that rebuild ``model``'s
        shape (stored in the model file; initialisation-only options are not needed).
    snapshot : callable
        ``model -> ndarray``: the parameters recorded in the training history (Supp. Fig. 2).
    snapshot_label : str
        What the snapshots are, for the history store's attributes.
    """

    name: str
    simulate: Callable[..., Any]
    geometry: type
    forward_model: Callable[..., Callable]
    build_model: Callable[..., Any]
    architecture: Callable[[Any], dict]
    snapshot: Callable[[Any], Any]
    snapshot_label: str = "parameters"


CASES: dict[str, DynamicsCase] = {}


def register_case(case: DynamicsCase) -> DynamicsCase:
    """Add ``case`` to :data:`CASES` (once per name) and return it.

    Raises
    ------
    ValueError
        When another case already has this name (a programming error, not user input).
    """
    if case.name in CASES and CASES[case.name] is not case:
        raise ValueError(f"dynamics case {case.name!r} is registered twice")
    CASES[case.name] = case
    return case


def get_case(name, where: str = "") -> DynamicsCase:
    """The registered case called ``name``.

    Parameters
    ----------
    name : str
        Case name, e.g. the ``system`` attribute of a states store.
    where : str
        Prefix of the error message (the file the name came from).

    Raises
    ------
    InputError
        When no case of that name is registered.
    """
    if name not in CASES:
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}unknown dynamics case {name!r} (known: {', '.join(sorted(CASES))})")
    return CASES[name]
