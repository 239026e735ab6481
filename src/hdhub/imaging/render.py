"""Frames and rendered images of a stored instance (PS3.18 8.7.3 frames, 8.3.5 rendered).

Frames are returned as stored: an encapsulated (compressed) frame keeps its bitstream and
media type (image/jpeg, image/jls, image/jp2, image/dicom-rle …); a native frame is the
uncompressed pixel bytes, little endian. Rendering decodes one frame (pydicom with
pylibjpeg: JPEG baseline, extended and lossless, JPEG-LS, JPEG 2000, RLE), applies the
modality LUT and the VOI window (the request's ``window``, else the instance's first
Window Center/Width, else the frame's range), and encodes an 8-bit PNG or JPEG, resized
to fit the ``viewport`` if one is given.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pydicom
import pydicom.encaps
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

from hdhub.errors import HdhubError, NotFound
from hdhub.imaging.store import check_inflated_size

THUMBNAIL = (128, 128)
MAX_VIEWPORT = 4096
MAX_DECODED_PIXELS = 64 << 20  # samples of one frame decoded for rendering or native frames
# PS3.18 Table 8.7.3-2: media types of frames in each compressed transfer syntax.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
RENDERED_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}


class NotAcceptable(HdhubError):
    code = "not_acceptable"
    status = 406


@dataclass(frozen=True)
class Frame:
    data: bytes
    media_type: str
    transfer_syntax: str


def _dataset(data: bytes) -> Dataset:
    try:
        check_inflated_size(data)  # one stored before deflate bombs were refused
    except ValueError as exc:
        raise NotAcceptable(str(exc)) from None
    ds = pydicom.dcmread(BytesIO(data), force=True)
    if "PixelData" not in ds:
        raise NotFound("this instance has no pixel data (not an image)")
    return ds


def _frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def frame_count(data: bytes) -> int:
    return _frames(_dataset(data))


def frame(data: bytes, number: int, *, decode: bool = False) -> Frame:
    """Frame ``number`` (from 1) of an instance's bytes: as stored, or decoded to native
    little-endian pixels when ``decode`` (for a client that accepts only those)."""
    return frames_of(data, [number], decode=decode)[0]


def frames_of(data: bytes, numbers: list[int], *, decode: bool = False) -> list[Frame]:
    """Several frames of one instance, its bytes parsed once."""
    ds = _dataset(data)
    count = _frames(ds)
    for number in numbers:
        if not 1 <= number <= count:
            raise NotFound(f"no frame {number}: the instance has {count}")
    syntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if syntax.is_encapsulated and not decode:
        media = FRAME_MEDIA_TYPES.get(syntax, "application/octet-stream")
        return [
            Frame(pydicom.encaps.get_frame(ds.PixelData, n - 1, number_of_frames=count), media, syntax)
            for n in numbers
        ]
    return [_native(ds, data, n, syntax) for n in numbers]


def _native(ds: Dataset, data: bytes, number: int, syntax: UID) -> Frame:
    if syntax.is_encapsulated or int(ds.BitsAllocated) == 1:
        _check_size(ds, number)
        pixels = _decoded(data, number)
        raw = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
        return Frame(raw, "application/octet-stream", ExplicitVRLittleEndian)
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated) // 8
    raw = bytes(ds.PixelData[(number - 1) * size : number * size])
    if len(raw) != size:
        raise NotFound(f"frame {number}: the pixel data is shorter than its attributes say")
    if syntax == ExplicitVRBigEndian and int(ds.BitsAllocated) > 8:
        width = int(ds.BitsAllocated) // 8
        raw = np.frombuffer(raw, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    return Frame(raw, "application/octet-stream", ExplicitVRLittleEndian)


_JPEG_SOF = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}


def bitstream_size(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) as a compressed frame's own header says: JPEG (all processes, JPEG-LS)
    from its start-of-frame segment, JPEG 2000 from its SIZ segment; None when not found."""
    if frame[:2] == b"\xff\xd8":
        at = 2
        while at + 9 <= len(frame) and frame[at] == 0xFF:
            marker = frame[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
            elif marker in _STANDALONE:
                at += 2
            elif marker in _JPEG_SOF:
                rows, columns = struct.unpack(">HH", frame[at + 5 : at + 9])
                return rows, columns
            elif marker == 0xDA:  # start of scan: no frame header before it
                return None
            else:
                at += 2 + struct.unpack(">H", frame[at + 2 : at + 4])[0]
        return None
    siz = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # JPEG 2000: SOC then SIZ (in a JP2 box or not)
    if siz < 0 or len(frame) < siz + 24:
        return None
    width, height, x0, y0 = struct.unpack(">IIII", frame[siz + 8 : siz + 24])
    return height - y0, width - x0


def _check_size(ds: Dataset, number: int = 1) -> None:
    """Decoding allocates the whole frame: a whole-slide image is served as stored, not decoded.
    A compressed frame is decoded to the size its own header says: a 64x64 image whose JPEG
    says 20000x20000 made the decoder take 400 MB before failing, so the two must agree."""
    syntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if syntax.is_encapsulated:
        frame = pydicom.encaps.get_frame(ds.PixelData, number - 1, number_of_frames=_frames(ds))
        size = bitstream_size(frame)
        said = (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
        if size is not None and size != said:
            raise NotAcceptable(
                f"frame {number} is {size[1]}x{size[0]} in its compressed data but {said[1]}x{said[0]} "
                "in its attributes: not decoded"
            )
    pixels = (
        int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
    )
    if pixels > MAX_DECODED_PIXELS:
        raise NotAcceptable(
            f"a frame of {pixels:,} samples is too large to decode here (at most {MAX_DECODED_PIXELS:,}): "
            "retrieve its frames as stored"
        )


def _decoded(data: bytes, number: int) -> np.ndarray:
    try:
        return pixel_array(BytesIO(data), index=number - 1)
    except Exception as exc:
        raise NotAcceptable(f"cannot decode this instance's pixel data: {str(exc)[:200]}") from None


def parse_window(value: str | None) -> tuple[float, float] | None:
    """``center,width[,function]`` (PS3.18 8.3.5.1.3); only the linear function."""
    if not value:
        return None
    parts = value.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise ValueError("window: center,width[,linear]") from None
    if not (math.isfinite(center) and math.isfinite(width)):  # NaN passed "width < 1"
        raise ValueError("window: finite numbers")
    if width < 1 or (len(parts) > 2 and parts[2].strip().lower() not in ("linear", "")):
        raise ValueError("window: a width of at least 1 and the linear function")
    return center, width


def parse_viewport(value: str | None) -> tuple[int, int] | None:
    """``vw,vh`` (PS3.18 8.3.5.1.2): the largest size of the rendered image."""
    if not value:
        return None
    try:
        vw, vh = (int(v) for v in value.split(",")[:2])
    except ValueError:
        raise ValueError("viewport: vw,vh in pixels") from None
    if not (1 <= vw <= MAX_VIEWPORT and 1 <= vh <= MAX_VIEWPORT):
        raise ValueError(f"viewport: from 1 to {MAX_VIEWPORT} pixels")
    return vw, vh


def render(
    data: bytes,
    number: int = 1,
    *,
    media_type: str = "image/jpeg",
    window: tuple[float, float] | None = None,
    viewport: tuple[int, int] | None = None,
    quality: int = 90,
) -> bytes:
    """Frame ``number`` as an 8-bit PNG or JPEG image."""
    if media_type not in RENDERED_TYPES:
        raise NotAcceptable(f"rendered images are {' or '.join(RENDERED_TYPES)}")
    ds = _dataset(data)
    count = _frames(ds)
    if not 1 <= number <= count:
        raise NotFound(f"no frame {number}: the instance has {count}")
    _check_size(ds, number)
    pixels = _decoded(data, number)
    image = Image.fromarray(_eight_bits(ds, pixels, window))
    if viewport is not None:
        image.thumbnail(viewport)
    out = BytesIO()
    if RENDERED_TYPES[media_type] == "JPEG":
        image.save(out, "JPEG", quality=quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _first(value: object) -> float:
    """The first of a possibly multi-valued number (several windows: the first is the default)."""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


def _eight_bits(ds: Dataset, pixels: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return (rgb / max(float(rgb.max()), 1.0) * 255).astype(np.uint8)
    if pixels.ndim == 3:  # colour, already RGB (pydicom converts YBR)
        if pixels.dtype == np.uint8:
            return pixels
        return (pixels / max(float(pixels.max()), 1.0) * 255).astype(np.uint8)
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    if window is not None and window[1] >= 1:
        center, width = window  # PS3.3 C.11.2.1.2.1, linear
        scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    else:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / max(high - low, 1e-9) * 255
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    return 255 - out if photometric == "MONOCHROME1" else out
