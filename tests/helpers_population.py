"""What the population tests (test_population.py, test_population_cells.py) share."""
from __future__ import annotations

import torch
from torch import nn


def torch_layer_of_model(cls: type, params: dict, m: int, **kwargs) -> nn.Module:
    """A one-layer float64 torch.nn ``cls`` (nn.RNN, nn.LSTM) holding population model m's
    recurrent weights: weight_ih, weight_hh, and ``bias`` as bias_ih (bias_hh zero, since a
    population has one bias per unit). kwargs go to the constructor (e.g. nonlinearity)."""
    hidden, inputs = params["weight_hh"].shape[-1], params["weight_ih"].shape[-1]
    layer = cls(inputs, hidden, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(params["weight_ih"][m])
        layer.weight_hh_l0.copy_(params["weight_hh"][m])
        layer.bias_ih_l0.copy_(params["bias"][m])
        layer.bias_hh_l0.zero_()
    return layer
