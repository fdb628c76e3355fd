"""The timing harness of ``rnnlab bench``: rnnlab's Elman RNN against its peers (nn.RNN, batched
PyTorch baselines, JAX), in one process.

workload (configs, data, flop counts), harness (timing, machine, sgemm yardstick, CPU
confinement), single and population (the PyTorch cases), jax_peer (the JAX cases), suite (one
run of everything), report (tables), breakdown (where rnnlab's time goes). The other cells'
comparisons, the sweep throughput and the speed targets live in ``benchmarks/`` of the source
tree, which also uses these modules.
"""
