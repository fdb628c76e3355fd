"""Benchmarks of rnnlab against its peers (nn.RNN, batched PyTorch baselines, JAX).

``rnnlab bench`` (cli/bench.py) and ``pytest benchmarks/`` both use these modules:
workload (configs, data, flop counts), harness (timing, machine, sgemm yardstick), single and
population (the PyTorch cases), jax_peer (the JAX cases), suite (one run of everything),
targets and report (verdicts and tables), breakdown (where rnnlab's time goes).
"""
