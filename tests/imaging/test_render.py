"""Frames and rendered images of stored instances, across transfer syntaxes."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image
from pydicom.pixels import pixel_array

from hdhub.errors import NotFound
from hdhub.imaging.render import NotAcceptable, frame, parse_viewport, parse_window, render


def _file(name: str) -> bytes:
    return Path(pydicom.data.get_testdata_file(name, download=False)).read_bytes()  # type: ignore[arg-type]


MR_NATIVE = pixel_array(BytesIO(_file("MR_small.dcm")))


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("MR_small.dcm", "application/octet-stream"),
        ("MR_small_bigendian.dcm", "application/octet-stream"),
        ("MR_small_RLE.dcm", "image/dicom-rle"),
        ("MR_small_jpeg_ls_lossless.dcm", "image/jls"),
        ("MR_small_jp2klossless.dcm", "image/jp2"),
    ],
)
def test_frames_as_stored_and_decoded_agree_with_the_original_pixels(name: str, media_type: str) -> None:
    """Lossless syntaxes of one MR image: each frame as stored has its syntax's media type,
    and decoded to native little-endian it is exactly the uncompressed image."""
    data = _file(name)
    stored = frame(data, 1)
    assert stored.media_type == media_type
    native = frame(data, 1, decode=True)
    assert native.media_type == "application/octet-stream"
    assert native.transfer_syntax == "1.2.840.10008.1.2.1"
    assert np.array_equal(np.frombuffer(native.data, dtype="<i2").reshape(64, 64), MR_NATIVE)
    if media_type == "application/octet-stream":
        assert stored.data == native.data


def test_multi_frame_frames_and_bounds() -> None:
    data = _file("rtdose.dcm")  # 15 frames, implicit VR
    frames = [frame(data, n).data for n in (1, 15)]
    expected = pixel_array(BytesIO(data))
    assert frames[1] == expected[14].astype(expected.dtype.newbyteorder("<")).tobytes()
    with pytest.raises(NotFound, match="no frame 16: the instance has 15"):
        frame(data, 16)
    with pytest.raises(NotFound, match="no pixel data"):
        frame(_file("rtplan.dcm"), 1)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "rtdose.dcm"]
)
def test_rendered_png_and_jpeg(name: str) -> None:
    data = _file(name)
    ds = pydicom.dcmread(BytesIO(data))
    png = Image.open(BytesIO(render(data, media_type="image/png")))
    assert png.format == "PNG" and png.size == (ds.Columns, ds.Rows)
    jpeg = Image.open(BytesIO(render(data, media_type="image/jpeg", viewport=(32, 32))))
    assert jpeg.format == "JPEG" and max(jpeg.size) == min(32, max(ds.Rows, ds.Columns))  # never enlarged


def test_windowing_changes_the_image() -> None:
    data = _file("CT_small.dcm")
    wide = np.asarray(Image.open(BytesIO(render(data, media_type="image/png", window=(40, 4000)))))
    narrow = np.asarray(Image.open(BytesIO(render(data, media_type="image/png", window=(40, 80)))))
    assert narrow.std() > wide.std()  # a narrow window spreads the same tissue over more grey levels
    assert set(np.unique(narrow)) >= {0, 255}


def test_parameters_are_checked() -> None:
    assert parse_window("40,400,linear") == (40.0, 400.0)
    assert parse_viewport("64,32") == (64, 32)
    for bad in ("40", "a,b", "40,0", "40,400,sigmoid"):
        with pytest.raises(ValueError):
            parse_window(bad)
    for bad in ("0,10", "5000,5000", "x"):
        with pytest.raises(ValueError):
            parse_viewport(bad)
    with pytest.raises(NotAcceptable):
        render(_file("CT_small.dcm"), media_type="image/gif")
    # A 12-bit JPEG Extended bitstream no installed decoder reads (a known broken file):
    # 406 with the reason, while the frame as stored is still served.
    with pytest.raises(NotAcceptable, match="cannot decode"):
        render(_file("JPEG-lossy.dcm"), media_type="image/png")
    assert frame(_file("JPEG-lossy.dcm"), 1).media_type == "image/jpeg"


def test_a_frame_too_large_to_decode_is_refused_not_allocated() -> None:
    ds = pydicom.dcmread(BytesIO(_file("MR_small_RLE.dcm")))
    ds.Rows = ds.Columns = 20_000  # a whole-slide-sized frame: 400 M samples
    buf = BytesIO()
    ds.save_as(buf)
    with pytest.raises(NotAcceptable, match="too large to decode"):
        render(buf.getvalue(), media_type="image/png")
    with pytest.raises(NotAcceptable, match="too large to decode"):
        frame(buf.getvalue(), 1, decode=True)
    assert frame(buf.getvalue(), 1).media_type == "image/dicom-rle"  # as stored: still served


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "MR_small_jp2klossless.dcm"])
def test_a_frame_whose_bitstream_claims_another_size_is_not_decoded(name: str) -> None:
    """Found by a robustness sweep: Rows and Columns said 64x64 while the JPEG header said
    20000x20000, and the decoder allocated 400 MB before failing (12.9 GB for 65535x65535 RGB),
    at every thumbnail of the study list."""
    ds = pydicom.dcmread(BytesIO(_file(name)))
    data = bytearray(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1).__next__())
    if data[:2] == b"\xff\xd8":  # JPEG: the start-of-frame segment's height and width
        sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1))
        data[sof + 5 : sof + 9] = (20_000).to_bytes(2, "big") * 2
    else:  # JPEG 2000: the SIZ segment's Xsiz and Ysiz
        siz = bytes(data).find(b"\xff\x4f\xff\x51")
        data[siz + 8 : siz + 16] = (20_000).to_bytes(4, "big") * 2
    ds.PixelData = pydicom.encaps.encapsulate([bytes(data)])
    buf = BytesIO()
    ds.save_as(buf)
    with pytest.raises(NotAcceptable, match="in its compressed data"):
        render(buf.getvalue(), media_type="image/png")
    with pytest.raises(NotAcceptable, match="in its compressed data"):
        frame(buf.getvalue(), 1, decode=True)
    assert frame(buf.getvalue(), 1).data == bytes(data)  # as stored: still served
