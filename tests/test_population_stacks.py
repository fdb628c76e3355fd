"""Stacked populations (``num_layers`` ≥ 2) and double layers of the projected cells
(:mod:`rnnlab.cells.projected`): against nn.RNN / nn.LSTM / nn.GRU stacks, against the layers
run one by one, alone ≡ inside a population, and bad layouts named."""
import pytest
import torch

from rnnlab.cells import get_cell
from rnnlab.nn.population import PopulationModel, param_shapes, population_forward, recurrent_radius
from rnnlab.tasks import rng
from rnnlab.train.init import init_population

NN = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def from_nn(cell, stacks, readouts):
    """A population's parameters from M torch.nn stacks and nn.Linear read-outs."""
    params = {}
    for layer in range(stacks[0].num_layers):
        sfx = "" if layer == 0 else f"_l{layer}"
        get = lambda name: torch.stack([getattr(s, f"{name}_l{layer}") for s in stacks]).detach()  # noqa: E731
        b_ih, b_hh = get("bias_ih"), get("bias_hh")
        params["weight_ih" + sfx], params["weight_hh" + sfx] = get("weight_ih"), get("weight_hh")
        if cell == "gru":  # the n gate's hidden bias stays apart (r multiplies it)
            H = b_hh.shape[1] // 3
            params["bias" + sfx] = b_ih + torch.cat([b_hh[:, :2 * H], torch.zeros_like(b_hh[:, 2 * H:])], 1)
            params["bias_hn" + sfx] = b_hh[:, 2 * H:]
        else:
            params["bias" + sfx] = b_ih + b_hh
    params["weight_out"] = torch.stack([r.weight for r in readouts]).detach()
    params["bias_out"] = torch.stack([r.bias for r in readouts]).detach()
    return params


@pytest.mark.parametrize("cell", sorted(NN))
def test_stack_equals_torch_nn_stacks(cell):
    torch.manual_seed(0)
    M, I, H, O, T, B, L = 3, 2, 5, 2, 7, 4, 3
    stacks = [NN[cell](I, H, num_layers=L, dtype=torch.float64) for _ in range(M)]
    readouts = [torch.nn.Linear(H, O, dtype=torch.float64) for _ in range(M)]
    params = from_nn(cell, stacks, readouts)
    assert list(params) == list(param_shapes(M, I, H, O, cell, num_layers=L))
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    y = population_forward(params, x, cell=cell, num_layers=L, readout_steps=T)
    for m in range(M):
        torch.testing.assert_close(y[m], readouts[m](stacks[m](x[m])[0]))


def plain_layer(params, layer, cell_index):
    """Cell ``cell_index`` of layer ``layer`` of a double stack, as a one-layer plain cell's
    parameters (the read-out left out)."""
    sfx = "" if layer == 0 else f"_l{layer}"
    return {n[: len(n) - len(sfx)]: v[:, cell_index] for n, v in params.items()
            if n.endswith(sfx) and (layer > 0 or "_l" not in n) and not n.startswith(("weight_out", "bias_out"))}


@pytest.mark.parametrize("cell", sorted(NN))
def test_double_stack_is_two_half_width_cells_per_layer(cell):
    keys = rng.seed_keys([1, 2])
    M, I, H, O, L = 2, 3, 6, 1, 2
    params = init_population(keys, "normal", I, H, O, cell=cell, dtype=torch.float64,
                             cell_kwargs={"num_layers": L, "double": True})
    G = get_cell(cell).gates
    assert params["weight_hh"].shape == (M, 2, G * H // 2, H // 2) and params["weight_ih_l1"].shape == (M, 2, G * H // 2, H)
    assert params["weight_out"].shape == (M, O, H)
    x = torch.randn(M, 5, 4, I, dtype=torch.float64)
    one = {**get_cell(cell).complete_options({})}
    h = x
    for layer in range(L):  # each half alone, states concatenated
        h = torch.cat([get_cell(cell).layer(plain_layer(params, layer, j), 0, h, None, one)[0] for j in range(2)], -1)
    expected = torch.baddbmm(params["bias_out"][:, None], h[:, -1], params["weight_out"].transpose(1, 2))
    torch.testing.assert_close(population_forward(params, x, cell=cell, num_layers=L, double=True)[:, 0], expected)
    # the two halves and the layers are drawn from different streams
    assert not torch.equal(params["weight_hh"][:, 0], params["weight_hh"][:, 1])


@pytest.mark.parametrize("cell", sorted(NN))
@pytest.mark.parametrize("double", [False, True])
def test_stacked_model_alone_equals_inside_a_population(cell, double):
    seeds, kw = [4, 7, 9], {"num_layers": 2, "double": double}
    together = init_population(rng.seed_keys(seeds), "orthogonal", 2, 4, 1, cell=cell, dtype=torch.float64, cell_kwargs=kw)
    x = torch.randn(3, 6, 5, 2, dtype=torch.float64)
    y = population_forward(together, x, cell=cell, **kw)
    for m, seed in enumerate(seeds):
        alone = init_population(rng.seed_keys([seed]), "orthogonal", 2, 4, 1, cell=cell, dtype=torch.float64, cell_kwargs=kw)
        for n, v in alone.items():
            assert torch.equal(v[0], together[n][m]), n
        torch.testing.assert_close(population_forward(alone, x[m:m + 1], cell=cell, **kw)[0], y[m], rtol=1e-12, atol=1e-12)


def test_one_plain_layer_is_drawn_as_before():
    keys = rng.seed_keys([3, 5])
    for cell in NN:
        one = init_population(keys, "orthogonal", 2, 4, 1, cell=cell)
        two = init_population(keys, "orthogonal", 2, 4, 1, cell=cell, cell_kwargs={"num_layers": 2})
        for n, v in one.items():
            assert torch.equal(two[n], v), (cell, n)


def test_radius_of_a_stack_is_its_largest_layer():
    params = init_population(rng.seed_keys([0, 1]), "normal", 1, 4, 1, cell="elman", dtype=torch.float64,
                             cell_kwargs={"num_layers": 2})
    per_layer = [recurrent_radius({"weight_hh": params[n]}) for n in ("weight_hh", "weight_hh_l1")]
    torch.testing.assert_close(recurrent_radius(params, num_layers=2), torch.maximum(*per_layer))


def test_population_model_stacks_and_selects():
    model = PopulationModel(3, 2, 4, 1, "lstm", num_layers=2, double=True)
    assert model.options["num_layers"] == 2 and "weight_hh_l1" in dict(model.named_parameters())
    assert model(torch.randn(3, 5, 2, 2)).shape == (3, 1, 2, 1)
    assert model.select([2]).weight_hh_l1.shape == (1, 2, 8, 2)


def test_bad_layouts_are_named():
    with pytest.raises(ValueError, match="num_layers must be one of"):
        param_shapes(1, 1, 4, 1, "gru", num_layers=0)
    with pytest.raises(ValueError, match="hidden_size must be even with double=True"):
        param_shapes(1, 1, 5, 1, "gru", double=True)
    with pytest.raises(ValueError, match=r"unknown \['num_layers'\]"):
        param_shapes(1, 1, 4, 1, "diag", num_layers=2)
    params = init_population(rng.seed_keys([0]), "orthogonal", 1, 4, 1, cell="gru", cell_kwargs={"num_layers": 2})
    with pytest.raises(KeyError, match="weight_ih_l2"):
        population_forward(params, torch.zeros(1, 3, 2, 1), cell="gru", num_layers=3)
