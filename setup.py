"""Builds rnnlab._C against the installed torch: ``pip install --no-build-isolation -e .``

* CPU kernels (csrc/kernels/cpu) are compiled once per ISA: each ``*_avx512.cpp`` /
  ``*_avx2.cpp`` / ``*_portable.cpp`` wrapper includes the shared kernel source under
  ``#pragma GCC target`` and a namespace of its own; the best one is picked at run time.
* OpenMP is compiled *and* linked in: without ``-fopenmp`` at::parallel_for silently runs on
  one thread (DESIGN §7).
* When the installed torch has CUDA, the ``.cu`` sources and the CUDA glue are added and the
  extension is a CUDAExtension. With no GPU visible, TORCH_CUDA_ARCH_LIST defaults to 8.0;9.0
  (an unset list crashes torch's build helper there).
"""
import glob
import os
import sys

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))


def sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def extension():
    cpu_sources = sources("csrc/kernels/cpu/*.cpp") + sources("csrc/torch/*.cpp")
    cxx_flags = ["-O3", "-fopenmp", "-DRNNLAB_OPENMP"]
    link_flags = ["-fopenmp"]
    if sys.platform == "darwin":  # Apple clang has no -fopenmp; torch's parallel_for falls back
        cxx_flags, link_flags = ["-O3"], []
    include_dirs = [os.path.join(ROOT, "csrc")]

    with_cuda = torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("RNNLAB_NO_CUDA") != "1"
    if not with_cuda:
        return CppExtension("rnnlab._C", cpu_sources, include_dirs=include_dirs,
                            extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags)
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    cuda_sources = sources("csrc/kernels/cuda/*.cu") + sources("csrc/torch/cuda/*.cu") + sources("csrc/torch/cuda/*.cpp")
    return CUDAExtension(
        "rnnlab._C",
        cpu_sources + cuda_sources,
        include_dirs=include_dirs,
        define_macros=[("RNNLAB_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags + ["-DRNNLAB_WITH_CUDA"], "nvcc": ["-O3", "--use_fast_math", "-lineinfo", "-DRNNLAB_WITH_CUDA"]},
        extra_link_args=link_flags,
    )


setup(
    packages=find_packages("python"),
    package_dir={"": "python"},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
)
