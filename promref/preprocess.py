"""Turn an image file, PIL image or array into the int8 input tensor of the model.

The pipeline is ``load_image`` -> ``resize_and_crop`` -> ``pixels_to_int8``,
and ``preprocess`` runs all three.  Every step is integer arithmetic or
Pillow's fixed-point resampling of uint8 data, so the same input and the same
Pillow version give the same bits every time.

Conventions chosen here:

* Transparent pixels are composited over a WHITE background, in integers:
  ``out = (rgb * a + 255 * (255 - a) + 127) // 255``.
* 16-bit samples are scaled to 8 bits with rounding: ``(v * 255 + 32767) // 65535``.
* Float images (Pillow mode ``'F'``, numpy float arrays) are refused, because
  their value range (0..1? 0..255?) is ambiguous.
* Only the file formats in :data:`IMAGE_FORMATS` are decoded (Pillow is told
  so, so it never identifies anything else: an EPS file, whose decoding runs
  Ghostscript, is refused unread).  JPEG files must use Huffman-coded
  baseline, extended or progressive frames (SOF0-SOF2); lossless,
  hierarchical and arithmetic-coded JPEGs are refused, because the decoder
  Pillow ships does not decode them faithfully.
* Sizes are limited before anything is decoded or resized (docs/format.md,
  "Resource limits"): pixels of the image, pixels after resizing, the aspect
  ratio of a resized image, the output size.
"""

import os
import struct

import numpy as np
from PIL import Image, ImageOps

from . import limits
from .errors import ImageError, PromrefError, ShapeError
from .fileio import open_regular

__all__ = ["load_image", "resize_and_crop", "pixels_to_int8", "preprocess", "IMAGE_FORMATS"]

#: the Pillow formats promref decodes; every other format is refused without being read
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
#: JPEG start-of-frame markers decoded faithfully: baseline, extended sequential, progressive (Huffman)
JPEG_FRAME_MARKERS = (0xC0, 0xC1, 0xC2)
_JPEG_SOF = tuple(m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC))  # 0xC4 DHT, 0xCC DAC

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}

# Pillow's decoders signal a bad or hostile file with any of these.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
               Image.DecompressionBombError)


def load_image(source):
    """Load ``source`` as an RGB image.

    ``source`` is a path (str or os.PathLike), a ``PIL.Image.Image``, or a
    numpy array: uint8 or uint16 of shape (H, W), (H, W, 1), (H, W, 3) or
    (H, W, 4) (the 4th channel is alpha).  Grayscale is replicated to three
    channels, alpha is composited over white, 16-bit data is scaled to 8 bits,
    EXIF orientation of files is applied.

    Returns a new C-contiguous uint8 array of shape (H, W, 3), never a view of
    the caller's data.  Raises ImageError for unreadable or unsupported images
    and ShapeError for arrays of the wrong dtype or shape.
    """
    if isinstance(source, np.ndarray):
        return _from_array(np.asarray(source))  # np.matrix and other subclasses: a plain array
    if isinstance(source, Image.Image):
        return _from_pil(source, "PIL image")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(f"cannot read image from a {type(source).__name__}: "
                         "expected a path, a PIL image or a numpy array")
    path = os.fspath(source)
    name = f"image {path!r}"
    try:
        with open_regular(path, ImageError, "image file") as f:
            with Image.open(f, formats=IMAGE_FORMATS) as img:
                _check_pixels(name, img.width, img.height)
                if img.format == "JPEG":
                    _check_jpeg_frame(name, f)
                img.load()  # decode everything now, so truncated files fail here
                img = ImageOps.exif_transpose(img)  # returns a decoded copy
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"cannot read {name}: not an image file of a supported format "
                         f"({', '.join(IMAGE_FORMATS)})") from None
    except _PIL_ERRORS as exc:
        raise ImageError(f"cannot read {name}: {str(exc)[:300]}") from None
    return _from_pil(img, name)


def _check_pixels(name, width, height):
    if width * height > limits.MAX_IMAGE_PIXELS:
        raise ImageError(f"{name} is {width}x{height} = {width * height} pixels, more than the limit of "
                         f"{limits.MAX_IMAGE_PIXELS}")


def _check_jpeg_frame(name, f):
    """Refuse JPEG frames other than :data:`JPEG_FRAME_MARKERS`, by walking the marker segments."""
    position = f.tell()
    try:
        f.seek(0)
        if f.read(2) != b"\xff\xd8":
            raise ImageError(f"cannot read {name}: no JPEG start-of-image marker")
        while True:
            byte = f.read(1)
            while byte == b"\xff":  # fill bytes before a marker
                byte = f.read(1)
            if not byte:
                raise ImageError(f"cannot read {name}: JPEG without a start-of-frame marker")
            marker = byte[0]
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers, no length
                continue
            if marker in (0xD9, 0xDA):  # end of image, or a scan before any frame header
                raise ImageError(f"cannot read {name}: JPEG without a start-of-frame marker")
            length = f.read(2)
            if len(length) < 2:
                raise ImageError(f"cannot read {name}: truncated JPEG header")
            if marker in _JPEG_SOF:
                if marker not in JPEG_FRAME_MARKERS:
                    raise ImageError(f"cannot read {name}: JPEG frame type SOF{marker - 0xC0} "
                                     "(lossless, hierarchical or arithmetic-coded) is not supported; "
                                     "promref decodes baseline, extended and progressive Huffman JPEGs "
                                     "(SOF0-SOF2)")
                return
            f.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)
            byte = f.read(1)
            if byte != b"\xff":
                f.seek(-len(byte), os.SEEK_CUR)
                # entropy-coded data or junk between segments: find the next marker
                while byte and byte != b"\xff":
                    byte = f.read(1)
                if not byte:
                    raise ImageError(f"cannot read {name}: JPEG without a start-of-frame marker")
            f.seek(-1, os.SEEK_CUR)
            if f.read(1) != b"\xff":
                raise ImageError(f"cannot read {name}: malformed JPEG header")
    finally:
        f.seek(position)


def _from_pil(img, name):
    """Convert a PIL image of any supported mode to uint8 (H, W, 3)."""
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{name} has zero size {img.width}x{img.height}")
    _check_pixels(name, img.width, img.height)
    if img.format is not None and img.format not in IMAGE_FORMATS:
        # a lazily opened file of another format (EPS runs Ghostscript when loaded): never decode it
        raise ImageError(f"{name} is a {img.format} image; promref decodes only {', '.join(IMAGE_FORMATS)}")
    mode = img.mode
    if mode == "F":
        raise ImageError(f"{name} has mode 'F': float images are not supported "
                         "(their value range is ambiguous)")
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(f"{name} has mode {mode!r} with values outside "
                             "[0, 65535]; only 16-bit integer data is supported")
        return _from_array(values.astype(np.uint16))
    try:
        if img.has_transparency_data:
            if mode == "La":  # Pillow cannot convert premultiplied 'La' to RGBA
                img = img.convert("LA")
            return _over_white(np.asarray(img.convert("RGBA")))
        return np.array(img.convert("RGB"), dtype=np.uint8, order="C")
    except _PIL_ERRORS as exc:
        raise ImageError(f"cannot convert {name} of mode {mode!r} to RGB: {exc}") from exc


def _from_array(arr):
    """Convert a uint8/uint16 array of shape (H, W[, 1|3|4]) to uint8 (H, W, 3)."""
    if arr.dtype.kind != "u" or arr.dtype.itemsize not in (1, 2):
        raise ShapeError(f"image array has dtype {arr.dtype}; expected uint8 or uint16")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) \
            or arr.size == 0:
        raise ShapeError(f"image array has shape {arr.shape}; expected a non-empty "
                         "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] * arr.shape[1] > limits.MAX_IMAGE_PIXELS:
        raise ShapeError(f"image array of {arr.shape[0]}x{arr.shape[1]} pixels is larger than the limit "
                         f"of {limits.MAX_IMAGE_PIXELS} pixels")
    if arr.dtype.itemsize == 2:
        arr = ((arr.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:
        return _over_white(arr)
    return np.array(arr, dtype=np.uint8, order="C")  # always a copy


def _over_white(rgba):
    """Composite uint8 (H, W, 4) RGBA over white; exact, rounded to nearest."""
    rgb = rgba[:, :, :3].astype(np.int32)
    alpha = rgba[:, :, 3:].astype(np.int32)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _check_int(name, value, minimum, maximum=limits.MAX_INPUT_SIDE):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not minimum <= value <= maximum:
        raise ShapeError(f"{name} must be an integer in [{minimum}, {maximum}], got {limits.bounded_repr(value)}")
    return int(value)


def resize_and_crop(rgb, height, width, resize=0, resample="bilinear"):
    """Resize a uint8 (H, W, 3) image and return a uint8 (height, width, 3) copy.

    With ``resize > 0`` the shorter side is scaled to ``resize`` (the longer one
    to ``round(long * resize / short)``, in integers) and the centre
    ``height`` x ``width`` window is cropped, at offsets
    ``((H' - height) // 2, (W' - width) // 2)``.  With ``resize == 0`` the image
    is scaled straight to (height, width), without cropping.  An image that is
    already the size to scale to is not resampled at all.

    ``resample`` is one of "bilinear", "bicubic", "nearest", "lanczos", "box".
    """
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    resize = _check_int("resize", resize, 0)
    if not isinstance(resample, str) or resample not in _RESAMPLE:
        raise PromrefError(f"unknown resample {limits.bounded_repr(resample)}; expected one of "
                           f"{', '.join(sorted(_RESAMPLE))}")
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or rgb.size == 0:
        raise ShapeError(f"expected a non-empty uint8 (H, W, 3) array, got "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)} "
                         f"{getattr(rgb, 'shape', '')}")
    h, w = rgb.shape[:2]
    if resize == 0:
        size = (height, width)
    elif h <= w:
        size = (resize, (w * resize + h // 2) // h)
    else:
        size = ((h * resize + w // 2) // w, resize)
    if resize and max(h, w) > limits.MAX_ASPECT_RATIO * min(h, w):
        raise ShapeError(f"image of {h}x{w} pixels has an aspect ratio above {limits.MAX_ASPECT_RATIO}:1; "
                         "promref resizes only images up to that ratio")
    if size[0] * size[1] > limits.MAX_RESIZED_PIXELS:
        raise ShapeError(f"image of {h}x{w} pixels would be resized to {size[0]}x{size[1]}, more than the "
                         f"limit of {limits.MAX_RESIZED_PIXELS} pixels")
    if size != (h, w):
        img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        rgb = np.asarray(img.resize(size[::-1], resample=_RESAMPLE[resample]))
        h, w = size
    if h < height or w < width:
        raise ShapeError(f"image resized to {h}x{w} is smaller than the "
                         f"{height}x{width} crop; use resize >= {max(height, width)}")
    top, left = (h - height) // 2, (w - width) // 2
    return np.array(rgb[top:top + height, left:left + width], order="C")


def pixels_to_int8(rgb):
    """Map uint8 pixels p to int8 q = p - 128, exactly (any shape).

    The model's input quantization then reads q as the real value
    ``input_scale * (q - input_zero_point)``; that scale and zero point live in
    the weights file, not here.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ShapeError(f"expected a uint8 array, got "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)}")
    return (rgb.astype(np.int16) - 128).astype(np.int8)


def preprocess(source, *, height, width, resize=0, resample="bilinear"):
    """Load, resize/crop and quantize ``source``: int8 array (height, width, 3).

    Equivalent to ``pixels_to_int8(resize_and_crop(load_image(source), ...))``.
    """
    return pixels_to_int8(resize_and_crop(load_image(source), height, width,
                                          resize=resize, resample=resample))
