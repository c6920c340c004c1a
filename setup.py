"""The optional compiled kernel: exact uint8 pooling with kernel = stride (poolcli/kernels/native).

Everything else is in pyproject.toml. The extension is optional: without a compiler (or with
``POOLCLI_NO_EXTENSION=1``) the install still succeeds and the numpy kernels do the work, with
the same bytes out.
"""

import os

from setuptools import Extension, setup

extensions = [] if os.environ.get("POOLCLI_NO_EXTENSION") == "1" else [
    Extension(
        "poolcli.kernels.native._pool",
        sources=["poolcli/kernels/native/_pool.c"],
        extra_compile_args=["-O3", "-std=c99", "-pthread"],
        extra_link_args=["-pthread"],
        optional=True,
    )
]

setup(ext_modules=extensions)
