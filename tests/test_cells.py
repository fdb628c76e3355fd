"""The cell registry (rnnlab.cells): each record agrees with itself (inits, shapes, sizes, the
population module, the forward), the registry recognises a cell from its parameters, bad names
and options are errors that name the argument, every cell runs through the population module
and a sweep, and a new cell is one record: registered, it validates, initialises, trains and
packs like the others."""
import pytest
import torch

from rnnlab import elman
from rnnlab.cells import CELLS, REGISTRY, cell_of, draws, get_cell
from rnnlab.cells.projected import projected_cell
from rnnlab.nn.population import PopulationModel, param_shapes, population_forward
from rnnlab.sweep import ResultStore, SweepSpec, run_sweep
from rnnlab.sweep.pack import bytes_per_model
from rnnlab.sweep.spec import Run
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population

M, I, H, O, T, B = 3, 3, 5, 2, 6, 4


@pytest.mark.parametrize("name", CELLS)
def test_every_init_of_a_record_gives_its_shapes_and_runs_forward(name):
    cell = get_cell(name)
    assert cell.default_init in cell.inits and set(cell.init_implies) <= set(cell.inits)
    assert all(cell.options[o] in cell.choices[o] for o in cell.options)
    shapes = cell.param_shapes(M, I, H, O)
    assert cell.recurrent_weight is None or cell.recurrent_weight in shapes
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    for init in cell.inits:
        params = init_population(rng.seed_keys([1, 2, 3]), init, I, H, O, dtype=torch.float64, cell=name)
        assert [(n, tuple(v.shape)) for n, v in params.items()] == list(shapes.items()), init
        assert cell.sizes(params) == (M, I, H, O) and cell_of(params) is cell
        assert population_forward(params, x, cell=name, readout_steps=2).shape == (M, 2, B, O)
    assert list(PopulationModel(M, I, H, O, name).params()) == list(shapes)


def test_bad_cells_options_and_init_arguments_are_named():
    with pytest.raises(ValueError, match=r"cell must be one of \('elman', 'lstm', 'gru', 'diag'\), got 'rwkv'"):
        get_cell("rwkv")
    with pytest.raises(ValueError, match="cell must be one of"):
        param_shapes(1, 1, 1, 1, None)
    with pytest.raises(ValueError, match="nonlinearity must be one of .*'gelu'"):
        param_shapes(1, 1, 1, 1, "elman", nonlinearity="gelu")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        RunConfig(nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"cell_kwargs \['r_mn'\] are not options of cell='diag'"):
        init_population(rng.seed_keys([1]), "ring", I, H, O, cell="diag", cell_kwargs={"r_mn": 0.5})
    with pytest.raises(ValueError, match="need 0 <= r_min < r_max <= 1"):
        init_population(rng.seed_keys([1]), "ring", I, H, O, cell="diag", cell_kwargs={"r_min": 0.9, "r_max": 0.5})
    with pytest.raises(ValueError, match=r"cell='diag' has no recurrent weight .*init_gain must be 1"):
        init_population(rng.seed_keys([1]), "ring", I, H, O, gains=2.0, cell="diag")
    with pytest.raises(ValueError, match="init 'ring' is not defined for cell='gru'"):
        init_population(rng.seed_keys([1]), "ring", I, H, O, cell="gru")
    assert cell_of({"w": torch.zeros(1, 2)}) is None


def test_population_module_selects_models_of_every_cell():
    x = torch.randn(M, T, B, I)
    for cell, options in (("elman", {"nonlinearity": "relu"}), ("lstm", {}), ("diag", {"gamma": "none"})):
        model = PopulationModel(M, I, H, O, cell, **options)
        assert model(x, readout_steps=2).shape == (M, 2, B, O)
        sub = model.select([2, 0])
        assert sub.num_models == 2 and sub.cell == cell and sub.options == model.options
        torch.testing.assert_close(sub(x[[2, 0]]), model(x)[[2, 0]])
    with pytest.raises(ValueError, match="cell must be one of"):
        PopulationModel(M, I, H, O, "rwkv")
    with pytest.raises(ValueError, match="cell 'lstm' takes the options"):
        PopulationModel(M, I, H, O, "lstm", nonlinearity="relu")
    with pytest.raises(ValueError, match="reg_weight .* cell='elman' only"):
        population_forward(PopulationModel(M, I, H, O, "lstm").params(), x, cell="lstm", reg_weight=1.0)


def test_a_sweep_over_cells_stores_one_row_per_run(tmp_path):
    spec = SweepSpec.from_dict({"name": "cells", "fixed": {"task": "torder", "length": 6, "hidden": 6, "optimizer": "adam",
                                                           "max_updates": 20, "val_every": 10, "val_size": 100},
                                "grid": {"model": [{"name": "rnn", "cell": "elman"}, {"name": "lstm", "cell": "lstm"},
                                                   {"name": "lru", "cell": "diag", "cell_kwargs.r_min": 0.5}],
                                         "seed": [0, 1]}})
    run_sweep(spec, tmp_path / "s.sqlite", threads=1)
    rows = ResultStore(tmp_path / "s.sqlite").rows("ORDER BY cell, seed")
    assert [(r["cell"], r["labels"]["model"]) for r in rows] == [("diag", "lru")] * 2 + [("elman", "rnn")] * 2 + [("lstm", "lstm")] * 2
    assert all(r["updates"] == 20 and r["veg_steps"] == 20 for r in rows)
    assert [r["rho_final"] is None for r in rows] == [False, False, False, False, True, True]  # NaN -> NULL for the LSTM
    assert rows[0]["config"]["config"]["cell_kwargs"] == {"r_min": 0.5}


def _identity_init(keys, shapes, options):
    """Le et al. (2015): W_hh = I, small Gaussian input and read-out weights."""
    M, H = keys.shape[0], shapes["weight_hh"][2]
    return {"weight_ih": draws.normal(keys, "weight_ih", shapes["weight_ih"], 1e-3),
            "weight_hh": torch.eye(H, dtype=torch.float64).expand(M, H, H).clone(),
            "weight_out": draws.normal(keys, "weight_out", shapes["weight_out"], 1e-3)}


#: a fifth cell as a user would add it: the IRNN, a ReLU Elman RNN started from W_hh = I, on the
#: Elman kernel.
IRNN = projected_cell(
    name="irnn", title="IRNN", gates=1,
    recurrence=lambda p, xp, state, options, reg_weight, sink: (elman(xp, p["weight_hh"], *(state or ()), nonlinearity="relu",
                                                                      sink=sink),),
    options={}, choices={}, init_options={}, inits={"identity": _identity_init}, default_init="identity",
    init_implies={}, state_width=2, omega=False, system=None,
    radius=lambda params, options: draws.spectral_radius(params["weight_hh"]))


def test_a_new_cell_is_one_record(monkeypatch):
    monkeypatch.setitem(REGISTRY, "irnn", IRNN)
    config = RunConfig(task="torder", task_kwargs={"min_length": 6, "max_length": 8}, cell="irnn", hidden=6, optimizer="adam",
                       lr=0.01, max_updates=4, val_every=2, val_size=50, val_chunk=50, stop_at_success=False, dtype="float64")
    assert config.init == "identity" and config.nonlinearity is None and config.forward_options() == {}
    results = train_population([config, RunConfig(**{**vars(config), "seed": 1})])
    assert all(r.updates == 4 and r.veg_steps == 4 for r in results)
    params = {n: torch.stack([r.params[n] for r in results]) for n in results[0].params}
    x = torch.randn(2, T, B, params["weight_ih"].shape[2], dtype=torch.float64)
    torch.testing.assert_close(population_forward(params, x, cell="irnn"),
                               population_forward(params, x, cell="elman", nonlinearity="relu"))
    assert results[0].rho_final == pytest.approx(float(draws.spectral_radius(params["weight_hh"])[0]))
    assert bytes_per_model(Run(config)) > 0
    with pytest.raises(ValueError, match="needs alpha=0"):
        RunConfig(cell="irnn", alpha=1.0)
    with pytest.raises(ValueError, match="nonlinearity is an Elman option"):
        RunConfig(cell="irnn", nonlinearity="tanh")
