"""rnnlab.train.memory: with freed memory retained, a population's updates take no fresh pages."""
import subprocess
import sys
import textwrap

import pytest

from rnnlab.train.memory import MMAP_BYTES, retain_freed_memory

# Runs in a fresh process: the setting is process-wide, and the page-fault count is the process's.
_TRAIN = textwrap.dedent("""
    import resource, sys, torch
    from rnnlab.train import RunConfig, retain_freed_memory, train_population
    torch.set_num_threads(1)
    if sys.argv[1] == "retain":
        assert retain_freed_memory()
    faults = {}
    def count(info):
        if "val_error" not in info:
            faults[info["update"]] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # M = 256, T = 25: each update's batch alone is 3 MB (750 pages), over glibc's default 128 KiB mmap threshold
    configs = [RunConfig(task="torder", task_kwargs={"min_length": 25, "max_length": 25}, hidden=8, clip=1.0,
                         max_updates=120, val_every=1000, val_size=20, val_chunk=20, seed=s) for s in range(256)]
    train_population(configs, keep_params=False, callback=count)
    print(faults[119] - faults[40])  # after the heap has grown to its working size
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_updates_take_no_fresh_pages():
    def faults(mode: str) -> int:
        return int(subprocess.run([sys.executable, "-c", _TRAIN, mode], capture_output=True, text=True, check=True).stdout)

    # Over these 79 updates, measured: 0–626 faults in all with the setting (the heap still growing
    # now and then), 12,000–14,600 with glibc's defaults (≈ 170 every update). Either bound: under
    # one update's batch of pages (750), or a tenth of what the defaults take.
    retained, default = faults("retain"), faults("default")
    assert retained < max(750, default / 10), (retained, default)


@pytest.mark.parametrize("kwargs", [{"trim_bytes": -1}, {"trim_bytes": 2**31}, {"mmap_bytes": -1},
                                    {"mmap_bytes": MMAP_BYTES + 1}])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        retain_freed_memory(**kwargs)
