"""The dynamics case registry: a new case plugs into the training driver and the model files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from speckleml.dynamics.systems import CASES, DynamicsCase, get_case, register_case  # noqa: E402
from speckleml.errors import InputError  # noqa: E402
from speckleml.dynamics.training import HISTORY  # noqa: E402
from speckleml.stores import read_store, write_frames, write_states  # noqa: E402

TRAINING = dict(iterations=150, learning_rate=0.05, batch_series=3, batch_time=5, loss="l1", poisson_below=10.0,
                rescale_t0="no", method="dopri5", rtol=1e-8, atol=1e-10, max_num_steps=20000, spike_rule="robust",
                spike_factor=2.0, spike_mad=4.0, spike_window=20, spike_patience=3, lr_recovery=100,
                min_learning_rate=1e-6, checkpoint_every=25, snapshot_every=10)


class Decay(torch.nn.Module):
    """dy/dt = -k y with a trainable rate k (closed form y0 exp(-k t))."""

    def __init__(self, rate: float = 0.2):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(float(rate), dtype=torch.float64))

    def forward(self, t, y):  # noqa: ARG002
        return -self.k * y


@dataclass(frozen=True)
class NoGeometry:
    def as_attrs(self) -> dict:
        return {}


@pytest.fixture
def decay_case():
    case = register_case(DynamicsCase(
        name="decay_test", simulate=None, geometry=NoGeometry, forward_model=lambda geometry, dtype, device: torch.square,
        build_model=lambda rate=0.2: Decay(rate), architecture=lambda model: {}, snapshot=lambda m: m.k.detach().numpy(),
        snapshot_label="decay rate"))
    yield case
    CASES.pop(case.name)


def _stores(tmp_path, rate=0.7):
    rng = np.random.default_rng(0)
    t = np.arange(12) * 0.25
    states = rng.uniform(0.5, 2.0, size=(6, 1, 2, 2)) * np.exp(-rate * t)[None, :, None, None]
    write_states(tmp_path / "s.zarr", states, t, system="decay_test", dims=("series", "time", "y", "x"))
    write_frames(tmp_path / "f.zarr", (states**2).astype(np.float32), attrs={"geometry": {}, "lambda_max": None})
    return tmp_path / "s.zarr", tmp_path / "f.zarr"


def test_a_registered_case_trains_through_the_driver_without_argparse(tmp_path, decay_case):
    from speckleml.dynamics.models import load_model
    from speckleml.dynamics.train import run_training

    states, frames = _stores(tmp_path)
    done = run_training(states=states, frames=frames, model=tmp_path / "m.pt", history=tmp_path / "h.zarr", member=1,
                        seed=4, model_options={"rate": 0.2}, device="cpu", **TRAINING)
    assert done and not (tmp_path / "m.pt.ckpt").exists()
    model, payload = load_model(tmp_path / "m.pt")
    assert isinstance(model, Decay) and payload["case"] == "decay_test" and payload["seed"] == 5
    assert float(model.k) == pytest.approx(0.7, abs=0.02)  # the true rate, learned through |y|^2 only
    history = read_store(tmp_path / "h.zarr", HISTORY)
    assert history.attrs["snapshot"] == "decay rate" and history["loss"][-1] < 0.05 * history["loss"][0]


def test_unknown_case_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError, match=r"unknown dynamics case 'no_such_case' \(known: .*kuramoto"):
        get_case("no_such_case", where="x.zarr")
    write_states(tmp_path / "s.zarr", np.zeros((1, 3, 2, 2)), np.arange(3.0), system="no_such_case",
                 dims=("series", "time", "y", "x"))
    write_frames(tmp_path / "f.zarr", np.zeros((1, 3, 2, 2), np.float32), attrs={"geometry": {}})
    from speckleml.dynamics.train import load_training_data

    with pytest.raises(InputError, match="s.zarr.*unknown dynamics case 'no_such_case'"):
        load_training_data(tmp_path / "s.zarr", tmp_path / "f.zarr", "cpu", torch.float64)


def test_kuramoto_model_file_round_trip(tmp_path):
    from speckleml.dynamics.models import load_model, save_model
    from speckleml.dynamics.training import TrainSettings

    case = get_case("kuramoto")
    torch.manual_seed(0)
    model = case.build_model(kernel_size=5, coupling=2.5, init_std=0.1)
    save_model(tmp_path / "k.pt", model, TrainSettings(iterations=1, learning_rate=0.1, batch_series=1, batch_time=2),
               member=3, seed=10)
    loaded, payload = load_model(tmp_path / "k.pt")
    assert torch.equal(loaded.kernel, model.kernel) and loaded.coupling == 2.5
    assert payload["architecture"] == {"kernel_size": 5, "coupling": 2.5, "kernel_symmetry": "none"}
    assert payload["member"] == 3


def test_schema_defaults_are_the_laptop_scale_of_config_yaml():
    """config.yaml's dynamics values are the schema defaults (one home); paper.yaml differs from them."""
    from pathlib import Path

    import yaml

    from speckleml.schema import schema_default

    root = Path(__file__).resolve().parents[1]

    def leaves(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}.{key}")
            else:
                yield f"{prefix}.{key}", value

    laptop = dict(leaves(yaml.safe_load((root / "config.yaml").read_text())["dynamics"], "dynamics"))
    assert laptop and all(schema_default(key) == value for key, value in laptop.items()), \
        {k: (v, schema_default(k)) for k, v in laptop.items() if schema_default(k) != v}
    paper = dict(leaves(yaml.safe_load((root / "config" / "paper.yaml").read_text())["dynamics"], "dynamics"))
    assert paper["dynamics.kuramoto.system.lattice"] == 80 and schema_default("dynamics.kuramoto.system.lattice") == 20
