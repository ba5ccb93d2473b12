"""The tensor decoder (nvJPEG's path, run here on the CPU through torchvision.io) against
the Pillow path: the same crops of the same images, pixels within the resize's rounding,
and Pillow where a file is not a JPEG."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dscl.datasets.prepared import Split
from dscl.images import BatchDecoder, ImageTransform, TensorDecoder, gpu_decoding, make_decoder


def photo(seed: int, size=(300, 220)) -> Image.Image:
    """A smooth picture with structure (a random crop offset shows in it)."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [np.sin(xx / (9 + c) + rng.uniform(0, 6)) * np.cos(yy / (13 + 2 * c)) for c in range(3)], -1
    )
    return Image.fromarray(((img + 1) * 127.5).astype(np.uint8))


@pytest.fixture
def split(tmp_path):
    paths = []
    for i in range(6):
        name = f"img{i}.png" if i == 4 else f"img{i}.jpg"
        photo(i, (300 - 17 * i, 220 + 9 * i)).save(tmp_path / name, quality=95)
        paths.append(name)
    (tmp_path / "img5.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # damaged
    return Split(paths, np.arange(6) % 3, tmp_path)


def test_same_crops_and_pixels_within_rounding_of_pillow(split):
    t = ImageTransform(resize=128, crop=112, crop_mode="random")
    ids, flips = np.array([0, 1, 2, 3, 4]), np.array([False, True, False, True, False])
    cpu, labels = BatchDecoder(split, t, 2, pin_memory=False)(ids, flips, seed=7)
    decoder = TensorDecoder(split, t, 2, torch.device("cpu"))
    tensor, tensor_labels = decoder(ids, flips, seed=7)
    decoder.close()
    assert tensor.shape == cpu.shape == (5, 3, 112, 112) and tensor.dtype == torch.uint8
    assert torch.equal(labels, tensor_labels)
    diff = (tensor.float() - cpu.float()).abs()
    assert float(diff[:4].mean()) < 2.0  # the JPEGs: two resize implementations
    # a crop shifted by one pixel would differ far more than the resizes do
    shifted = (tensor[0, :, :, 1:].float() - cpu[0, :, :, :-1].float()).abs().mean()
    assert float(shifted) > 3 * float(diff[0].mean())
    assert torch.equal(tensor[4], cpu[4])  # the PNG: Pillow's own path
    assert decoder.fallbacks == {str(split.image_path(4))}


def test_a_damaged_jpeg_falls_back_to_pillow_and_its_error(split):
    t = ImageTransform(resize=64, crop=56)
    decoder = TensorDecoder(split, t, 1, torch.device("cpu"))
    with pytest.raises(ValueError, match="img5.jpg does not decode"):
        decoder(np.array([0, 5]), np.zeros(2, bool), seed=0)
    decoder.close()


def test_auto_decodes_on_the_gpu_only_on_cuda():
    t = ImageTransform(resize=64, crop=56)
    cpu = torch.device("cpu")
    assert not gpu_decoding("auto", cpu, t)
    assert isinstance(make_decoder(None, t, 1, cpu, "auto"), BatchDecoder)
    assert not gpu_decoding("auto", torch.device("cuda"), ImageTransform(mode="L", resize=None, crop=None))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        gpu_decoding("gpu", cpu, t)
    with pytest.raises(ValueError, match="decode must be one of"):
        gpu_decoding("nvjpeg", cpu, t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_matches_the_cpu_tensor_path(split):
    t = ImageTransform(resize=128, crop=112, crop_mode="random")
    ids, flips = np.array([0, 1, 2, 3]), np.array([False, True, False, True])
    on_cpu = TensorDecoder(split, t, 2, torch.device("cpu"))(ids, flips, seed=3)[0]
    on_gpu = TensorDecoder(split, t, 2, torch.device("cuda"))(ids, flips, seed=3)[0]
    assert on_gpu.is_cuda
    assert float((on_gpu.cpu().float() - on_cpu.float()).abs().mean()) < 2.0


def test_jpeg_bytes_are_what_pillow_wrote():
    buf = io.BytesIO()
    photo(0).save(buf, format="JPEG")
    assert buf.getvalue()[:2] == b"\xff\xd8"


def test_a_16_bit_photograph_is_scaled_not_clipped(tmp_path):
    """Pillow's ``convert`` clips a 16-bit grey image to white; it is scaled to 8 bits."""
    from PIL import Image

    from dscl.images import ImageTransform, to_8bit

    ramp = np.linspace(0, 65535, 30 * 40).reshape(30, 40).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")
        eight = np.asarray(to_8bit(img))
    np.testing.assert_array_equal(eight, np.rint(ramp / 257.0).astype(np.uint8))
    x = ImageTransform("RGB", resize=None, crop=None)(Image.open(tmp_path / "deep.png"), False, None)
    assert x.shape == (3, 30, 40) and int(x.min()) == 0 and int(x.max()) == 255
    rgb = Image.new("RGB", (4, 4), (10, 20, 30))
    assert to_8bit(rgb) is rgb  # 8-bit modes are left to convert
