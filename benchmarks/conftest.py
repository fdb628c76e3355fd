"""Options of the benchmark suite (``pytest benchmarks/``; not part of the CI tests in tests/)."""
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--torch-threads", type=int, default=None, help="torch.set_num_threads for the benchmarks")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads(request):
    threads = request.config.getoption("--torch-threads")
    if threads is not None:
        torch.set_num_threads(threads)
