"""sensor_msgs Image/CompressedImage <-> numpy, against rosbags-image, OpenCV and real photos."""
from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage as RclCompressed
from sensor_msgs.msg import Image as RclImage
from skimage.data import astronaut

from matseg_ros.runtime.encodings import (MAX_PIXELS, SUPPORTED_ENCODINGS, ImageDecodeError,
                                          compressed_to_rgb, image_to_numpy, image_to_rgb,
                                          numpy_to_image)

TYPES = get_typestore(Stores.ROS2_HUMBLE).types
BAG_IMAGE, BAG_COMPRESSED = TYPES["sensor_msgs/msg/Image"], TYPES["sensor_msgs/msg/CompressedImage"]
HEADER = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                       frame_id="camera")

LAYOUT = {  # encoding -> (dtype, channels), written out independently of the module
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2), "yuv422_yuy2": (np.uint8, 2),
    "yuyv": (np.uint8, 2), "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1), "bayer_grbg8": (np.uint8, 1),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
    "bayer_rggb16": (np.uint16, 1), "bayer_bggr16": (np.uint16, 1), "bayer_gbrg16": (np.uint16, 1),
    "bayer_grbg16": (np.uint16, 1),
}
SIXTEEN_BIT = {"rgb16": "rgb8", "bgr16": "bgr8", "rgba16": "rgba8", "bgra16": "bgra8",
               "bayer_rggb16": "bayer_rggb8", "bayer_bggr16": "bayer_bggr8", "bayer_gbrg16": "bayer_gbrg8",
               "bayer_grbg16": "bayer_grbg8"}
BAYER = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}


def bag_image() -> object:
    return BAG_IMAGE(header=HEADER, height=0, width=0, encoding="", is_bigendian=0, step=0,
                     data=np.zeros(0, np.uint8))


MAKERS = {"rclpy": RclImage, "rosbags": bag_image,
          "bytes": lambda: SimpleNamespace(data=b""), "list": lambda: SimpleNamespace(data=[])}


def sample(encoding: str, rng: np.random.Generator, h: int = 6, w: int = 8) -> np.ndarray:
    dtype, channels = LAYOUT[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype == np.float32:
        return rng.normal(0, 100, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def raw_message(array_: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False,
                maker=RclImage) -> object:
    """Build a message by hand (not through numpy_to_image), with garbage row padding."""
    data = array_.astype(array_.dtype.newbyteorder(">" if bigendian else "<"))
    rows = data.reshape(data.shape[0], -1).view(np.uint8)
    padded = np.full((rows.shape[0], rows.shape[1] + pad), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = maker()
    msg.height, msg.width, msg.encoding = array_.shape[0], array_.shape[1], encoding
    msg.is_bigendian, msg.step = int(bigendian), padded.shape[1]
    msg.data = padded.tobytes() if maker is not bag_image else padded.ravel()
    return msg


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(astronaut()[100:340, 60:380])  # 240×320 RGB


def test_supported_encodings_listed():
    assert set(SUPPORTED_ENCODINGS) == set(LAYOUT)


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("encoding", sorted(LAYOUT))
def test_round_trip(encoding, maker, rng):
    image = sample(encoding, rng)
    msg = numpy_to_image(image, encoding, MAKERS[maker]())
    if maker == "list":
        msg.data = list(msg.data)
    dtype, channels = LAYOUT[encoding]
    assert (msg.height, msg.width, msg.encoding) == (6, 8, encoding)
    assert msg.step == 8 * channels * np.dtype(dtype).itemsize
    assert msg.is_bigendian == (sys.byteorder == "big")
    expected_type = {"rclpy": array.array, "rosbags": np.ndarray, "list": list}.get(maker, bytes)
    assert isinstance(msg.data, expected_type)
    decoded = image_to_numpy(msg)
    assert decoded.dtype == dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)
    assert image_to_rgb(msg).shape == (6, 8, 3)


@pytest.mark.parametrize("pad", [1, 3, 64])
@pytest.mark.parametrize("encoding", sorted(LAYOUT))
def test_step_padding_is_skipped(encoding, pad, rng):
    image = sample(encoding, rng, h=5, w=6)
    padded = raw_message(image, encoding, pad=pad)
    np.testing.assert_array_equal(image_to_numpy(padded), image)
    expected = image_to_rgb(raw_message(image, encoding))
    rgb = image_to_rgb(padded)
    assert rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "rgb16", "bgra16", "bayer_gbrg16"])
def test_big_endian(encoding, pad, rng):
    image = sample(encoding, rng)
    msg = raw_message(image, encoding, pad=pad, bigendian=True)
    decoded = image_to_numpy(msg)
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)
    little = raw_message(image, encoding, pad=pad, bigendian=False)
    np.testing.assert_array_equal(image_to_rgb(msg), image_to_rgb(little))
    # encoding a big-endian array keeps its byte order and says so
    out = numpy_to_image(image.astype(image.dtype.newbyteorder(">")), encoding, RclImage())
    assert out.is_bigendian == 1
    assert bytes(out.data) == image.astype(image.dtype.newbyteorder(">")).tobytes()
    np.testing.assert_array_equal(image_to_numpy(out), image)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", sorted(LAYOUT))
def test_passthrough_agrees_with_rosbags(encoding, bigendian, rng):
    image = sample(encoding, rng)
    msg = raw_message(image, encoding, bigendian=bigendian, maker=bag_image)
    np.testing.assert_array_equal(image_to_numpy(msg), message_to_cvimage(msg))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422",
                                      "uyvy", "yuv422_yuy2", "yuyv", *BAYER])
def test_rgb_agrees_with_rosbags(encoding, photo, rng):
    image = sample(encoding, rng, h=24, w=32)
    msg = raw_message(image, encoding, maker=bag_image)
    np.testing.assert_array_equal(image_to_rgb(msg), message_to_cvimage(msg, "rgb8"))


def test_mono16_scaling_is_cv_bridge_rounding():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    msg = raw_message(values, "mono16", maker=bag_image)
    rgb = image_to_rgb(msg)
    expected = np.rint(values.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    # rosbags-image truncates instead of rounding: never more than one level apart
    reference = message_to_cvimage(msg, "rgb8").astype(int)
    assert np.abs(rgb.astype(int) - reference).max() == 1


@pytest.mark.parametrize("encoding", sorted(SIXTEEN_BIT))
def test_sixteen_bit_colour_and_bayer_scale_then_convert_as_eight_bit(encoding, photo, rng):
    eight = SIXTEEN_BIT[encoding]
    dtype, channels = LAYOUT[eight]
    base = photo if channels == 3 else (photo[..., :1].repeat(4, -1) if channels == 4 else photo[..., 1])
    exact = base.astype(np.uint16) * 257  # v * 257 * 255 / 65535 == v: the 8-bit frame exactly
    np.testing.assert_array_equal(image_to_rgb(raw_message(exact, encoding)),
                                  image_to_rgb(raw_message(base, eight)))
    wide = sample(encoding, rng, h=24, w=32)  # any 16-bit value: cv_bridge's rounding first
    rounded = np.floor(wide.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(image_to_rgb(raw_message(wide, encoding)),
                                  image_to_rgb(raw_message(rounded, eight)))


def test_float_min_max_normalised():
    depth = np.array([[-1.0, 0.0], [1.0, 4.0]], np.float32)
    rgb = image_to_rgb(raw_message(depth, "32FC1"))
    np.testing.assert_array_equal(rgb[..., 0], [[0, 51], [102, 255]])
    assert (rgb == rgb[..., :1]).all()
    flat = image_to_rgb(raw_message(np.full((2, 3), 7.5, np.float32), "32FC1"))
    assert flat.shape == (2, 3, 3) and not flat.any()


def test_mono_replicated(rng):
    image = sample("mono8", rng)
    np.testing.assert_array_equal(image_to_rgb(raw_message(image, "8UC1")),
                                  np.repeat(image[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["bgr8", "8UC3"])
def test_bgr_channel_order(encoding, photo):
    msg = raw_message(np.ascontiguousarray(photo[..., ::-1]), encoding)
    np.testing.assert_array_equal(image_to_rgb(msg), photo)


def test_rgb8_is_zero_copy(photo):
    msg = numpy_to_image(photo, "rgb8", RclImage())
    rgb = image_to_rgb(msg)
    np.testing.assert_array_equal(rgb, photo)
    assert np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8))


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """A Bayer sensor's raw image: each pixel keeps the one colour its filter passes."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(colour)]
    return out


@pytest.mark.parametrize("encoding", sorted(BAYER))
def test_bayer_demosaics_a_photo(encoding, photo):
    raw = mosaic(photo, BAYER[encoding])
    rgb = image_to_rgb(raw_message(raw, encoding))
    error = np.abs(rgb.astype(int) - photo).mean()
    assert error < 6, f"{encoding}: mean error {error:.1f} against the photograph"
    for other in set(BAYER) - {encoding}:  # a wrong pattern is far off, so the map matters
        wrong = image_to_rgb(raw_message(raw, other))
        assert np.abs(wrong.astype(int) - photo).mean() > 3 * error
    # cv_bridge's path: OpenCV's BGR demosaic for this pattern, then BGR -> RGB
    code = {"RGGB": cv2.COLOR_BayerBG2BGR, "BGGR": cv2.COLOR_BayerRG2BGR,
            "GBRG": cv2.COLOR_BayerGR2BGR, "GRBG": cv2.COLOR_BayerGB2BGR}[BAYER[encoding]]
    np.testing.assert_array_equal(rgb, cv2.cvtColor(raw, code)[..., ::-1])


def test_yuv422_decodes_a_photo(photo):
    uyvy = cv2.cvtColor(photo, cv2.COLOR_RGB2YUV_UYVY)
    rgb = image_to_rgb(raw_message(uyvy, "yuv422"))
    assert np.abs(rgb.astype(int) - photo).mean() < 4
    np.testing.assert_array_equal(rgb, cv2.cvtColor(uyvy, cv2.COLOR_YUV2RGB_UYVY))
    # YUY2 is the same samples with each byte pair swapped (U Y V Y -> Y U Y V)
    yuy2 = np.ascontiguousarray(uyvy[..., ::-1])
    np.testing.assert_array_equal(image_to_rgb(raw_message(yuy2, "yuv422_yuy2")), rgb)


def compressed(data: bytes, fmt: str, kind: str = "rclpy") -> object:
    if kind == "rosbags":
        return BAG_COMPRESSED(header=HEADER, format=fmt, data=np.frombuffer(data, np.uint8).copy())
    msg = RclCompressed()
    msg.format, msg.data = fmt, data
    return msg


@pytest.mark.parametrize("kind", ["rclpy", "rosbags"])
@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", ""])
def test_png_decodes_exactly(fmt, kind, photo):
    data = cv2.imencode(".png", photo[..., ::-1])[1].tobytes()
    msg = compressed(data, fmt, kind)
    np.testing.assert_array_equal(compressed_to_rgb(msg), photo)
    if kind == "rosbags":
        np.testing.assert_array_equal(compressed_to_rgb(msg), message_to_cvimage(msg, "rgb8"))


@pytest.mark.parametrize("kind", ["rclpy", "rosbags"])
@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8"])
def test_jpeg_decodes(fmt, kind, photo):
    data = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    rgb = compressed_to_rgb(compressed(data, fmt, kind))
    assert rgb.shape == photo.shape and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - photo).mean() < 3
    np.testing.assert_array_equal(rgb, message_to_cvimage(compressed(data, fmt, "rosbags"), "rgb8"))


def test_grey_png_replicated(photo):
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    rgb = compressed_to_rgb(compressed(cv2.imencode(".png", grey)[1].tobytes(), "mono8; png compressed "))
    np.testing.assert_array_equal(rgb, np.repeat(grey[..., None], 3, axis=2))


# --- error paths: one exception type, messages naming the encoding and the sizes ---------

def broken(**fields) -> SimpleNamespace:
    msg = dict(height=4, width=6, encoding="rgb8", is_bigendian=0, step=18, data=bytes(72))
    msg.update(fields)
    return SimpleNamespace(**msg)


@pytest.mark.parametrize("fields, words", [
    (dict(data=bytes(71)), ["'rgb8'", "6x4", "71 bytes", "18 x 4 = 72"]),
    (dict(data=bytes(90)), ["90 bytes", "72"]),
    (dict(step=17, data=bytes(68)), ["step", "18"]),
    (dict(width=0, step=0, data=b""), ["0x4", "positive"]),
    (dict(height=0, data=b""), ["6x0", "positive"]),
    (dict(encoding="32FC3"), ["'32FC3'", "supported", "rgb8", "bayer_grbg16"]),
    (dict(width=20000, height=20000, step=60000), ["20000x20000", str(MAX_PIXELS)]),
    (dict(encoding="yuv422", width=5, step=10, data=bytes(40)), ["'yuv422'", "even width"]),
    (dict(data=np.zeros(36, np.uint16)), ["uint8", "uint16"]),
    (dict(data=[300] * 72), ["byte sequence"]),
])
def test_bad_images_raise(fields, words):
    with pytest.raises(ImageDecodeError) as info:
        image_to_rgb(broken(**fields))
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_rejected_for_rgb(bad):
    depth = np.ones((3, 4), np.float32)
    depth[2, 1] = bad
    msg = raw_message(depth, "32FC1")
    assert np.isnan(image_to_numpy(msg)[2, 1]) == np.isnan(bad)  # passthrough keeps it
    with pytest.raises(ImageDecodeError, match=r"'32FC1' image 4x3.*x=1, y=2.*not finite"):
        image_to_rgb(msg)


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".png", np.zeros((2, 2), np.uint8))[1].tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("data, fmt, pattern", [
    (None, "jpeg", r"jpeg data are corrupt or truncated"),
    (b"\xff\xd8\xff" + bytes(500), "jpeg", r"corrupt or truncated"),
    (b"GIF89a" + bytes(100), "gif", r"'gif'.*neither JPEG nor PNG"),
    (b"", "jpeg", r"0 bytes.*neither JPEG nor PNG"),
    (bytes(20), "16UC1; compressedDepth png", r"compressedDepth"),
    (png_claiming(20000, 20000), "png", r"20000x20000.*MAX_PIXELS"),
    (jpeg_claiming(60000, 60000), "jpeg", r"60000x60000.*MAX_PIXELS"),
])
def test_bad_compressed_raise(data, fmt, pattern, photo):
    if data is None:  # a JPEG cut in half, as a dropped packet leaves it
        whole = cv2.imencode(".jpg", photo)[1].tobytes()
        data = whole[:len(whole) // 2]
    with pytest.raises(ImageDecodeError, match=pattern):
        compressed_to_rgb(compressed(data, fmt))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_header_size_matches_real_files(ext, photo):
    from matseg_ros.runtime.encodings import _compressed_size
    data = np.frombuffer(cv2.imencode(ext, photo)[1].tobytes(), np.uint8)
    assert _compressed_size(data, "png" if ext == ".png" else "jpeg") == (320, 240)


@pytest.mark.parametrize("image, encoding, pattern", [
    (np.zeros((4, 6), np.uint8), "rgb8", r"rgb8 needs a H×W×3 uint8 array, got \(4, 6\)"),
    (np.zeros((4, 6), np.float64), "32FC1", r"float32.*float64"),
    (np.zeros((4, 6, 3), np.uint16), "bgr8", r"uint8.*uint16"),
    (np.zeros((0, 6), np.uint8), "mono8", r"empty"),
    (np.zeros((4, 6), np.uint8), "jpeg", r"cannot encode 'jpeg'"),
])
def test_numpy_to_image_rejects_mismatch(image, encoding, pattern):
    with pytest.raises(ValueError, match=pattern):
        numpy_to_image(image, encoding, RclImage())
