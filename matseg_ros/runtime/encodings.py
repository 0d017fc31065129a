"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge.

cv_bridge is not on every machine the node runs on (not on PyPI at all), so this module
reproduces its semantics for the encodings a camera driver or Gazebo publishes. It works
on any object with the message's fields: rclpy messages (`data` is an `array.array`),
rosbags dataclasses (`data` is a numpy array), or anything holding bytes or a list.

Decoding never loops over pixels: `data` is viewed with `np.frombuffer` and strided over
`step`, so an unpadded native-order image is not copied at all.
"""
from __future__ import annotations

import array
import sys
from typing import Any

import cv2
import numpy as np

MAX_PIXELS = 100_000_000  # larger frames are corrupt headers, not cameras

# encoding -> (dtype, channels) of the passthrough array, as cv_bridge defines them
_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1), "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1), "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "yuv422": (np.dtype(np.uint8), 2), "uyvy": (np.dtype(np.uint8), 2),
    "yuv422_yuy2": (np.dtype(np.uint8), 2), "yuyv": (np.dtype(np.uint8), 2),
    "bayer_rggb8": (np.dtype(np.uint8), 1), "bayer_bggr8": (np.dtype(np.uint8), 1),
    "bayer_gbrg8": (np.dtype(np.uint8), 1), "bayer_grbg8": (np.dtype(np.uint8), 1),
    "rgb16": (np.dtype(np.uint16), 3), "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4), "bgra16": (np.dtype(np.uint16), 4),
    "bayer_rggb16": (np.dtype(np.uint16), 1), "bayer_bggr16": (np.dtype(np.uint16), 1),
    "bayer_gbrg16": (np.dtype(np.uint16), 1), "bayer_grbg16": (np.dtype(np.uint16), 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUT)

# encoding -> OpenCV conversion to RGB. 8UC3 carries no colour order; OpenCV code (and
# cv_bridge's cv2_to_imgmsg passthrough) produces it from BGR images, so it is read as BGR.
# OpenCV names Bayer patterns by the second row (BayerBG == RGGB), exactly as cv_bridge uses them.
_TO_RGB: dict[str, int] = {
    "bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
# 16-bit encoding -> the 8-bit one it becomes after cv_bridge's 255/65535 scaling
_EIGHT_BIT: dict[str, str] = {"mono16": "mono8", "16UC1": "mono8", "rgb16": "rgb8", "bgr16": "bgr8",
                              "rgba16": "rgba8", "bgra16": "bgra8", "bayer_rggb16": "bayer_rggb8",
                              "bayer_bggr16": "bayer_bggr8", "bayer_gbrg16": "bayer_gbrg8",
                              "bayer_grbg16": "bayer_grbg8"}
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.11 decodes straight to RGB


class ImageDecodeError(ValueError):
    """A frame that cannot be turned into an image; the node counts and skips these."""


def _describe(msg: Any) -> str:
    return (f"{getattr(msg, 'encoding', '?')!r} image {getattr(msg, 'width', '?')}x"
            f"{getattr(msg, 'height', '?')} (step {getattr(msg, 'step', '?')})")


def _bytes_of(data: Any, what: str) -> np.ndarray:
    """A flat uint8 view of a message's `data`, whatever container it came in."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError(f"{what}: data must be uint8, got a {data.dtype} array")
        return data.reshape(-1)
    try:
        if isinstance(data, (bytes, bytearray, memoryview, array.array)):
            return np.frombuffer(data, dtype=np.uint8)
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ImageDecodeError(f"{what}: data is not a byte sequence ({exc})") from exc


def image_to_numpy(msg: Any) -> np.ndarray:
    """H×W or H×W×C array in the encoding's dtype and native byte order (cv_bridge passthrough).

    Without padding and in native order this is a view of `msg.data` (read-only when the
    data is `bytes`); row padding is skipped by striding, other byte orders are swapped.
    """
    encoding = msg.encoding
    if encoding not in _LAYOUT:
        raise ImageDecodeError(f"unsupported encoding {encoding!r} ({_describe(msg)}); "
                               f"supported: {', '.join(SUPPORTED_ENCODINGS)}")
    dtype, channels = _LAYOUT[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"{_describe(msg)}: width and height must be positive")
    if height * width > MAX_PIXELS:
        raise ImageDecodeError(f"{_describe(msg)}: {height * width} pixels exceeds the "
                               f"limit of {MAX_PIXELS} (MAX_PIXELS)")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"{_describe(msg)}: step is shorter than a row of "
                               f"{width} px x {channels * dtype.itemsize} bytes = {row_bytes}")
    if channels == 2 and width % 2:
        raise ImageDecodeError(f"{_describe(msg)}: YUV 4:2:2 needs an even width")
    data = _bytes_of(msg.data, _describe(msg))
    if data.size != step * height:
        raise ImageDecodeError(f"{_describe(msg)}: data has {data.size} bytes, expected "
                               f"step x height = {step} x {height} = {step * height}")
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    shape = (height, width) if channels == 1 else (height, width, channels)
    strides = (step, dtype.itemsize) if channels == 1 else (step, channels * dtype.itemsize,
                                                            dtype.itemsize)
    image = np.ndarray(shape, dtype=dtype, buffer=data, strides=strides)
    if not dtype.isnative:
        image = image.astype(dtype.newbyteorder("="))
    elif step % dtype.itemsize:  # OpenCV misreads rows that do not start on an element
        image = np.ascontiguousarray(image)
    return image


def image_to_rgb(msg: Any) -> np.ndarray:
    """H×W×3 uint8 RGB for every supported encoding: what the model is fed.

    16-bit data is scaled by 255/65535 with rounding (cv_bridge's 16->8 bit rule), then
    converted as its 8-bit encoding (16-bit Bayer is demosaiced after scaling); 32FC1 is
    min-max normalised over the frame (cv_bridge's cvtColorForDisplay default) and rejected
    when it holds NaN or inf. The result may be a read-only view of `msg.data` (rgb8).
    """
    image = image_to_numpy(msg)
    encoding = msg.encoding
    if encoding == "32FC1":
        return cv2.cvtColor(_normalise_float(image, msg), cv2.COLOR_GRAY2RGB)
    if encoding in _EIGHT_BIT:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
        encoding = _EIGHT_BIT[encoding]
    if encoding == "rgb8":
        return image if image.flags.c_contiguous else np.ascontiguousarray(image)
    return cv2.cvtColor(image, _TO_RGB[encoding])


def _normalise_float(image: np.ndarray, msg: Any) -> np.ndarray:
    """Min-max scale a finite float image to uint8 (a constant image becomes 0)."""
    finite, position = cv2.checkRange(image)
    if not finite:
        x, y = position
        raise ImageDecodeError(f"{_describe(msg)}: value {image[y, x]} at pixel (x={x}, y={y}) "
                               f"is not finite; NaN/inf cannot be shown as RGB")
    low, high = cv2.minMaxLoc(image)[:2]
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    scale = 255.0 / (high - low)
    return cv2.convertScaleAbs(image, alpha=scale, beta=-low * scale)


def _compressed_size(data: np.ndarray, codec: str) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or JPEG SOF header, to refuse bombs before decoding."""
    head = data[:65536].tobytes()
    if codec == "png":
        return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) \
            if len(head) >= 24 else None
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) to H×W×3 uint8 RGB.

    The codec comes from the data's signature; `format` ("jpeg", "rgb8; jpeg compressed
    bgr8", ...) only names it, since image_transport always compresses a standard image.
    """
    fmt = str(getattr(msg, "format", ""))
    what = f"CompressedImage (format {fmt!r})"
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"{what}: compressedDepth images are depth data, not a picture")
    data = _bytes_of(msg.data, what)
    if data[:3].tobytes() == b"\xff\xd8\xff":
        codec = "jpeg"
    elif data[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
        codec = "png"
    else:
        raise ImageDecodeError(f"{what}: {data.size} bytes starting {data[:8].tobytes()!r} "
                               f"are neither JPEG nor PNG")
    size = _compressed_size(data, codec)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageDecodeError(f"{what}: {codec} header says {size[0]}x{size[1]}, more than "
                               f"MAX_PIXELS = {MAX_PIXELS}")
    try:
        image = cv2.imdecode(data, _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageDecodeError(f"{what}: {codec} decoding failed: {exc}") from exc
    if image is None:
        raise ImageDecodeError(f"{what}: {data.size} bytes of {codec} data are corrupt or truncated")
    return image if _IMREAD_RGB is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def numpy_to_image(image: np.ndarray, encoding: str, msg: Any) -> Any:
    """Fill msg's height/width/encoding/is_bigendian/step/data from an array; return msg.

    The array's own byte order is kept (a '>u2' array gives is_bigendian=1). `data` keeps
    the container type msg already holds (array.array for rclpy: assigning one skips
    rclpy's per-element checks; numpy for rosbags; bytes otherwise).
    """
    if encoding not in _LAYOUT:
        raise ValueError(f"cannot encode {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    dtype, channels = _LAYOUT[encoding]
    image = np.asarray(image)
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if (image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels)
            or image.dtype.kind != dtype.kind or image.dtype.itemsize != dtype.itemsize):
        want = "H×W" if channels == 1 else f"H×W×{channels}"
        raise ValueError(f"{encoding} needs a {want} {dtype} array, got {image.shape} {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot encode an empty {image.shape} image as {encoding}")
    order = image.dtype.byteorder
    big = order == ">" or (order == "=" and sys.byteorder == "big")
    flat = np.ascontiguousarray(image).reshape(-1).view(np.uint8)
    current = getattr(msg, "data", None)
    if isinstance(current, array.array):
        data: Any = array.array("B")
        data.frombytes(flat)
    elif isinstance(current, np.ndarray):
        data = flat.copy()
    else:
        data = flat.tobytes()
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(big)
    msg.step = int(image.shape[1] * channels * dtype.itemsize)
    msg.data = data
    return msg
