"""One level of the Kuramoto robustness sweeps (paper 000 Fig. 5, 6, Supp. Fig. 16) as one job.

Kept apart from :mod:`.sweeps` (the table and plot) so that a figure edit does not re-run the
sweep trainings: this module imports no plotting.
"""

from __future__ import annotations


def run_sweep_level(*, states, test_states, frames, model, history, metrics, store, checkpoint=None,
                    geometry: dict, lambda_max: float | None, seed: int, model_options: dict, example: int,
                    eval_rtol: float, eval_atol: float, device: str = "auto", stop_after: int | None = None,
                    run_config: dict | None = None, **training) -> bool:
    """Speckle under the level's condition, train member 0 on it, evaluate it.

    Parameters
    ----------
    states, test_states : path
        Training and test truth (Kuramoto states stores).
    frames, model, history, metrics, store : path
        Outputs: the level's frames store, model file, history store, metrics CSV, evaluation store.
    checkpoint : path, optional
        Checkpoint of the training (default ``MODEL.ckpt``).
    geometry : dict
        Keyword arguments of :func:`speckleml.dynamics.simulate.speckle_geometry` (the level's
        value replaces one of them).
    lambda_max : float or None
        Poisson noise of the level's frames.
    seed : int
        Seed of the noise and of the training (member 0).
    model_options : dict
        Keyword arguments of the case's ``build_model``.
    example, eval_rtol, eval_atol :
        Evaluation options (:func:`speckleml.dynamics.evaluate.run_evaluation`).
    device : str
    stop_after : int, optional
        Stop the training early (tests); then nothing is evaluated.
    run_config : dict, optional
        The stage's parameters, recorded in the provenance.
    **training
        Keyword arguments of :func:`speckleml.dynamics.train.training_settings`.

    Returns
    -------
    bool
        False when the training was stopped early.

    Raises
    ------
    InputError
        Invalid stores or settings.
    """
    from .evaluate import run_evaluation
    from .simulate import write_speckle_store
    from .train import run_training

    write_speckle_store(frames, states=states, geometry=geometry, lambda_max=lambda_max, seed=seed,
                        run_config=run_config)
    if not run_training(states=states, frames=frames, model=model, history=history, checkpoint=checkpoint, member=0,
                        seed=seed, model_options=model_options, device=device, stop_after=stop_after,
                        run_config=run_config, **training):
        return False
    run_evaluation(test_states=test_states, train_states=states, frames=frames, models=[model], metrics=metrics,
                   store=store, example=example, rtol=eval_rtol, atol=eval_atol, device=device, run_config=run_config)
    return True
