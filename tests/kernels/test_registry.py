"""Every op has a kernel on the torch engine (the reference), and on numpy all but the ops that
say they run on torch; the engines look kernels up by the op's class."""

import pytest

from poolcli.core import ops
from poolcli.kernels import numpy as numpy_kernels
from poolcli.kernels.registry import KernelTable

OP_CLASSES = ops.OPS


def test_every_op_has_a_torch_kernel():
    torch_kernels = pytest.importorskip("poolcli.kernels.torch")
    assert [cls.__name__ for cls in OP_CLASSES if cls not in torch_kernels.KERNELS] == []


def test_numpy_lacks_only_the_ops_that_run_on_torch():
    assert [cls.__name__ for cls in OP_CLASSES if cls not in numpy_kernels.KERNELS] == ["FractionalMaxPool"]


def test_a_table_names_the_ops_it_cannot_run():
    table = KernelTable()
    table.kernel(ops.MaxPool, ops.MinPool)(lambda stage, x, run: x)
    stages = [ops.MaxPool.create({"kernel_size": "2"}), ops.AvgPool.create({"kernel_size": "2"})]
    assert table.missing(stages) == ["avgpool"]
    assert table.apply(stages[0], 5, None) == 5
