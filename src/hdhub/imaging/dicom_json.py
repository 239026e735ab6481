"""The DICOM JSON model (PS3.18 Annex F) of a dataset, read straight from its raw elements.

pydicom's ``Dataset.to_json_dict`` turns every element into a Python value object first
(``PersonName``, ``DSfloat``, ``MultiValue``, validation hooks), which costs about 4 ms for
a 70-element MR header: most of an archive's ingest time. This module decodes the raw
bytes of the common cases directly and gives the rest to pydicom, element by element:
ambiguous or unknown VRs, private tags in implicit VR, UN, character sets other than the
default repertoire, Latin-1 and UTF-8, and any value it cannot decode cleanly. The output
equals pydicom's (``tests/imaging/test_dicom_json.py`` compares them on every test file
pydicom ships), with one deliberate difference: a text value that breaks its VR's rules
(too long, a forbidden character) is kept as it is in the file, where pydicom's strict
mode would drop the element.

Values larger than the bulk data threshold are left out (``"BulkDataURI": ""``): they are
retrieved from the stored instance, not from the index.
"""

from __future__ import annotations

import base64
import logging
import re
import struct
from typing import Any

import pydicom.config
import pydicom.datadict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

BULK_THRESHOLD = 1024  # base64 characters; pydicom's default
_BULK_BYTES = (BULK_THRESHOLD // 4) * 3
_CHARSET = 0x00080005
_TEXT = {"LO", "SH", "UC", "PN"}  # decoded with the character set, split on backslash
_SINGLE = {"LT", "ST", "UT"}  # decoded with the character set, never split
_ASCII = {"AS", "CS", "DA", "DT", "TM", "UI"}  # default repertoire, split on backslash
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_BYTES = {"OB", "OD", "OF", "OL", "OV", "OW"}
# Character sets decoded here; any other goes to pydicom for the whole dataset.
_CODECS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}


log = logging.getLogger(__name__)


class _Fallback(Exception):
    """This element is for pydicom to convert."""


def _bulk(elem: Any) -> str:
    return ""


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """``ds`` as a DICOM JSON object, bulk data left out; an element that cannot be
    converted is dropped (as pydicom does with ``suppress_invalid_tags``)."""
    codec = _codec(ds)
    if codec is None:
        return ds.to_json_dict(
            bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=_bulk, suppress_invalid_tags=True
        )
    out: dict[str, Any] = {}
    with pydicom.config.strict_reading():
        for tag in list(ds.keys()):
            try:
                out[f"{tag:08X}"] = _element(ds, tag, codec)
            except Exception as exc:  # as pydicom's suppress_invalid_tags: the element is left out
                log.debug("DICOM JSON: element %08X left out: %s", tag, exc)
    return out


def _codec(ds: Dataset) -> str | None:
    raw = ds.get_item(_CHARSET)
    if raw is None:
        return "latin_1"
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("latin_1")
    if not isinstance(value, str):
        return None  # several character sets (code extensions): pydicom's work
    return _CODECS.get(value.strip(" \x00"))


def _element(ds: Dataset, tag: int, codec: str) -> dict[str, Any]:
    raw = ds.get_item(tag)
    try:
        if not isinstance(raw, RawDataElement):
            if raw is not None and raw.VR == "SQ":
                return {"vr": "SQ", "Value": [_item(item, codec) for item in raw.value]}
            raise _Fallback
        return _raw(raw, codec)
    except Exception:  # _Fallback, or a value this module cannot decode cleanly
        return ds[tag].to_json_dict(bulk_data_element_handler=_bulk, bulk_data_threshold=BULK_THRESHOLD)


def _item(item: Dataset, codec: str) -> dict[str, Any]:
    if _CHARSET in item:
        raise _Fallback  # an item with its own character set
    return {f"{tag:08X}": _element(item, tag, codec) for tag in list(item.keys())}


def _raw(raw: RawDataElement, codec: str) -> dict[str, Any]:
    tag, vr, value = raw.tag, raw.VR, raw.value
    if vr is None:
        if tag.group & 1:  # a private tag without its VR: pydicom's private dictionary
            raise _Fallback
        try:
            vr = pydicom.datadict.dictionary_VR(tag)
        except KeyError:
            raise _Fallback from None
    if value is None:
        raise _Fallback  # deferred read
    out: dict[str, Any] = {"vr": vr}
    if vr == "SQ" and value:
        raise _Fallback  # a sequence pydicom has not parsed yet
    if not value:
        return out | {"Value": []} if vr == "SQ" else out
    if vr in _ASCII or vr in _TEXT or vr in _SINGLE:
        text = value.decode(codec if vr not in _ASCII else "latin_1", "strict")
        if vr in _SINGLE:
            text = text.rstrip("\x00 ")
            if text:
                out["Value"] = [text]
            return out
        if vr == "PN":
            names = text.rstrip("\x00 ").split("\\")
            out["Value"] = [_person_name(n) for n in names]
            return out
        if vr in _TEXT:
            parts = [p.rstrip("\x00 ") for p in text.split("\\")]
        else:
            parts = text.rstrip(" \x00").split("\\")
            if vr in ("DA", "TM"):
                parts = [p.rstrip() for p in parts]
        if parts != [""]:
            out["Value"] = parts
        return out
    if vr in ("DS", "IS"):
        parts = value.decode("latin_1").rstrip(" \x00").split("\\")
        if parts == [""]:
            return out
        number = float if vr == "DS" else _int
        out["Value"] = [number(p.strip()) for p in parts]
        return out
    if vr == "AE":
        parts = [p.strip() for p in value.decode("latin_1").split("\\")]
        if parts != [""]:
            out["Value"] = parts
        return out
    if vr == "UR":
        text = value.decode("latin_1").rstrip()
        if text:
            out["Value"] = [text]
        return out
    endian = "<" if raw.is_little_endian else ">"
    if vr in _NUMBERS:
        fmt = _NUMBERS[vr]
        size = struct.calcsize(fmt)
        if len(value) % size:
            raise _Fallback
        out["Value"] = list(struct.unpack(f"{endian}{len(value) // size}{fmt}", value))
        return out
    if vr == "AT":
        if len(value) % 4:
            raise _Fallback
        pairs = struct.unpack(f"{endian}{len(value) // 2}H", value)
        out["Value"] = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
        return out
    if vr in _BYTES:
        if len(value) > _BULK_BYTES:
            out["BulkDataURI"] = ""
        else:
            out["InlineBinary"] = base64.b64encode(value).decode("ascii")
        return out
    raise _Fallback  # UN, SQ, ambiguous VRs: pydicom's rules


_INTEGER = re.compile(r"[+-]?[0-9]+")


def integer_string(text: str) -> int | None:
    """A DICOM IS value (an optional sign and ASCII digits) as an int, else None."""
    return int(text) if _INTEGER.fullmatch(text) else None


def _int(text: str) -> int:
    value = integer_string(text)
    if value is None:
        raise _Fallback  # "1.0", "1e3" and the like: pydicom's IS rules
    return value


def _person_name(name: str) -> dict[str, str]:
    groups = name.split("=")
    out = {"Alphabetic": groups[0]}
    if len(groups) > 1:
        out["Ideographic"] = groups[1]
    if len(groups) > 2:
        out["Phonetic"] = groups[2]
    return out
