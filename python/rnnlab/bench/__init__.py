"""The timing harness of ``rnnlab bench``: rnnlab's Elman RNN against its peers (nn.RNN, batched
PyTorch baselines, JAX), in one process.

workload (configs, data, flop counts), harness (timing, machine, sgemm yardstick, CPU
confinement), single and population (the PyTorch cases), jax_peer (the JAX cases), suite (one
run of everything), report (tables), breakdown (where rnnlab's time goes).

``rnnlab bench --peers``: peers (rnnlab against its peers at one and two pinned threads, one
subprocess per thread count), update_peers (the population training update as rnnlab, an nn
loop, a torch.func ensemble and JAX do it), dropin (rnnlab.RNN/LSTM/GRU against torch.nn and
JAX), peer_cells (the cells as the peers write them). The other cells' comparisons, the sweep
throughput and the speed targets live in ``benchmarks/`` of the source tree, which also uses
these modules.
"""
