"""Tests of promref.preprocess: every odd input is either converted exactly or refused."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from promref.errors import ImageError, PromrefError, ShapeError
from promref.preprocess import load_image, pixels_to_int8, preprocess, resize_and_crop


def rand_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def over_white(rgb, a):
    """Reference compositing, scalar Python integers."""
    return (rgb * a + 255 * (255 - a) + 127) // 255


def save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def encoded(img, fmt):
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


# --- files that must be refused --------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png.*no such file"):
        load_image(tmp_path / "nope.png")


@pytest.mark.parametrize("data", [b"this is just text\n", bytes(range(256)) * 4])
def test_not_an_image(tmp_path, data):
    path = tmp_path / "junk.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=r"junk\.png.*not an image file"):
        load_image(str(path))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    data = encoded(Image.fromarray(rand_rgb(64, 64)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+.*truncated"):
        load_image(path)


def test_float_mode_refused(tmp_path):
    img = Image.fromarray(np.full((3, 4), 0.5, dtype=np.float32), "F")
    with pytest.raises(ImageError, match="float images are not supported"):
        load_image(img)
    with pytest.raises(ImageError, match=r"f\.tif.*float"):
        load_image(save(tmp_path, "f.tif", img))


def test_mode_i_out_of_16_bit_range_refused():
    img = Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I")
    with pytest.raises(ImageError, match=r"outside \[0, 65535\]"):
        load_image(img)


def test_zero_size_pil_image_refused():
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = save(tmp_path, "bomb.png", Image.new("RGB", (64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match=r"bomb\.png.*decompression bomb"):
        load_image(path)


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="list"):
        load_image([[1, 2, 3]])


# --- conversions that must be exact ----------------------------------------

def test_grayscale_replicated(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = load_image(save(tmp_path, "g.png", Image.fromarray(gray, "L")))
    assert out.dtype == np.uint8 and out.shape == (3, 4, 3)
    assert all((out[:, :, c] == gray).all() for c in range(3))


def test_bilevel_mode_1():
    out = load_image(Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1"))
    assert out.tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_rgba_over_white(tmp_path):
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [10, 200, 99, 128]]],
                    dtype=np.uint8)
    out = load_image(save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [10, 20, 30]
    assert out[0, 2].tolist() == [over_white(v, 128) for v in (10, 200, 99)]
    assert out[0, 2].tolist() == [132, 227, 177]  # 132.02, 227.39, 176.69 rounded


def test_la_over_white():
    la = np.array([[[100, 0], [100, 255], [100, 51]]], dtype=np.uint8)
    out = load_image(Image.fromarray(la, "LA"))
    assert out[0, :, 0].tolist() == [255, 100, over_white(100, 51)]
    assert (out == out[:, :, :1]).all()


def test_palette_without_transparency(tmp_path):
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    img.putdata([0, 1, 2])
    out = load_image(save(tmp_path, "p.png", img))
    assert out.tolist() == [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    img.putdata([0, 1, 2])
    path = save(tmp_path, "pt.png", img, transparency=bytes([255, 0, 128]))  # tRNS alphas
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" in check.info
    out = load_image(path)
    assert out.tolist() == [[[255, 0, 0], [255, 255, 255],
                             [over_white(0, 128), over_white(0, 128), 255]]]


def test_rgb_with_color_key_transparency(tmp_path):
    img = Image.fromarray(np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.uint8))
    out = load_image(save(tmp_path, "key.png", img, transparency=(1, 2, 3)))
    assert out.tolist() == [[[255, 255, 255], [4, 5, 6]]]


def test_16_bit_grayscale_png(tmp_path):
    values = np.array([[0, 32768, 65535, 257, 128]], dtype=np.uint16)
    path = save(tmp_path, "g16.png", Image.fromarray(values))
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # 'I;16' in current Pillow
    out = load_image(path)
    assert out[0, :, 0].tolist() == [0, 128, 255, 1, 0]
    assert (out == out[:, :, :1]).all()


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_pil_modes(mode):
    img = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).convert(mode)
    assert load_image(img)[0, :, 0].tolist() == [0, 128, 255]


def test_16_bit_big_endian_mode():
    assert load_image(Image.new("I;16B", (2, 1), 32768)).tolist() == [[[128] * 3] * 2]


@pytest.mark.parametrize("fmt,name", [("JPEG", "c.jpg"), ("TIFF", "c.tif")])
def test_cmyk(tmp_path, fmt, name):
    cmyk = Image.fromarray(rand_rgb(8, 8)).convert("CMYK")
    path = save(tmp_path, name, cmyk, format=fmt)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        expected = np.asarray(img.convert("RGB"))
    assert (load_image(path) == expected).all()


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces_use_pil_convert(mode):
    img = Image.fromarray(rand_rgb(4, 5)).convert(mode)
    assert (load_image(img) == np.asarray(img.convert("RGB"))).all()


@pytest.mark.parametrize("orientation,turns", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_applied(tmp_path, orientation, turns):
    pixels = rand_rgb(4, 6)  # asymmetric: rotation changes shape and content
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = save(tmp_path, "rot.png", img, exif=exif)  # PNG eXIf: lossless check
    out = load_image(path)
    assert (out == np.rot90(pixels, k=turns)).all()


def test_exif_orientation_jpeg(tmp_path):
    pixels = np.zeros((32, 48, 3), dtype=np.uint8)
    pixels[:16, :24] = 255  # bright top-left quadrant
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # viewer must turn it 90 degrees clockwise
    out = load_image(save(tmp_path, "rot.jpg", img, exif=exif, quality=95))
    assert out.shape == (48, 32, 3)
    assert out[:24, 16:].mean() > 240 and out[24:].mean() < 15 and out[:, :16].mean() < 15


# --- arrays ----------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 1), (3, 4, 3), (3, 4, 4)])
def test_uint8_array_shapes(shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = load_image(arr)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    if len(shape) == 2 or shape[2] == 1:
        assert (out == arr.reshape(3, 4, 1)).all()
    elif shape[2] == 3:
        assert (out == arr).all()
    else:
        assert (out == over_white(arr[:, :, :3].astype(int), arr[:, :, 3:].astype(int))).all()


def test_uint16_array_scaled():
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    assert load_image(arr)[0, :, 0].tolist() == [0, 128, 255]
    assert load_image(arr.astype(">u2"))[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("dtype", [bool, np.float32, np.float64, np.int8, np.int16,
                                   np.int32, np.uint32, np.int64])
def test_array_dtype_refused(dtype):
    with pytest.raises(ShapeError, match=np.dtype(dtype).name):
        load_image(np.zeros((3, 4, 3), dtype=dtype))


@pytest.mark.parametrize("shape", [(0, 4, 3), (3, 0), (0, 0), (12,), (3, 4, 2),
                                   (3, 4, 5), (1, 3, 4, 3)])
def test_array_shape_refused(shape):
    with pytest.raises(ShapeError, match=r"shape \(" + ", ".join(map(str, shape))):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_array_is_copied():
    arr = rand_rgb(3, 4)
    out = load_image(arr)
    assert not np.shares_memory(out, arr)
    view = load_image(arr[:, ::2])  # non-contiguous input
    assert view.flags.c_contiguous and (view == arr[:, ::2]).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3, 4]),
       st.data())
def test_any_uint8_array_loads(h, w, channels, data):
    shape = (h, w) if channels is None else (h, w, channels)
    arr = data.draw(hnp.arrays(np.uint8, shape))
    out = load_image(arr)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.c_contiguous
    if channels == 3:
        assert (out == arr).all()


# --- resize and crop -------------------------------------------------------

def test_resize_shorter_side_and_center_crop():
    rgb = rand_rgb(100, 150)
    out = resize_and_crop(rgb, 224, 224, resize=256)
    resized = np.asarray(Image.fromarray(rgb).resize((384, 256), Image.Resampling.BILINEAR))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert (out == resized[16:240, 80:304]).all()


def test_resize_long_side_rounding_portrait():
    # long side 101 * 64 / 50 = 129.28 -> 129; crop offsets (129 - 60) // 2 = 34.
    rgb = rand_rgb(101, 50)
    out = resize_and_crop(rgb, 60, 64, resize=64, resample="nearest")
    resized = np.asarray(Image.fromarray(rgb).resize((64, 129), Image.Resampling.NEAREST))
    assert (out == resized[34:94, 0:64]).all()


def test_identity_when_already_target_size():
    rgb = rand_rgb(224, 224)
    for resize in (0, 224):
        out = resize_and_crop(rgb, 224, 224, resize=resize, resample="lanczos")
        assert (out == rgb).all() and not np.shares_memory(out, rgb)


def test_crop_only_when_shorter_side_already_matches():
    rgb = rand_rgb(256, 300)
    out = resize_and_crop(rgb, 224, 224, resize=256)
    assert (out == rgb[16:240, 38:262]).all()


def test_direct_resize_without_crop():
    rgb = rand_rgb(50, 80)
    out = resize_and_crop(rgb, 30, 20, resample="bicubic")
    expected = np.asarray(Image.fromarray(rgb).resize((20, 30), Image.Resampling.BICUBIC))
    assert out.shape == (30, 20, 3) and (out == expected).all()


@pytest.mark.parametrize("resample", ["bilinear", "bicubic", "nearest", "lanczos", "box"])
def test_resize_deterministic(resample):
    rgb = rand_rgb(37, 53)
    a = resize_and_crop(rgb, 24, 24, resize=32, resample=resample)
    b = resize_and_crop(rgb.copy(), 24, 24, resize=32, resample=resample)
    assert a.tobytes() == b.tobytes()


def test_crop_larger_than_resized_image():
    with pytest.raises(ShapeError, match="smaller than the 224x224 crop"):
        resize_and_crop(rand_rgb(10, 10), 224, 224, resize=200)


def test_unknown_resample():
    with pytest.raises(PromrefError, match="unknown resample 'cubic'"):
        resize_and_crop(rand_rgb(4, 4), 2, 2, resample="cubic")


@pytest.mark.parametrize("kw", [dict(height=0, width=2), dict(height=2, width=-1),
                                dict(height=2.0, width=2), dict(height=True, width=2),
                                dict(height=2, width=2, resize=-1)])
def test_bad_sizes(kw):
    with pytest.raises(ShapeError, match="must be an integer"):
        resize_and_crop(rand_rgb(4, 4), **kw)


def test_resize_and_crop_refuses_bad_array():
    with pytest.raises(ShapeError, match="uint8 \\(H, W, 3\\)"):
        resize_and_crop(np.zeros((4, 4), np.uint8), 2, 2)


# --- int8 conversion and the whole pipeline ---------------------------------

def test_pixels_to_int8_all_values():
    pixels = np.arange(256, dtype=np.uint8)
    q = pixels_to_int8(pixels)
    assert q.dtype == np.int8
    assert q.astype(int).tolist() == [p - 128 for p in range(256)]


def test_pixels_to_int8_refuses_other_dtypes():
    with pytest.raises(ShapeError, match="uint8"):
        pixels_to_int8(np.zeros(3, dtype=np.int16))


def test_preprocess_pipeline_and_determinism(tmp_path):
    path = save(tmp_path, "x.png", Image.fromarray(rand_rgb(90, 120)))
    a = preprocess(path, height=64, width=64, resize=72)
    b = preprocess(str(path), height=64, width=64, resize=72)
    assert a.dtype == np.int8 and a.shape == (64, 64, 3)
    assert a.tobytes() == b.tobytes()
    expected = pixels_to_int8(resize_and_crop(load_image(path), 64, 64, resize=72))
    assert (a == expected).all()
