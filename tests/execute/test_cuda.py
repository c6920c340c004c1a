"""The CUDA path: every stage on the GPU against the CPU, a batch end to end, and (everywhere,
with a faked torch.cuda.OutOfMemoryError) the split-and-retry that ends in one line, never a
traceback. The ``cuda`` tests are skipped where torch sees no GPU."""

from __future__ import annotations

import numpy as np
import pytest

from poolcli.batch import InputItem, ProcessOptions
from poolcli.batch.flow import Flow as Processor
from poolcli.execute.devices import cuda_available
from poolcli.execute.quantize import quantize
from poolcli.execute.run import run_pipeline, run_tiled
from poolcli.core.plan import Pipeline

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="torch sees no CUDA device")

EVERY_STAGE = [
    ["maxpool:3,s=2,p=1,ceil=true"], ["maxpool:2,d=2"], ["minpool:3,s=1,p=1"],
    ["avgpool:3,s=2,p=1,count_include_pad=false"], ["avgpool:2,divisor_override=3"], ["lppool:2,k=2"],
    ["medianpool:3,s=2"], ["adaptivemaxpool:5x7"], ["adaptiveavgpool:5x7"], ["globalmaxpool"], ["globalavgpool"],
    ["fractionalmaxpool:k=2,output_ratio=0.5"], ["maxpool:2", "maxunpool"], ["pad:2,mode=reflect"],
    ["pad:1x3,value=0.5"], ["pad:2,mode=circular"], ["conv:filter=sobel-x,p=1"],
    ["conv:filter=gaussian,k=5,padding=same,padding_mode=reflect"], ["conv:weight=1 2; 3 4,bias=0.1,s=2"],
    ["conv:filter=laplacian,channels=sum"], ["nn.Conv2d(3, 4, kernel_size=3, padding=1)"], ["relu"], ["sigmoid"],
    ["tanh"], ["leakyrelu:0.2"], ["grayscale"], ["flatten", "linear:5"],
    ["nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)"],
    ["convtranspose:filter=box,k=2,s=2,channels=sum,bias=0.1"], ["nn.ConvTranspose2d(3, 6, 2, stride=2, groups=3)"],
    ["upsample:2"], ["upsample:3x1.5,mode=bilinear"], ["nn.UpsamplingBilinear2d(size=(40, 31))"],
    ["upsample:2,mode=bicubic"],
]


def _image(shape=(2, 3, 33, 29), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("specs", EVERY_STAGE, ids=lambda specs: "+".join(specs))
def test_every_stage_on_cuda_matches_the_cpu(specs):
    pipeline = Pipeline.from_specs(specs)
    image = _image()
    cpu = run_pipeline(pipeline, image, maxval=255, device="cpu", engine="torch")
    gpu = run_pipeline(pipeline, image, maxval=255, device="cuda", engine="torch")
    assert gpu.device.startswith("cuda") and gpu.data.is_cuda
    np.testing.assert_allclose(gpu.values(), cpu.values(), rtol=1e-5, atol=1e-6)
    if len(cpu.plan.output_shape) == 4 and cpu.plan.output_shape[1] <= 4:
        for normalize in ("auto", "minmax"):
            a, b = quantize(gpu, 8, normalize), quantize(cpu, 8, normalize)
            assert a.normalize == b.normalize
            assert np.abs(a.array.astype(int) - b.array.astype(int)).max() <= 1


@pytest.mark.cuda
@needs_cuda
def test_integer_pools_stay_exact_on_cuda():
    pipeline = Pipeline.from_specs(["maxpool:3,s=2,p=1", "minpool:2"])
    image = _image()
    gpu = run_pipeline(pipeline, image, maxval=255, device="cuda", engine="torch")
    cpu = run_pipeline(pipeline, image, maxval=255, device="cpu", engine="numpy")
    np.testing.assert_array_equal(quantize(gpu, 8).array, quantize(cpu, 8).array)


@pytest.mark.cuda
@needs_cuda
def test_tiled_on_cuda_equals_whole_on_cuda():
    pipeline = Pipeline.from_specs(["conv:filter=box,k=3,p=1", "avgpool:2", "relu"])
    image = _image((1, 3, 64, 50))
    whole = quantize(run_pipeline(pipeline, image, maxval=255, device="cuda"), 8)
    tiled = run_tiled(pipeline, image, (7, 9), bit_depth=8, maxval=255, device="cuda")
    np.testing.assert_array_equal(tiled.quantized.array, whole.array)


@pytest.mark.cuda
@needs_cuda
def test_batch_end_to_end_on_cuda(invoke, tmp_path):
    import json

    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(_image((40, 36, 3), seed=i)[..., :]).save(folder / f"{i}.png")
    outputs = {}
    for device in ("cpu", "cuda"):
        result = invoke("run", str(folder), "-S", "avgpool:2", "-S", "conv:filter=sharpen,p=1", "-o", str(tmp_path / device),
                        "--device", device, "--batch-size", "4", "--json")
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(records) == 6 and {r["device"] for r in records} == {device}
        outputs[device] = [np.asarray(Image.open(tmp_path / device / f"{i}.png")) for i in range(6)]
    for cpu, gpu in zip(outputs["cpu"], outputs["cuda"]):
        assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 1


@pytest.mark.cuda
@needs_cuda
def test_auto_device_picks_cuda():
    from poolcli.execute.devices import resolve_device

    assert resolve_device("auto") == "cuda"


# --------------------------------------------------------------------------- out of memory, faked


def _fake_out_of_memory():
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.fixture
def pictures(tmp_path):
    from PIL import Image

    paths = []
    for i in range(4):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(_image((24, 20, 3), seed=i)).save(path)
        paths.append(path)
    return paths


def _decoded(processor, paths, tmp_path):
    from poolcli.batch.naming import Target

    return [processor.decode(processor.prepare(InputItem(str(p)), Target(str(tmp_path / f"out_{p.name}"), "png")))
            for p in paths]


def test_cuda_out_of_memory_splits_the_batch(pictures, tmp_path, monkeypatch):
    import poolcli.execute.run as engine

    real = engine.run_pipeline
    sizes = []

    def small_device(pipeline, array, **options):
        sizes.append(len(array))
        if len(array) > 1:
            raise _fake_out_of_memory()
        return real(pipeline, array, **options)

    monkeypatch.setattr(engine, "run_pipeline", small_device)
    processor = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions(output=str(tmp_path), device="cpu"))
    group = _decoded(processor, pictures, tmp_path)
    results = processor.compute(group)
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert [d for d, _ in results] == group
    for decoded, result in results:
        expected = quantize(real(processor.pipeline, decoded.image.array, maxval=255), 8)
        np.testing.assert_array_equal(quantize(result, 8).array, expected.array)


def test_cuda_out_of_memory_alone_is_one_line_not_a_traceback(invoke, pictures, tmp_path, monkeypatch):
    import poolcli.execute.run as engine

    def no_device(*args, **kwargs):
        raise _fake_out_of_memory()

    monkeypatch.setattr(engine, "run_pipeline", no_device)
    result = invoke("pool", *map(str, pictures), "--global", "-o", str(tmp_path / "out"), "--batch-size", "4")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("poolcli: error:")]
    assert len(errors) == 4 and all("out of memory" in line for line in errors)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_cuda_out_of_memory_falls_back_to_tiles(pictures, tmp_path, monkeypatch):
    import poolcli.execute.run as engine

    expected = quantize(engine.run_pipeline(Pipeline.from_specs(["avgpool:2"]), _decoded(
        Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions()), pictures[:1], tmp_path)[0].image.array, maxval=255), 8)

    def no_room(*args, **kwargs):
        raise _fake_out_of_memory()

    monkeypatch.setattr(engine, "run_pipeline", no_room)
    processor = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions())
    [(decoded, result)] = processor.compute(_decoded(processor, pictures[:1], tmp_path))
    assert decoded.job.execution.mode == "tiled"
    np.testing.assert_array_equal(quantize(result, 8).array, expected.array)


def test_out_of_memory_in_the_tiles_too_is_one_line(pictures, tmp_path, monkeypatch):
    import poolcli.execute.run as engine
    from poolcli.errors import PoolcliError

    def no_room(*args, **kwargs):
        raise _fake_out_of_memory()

    monkeypatch.setattr(engine, "run_pipeline", no_room)
    monkeypatch.setattr(engine, "run_tiled", no_room)
    processor = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions())
    [(decoded, error)] = processor.compute(_decoded(processor, pictures[:1], tmp_path))
    assert isinstance(error, PoolcliError) and "out of memory" in str(error) and "\n" not in str(error)


def test_other_errors_are_not_taken_for_out_of_memory(pictures, tmp_path, monkeypatch):
    import poolcli.execute.run as engine

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(engine, "run_pipeline", broken)
    processor = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions())
    with pytest.raises(RuntimeError, match="something else"):
        processor.compute(_decoded(processor, pictures[:2], tmp_path))
