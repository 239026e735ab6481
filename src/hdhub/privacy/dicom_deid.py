"""De-identification of DICOM instances for a research project's extract.

DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile, optionally with the
Retain Longitudinal Temporal Information with Modified Dates Option. The profile's table
(Table E.1-1) is generated from the standard as data into ``_ps315_profile`` by
``scripts/generate_dicom_deid_profile.py``; this module reads it once, at import, into a plan
of one action per tag, so de-identifying an instance is one walk over its attributes.

One :class:`DicomDeidentifier` serves one patient of one project: ``uid_key`` is the
project's (UIDs map consistently within a project, differently across projects), while
``patient_pseudonym`` and ``date_shift_days`` are the patient's (see
``hdhub.privacy.pseudonyms.ProjectPseudonyms``). Construction is cheap.

Actions (Table E.1-1, PS3.15 E.1.1)
-----------------------------------
- **X** remove. A sequence with X goes with all its items.
- **Z** zero length (an empty sequence for SQ).
- **D** a dummy value valid for the VR: "ANONYMIZED" for text VRs (AE, CS, LO, LT, PN, SH,
  ST, UC, UR, UT), 19000101 / 19000101000000 / 000000 for DA / DT / TM, "000D" for AS, 0 for
  numbers, eight zero bytes for OB/OD/OF/OL/OV/OW/UN; a UI with D gets a remapped UID (as U).
  A sequence with D (Content Sequence, Graphic Annotation Sequence, Verifying Observer
  Sequence, …) is a *dummy sequence*: its items are kept, so a Type 1 sequence stays
  present, every attribute inside is de-identified by the table, and any free text inside
  that the table does not list (e.g. an SR Text Value (0040,A160), a Code Meaning, a
  graphic's Unformatted Text Value) is replaced with a dummy, and unlisted dates with a
  dummy or a shifted date: a dummy must not carry the original's words (coded strings, CS,
  are defined terms and are kept).
- **K** keep (sequences are still walked, private attributes inside still removed).
- **U** ``2.25.<n>``, n = the first 128 bits of HMAC-SHA-256(uid_key, original UID) as an
  integer, so at most 44 characters (a UID has at most 64). The same original UID maps to
  the same new UID across the instances of a project, so Study / Series / Frame of
  Reference relations and references (Referenced SOP Instance UID, …) are kept; another
  key gives other UIDs. Derive ``uid_key`` per project (e.g. HKDF of a deployment secret).
- **C** (the Modified Dates option, rtnLongModifDatesOpt = C): DA values and the date part
  of DT values are shifted by ``date_shift_days``; times of day (TM, and the time and UTC
  offset of a DT) are kept, since a whole-day shift does not change them. A value that
  cannot be shifted exactly (not a full date, a range, out of years 1-9999), or a C
  attribute whose VR bears no date (Timezone Offset From UTC, Certified Timestamp, Frame
  Origin Timestamp), falls back to the basic profile's action. A basic-profile C (none in
  the current table) is read conservatively as X.
- **Compound actions**: PS3.15 reads X/Z as "X unless Z is needed for IOD conformance
  (Type 3 vs Type 2)", X/D as X unless D is needed (Type 3 vs Type 1), Z/D as Z unless D is
  needed (Type 2 vs Type 1), X/Z/D and X/Z/U* likewise. The module types depend on the IOD,
  which this walk does not track, so each compound takes the branch that keeps every IOD
  conformant while removing the content: X/Z -> Z, X/Z/D -> Z, X/D -> D, Z/D -> D, and
  X/Z/U* -> U (these are the Referenced / Source Image Sequences: kept, and the UIDs inside
  remapped by their own rows; Z on a non-sequence).
- Patient's Name (Z) and Patient ID (Z/D) get ``patient_pseudonym``: a Z may be a dummy value,
  and the pseudonym is the project's dummy for the patient.
- Private attributes (odd groups) are removed, as the table's "(gggg,eeee) where gggg is odd"
  row says; repeating groups with x wildcards (Curve Data 50xx, Overlay Data and Comments
  60xx) are matched by mask. The other attributes of an overlay group (Overlay Rows, …) are
  not in the table and are kept.
- Attributes the table does not list are kept, with two exceptions: stale Group Lengths
  (gggg,0000), retired and no longer right once values change, and public tags unknown to
  the data dictionary (pydicom's, built from PS3.6): nothing says what they hold, and in
  practice they are corrupt tags (a damaged Patient's Name tag becomes an unknown tag that
  the table cannot catch) or misused ones. An attribute newer than pydicom's dictionary is
  removed until pydicom knows it: the safe side. Sequences are walked at every depth.
- The file meta information is rebuilt (Transfer Syntax, SOP Class, the new SOP Instance UID;
  the sender's AE titles and private meta go) and the 128-byte preamble is zeroed, so no
  original bytes survive outside the data set.
- Added: Patient Identity Removed = YES, De-identification Method (appended to any earlier
  value) and its Code Sequence with DCM 113100 (Basic Application Confidentiality Profile)
  and, with the date option, 113107 (Retain Longitudinal Temporal Information Modified
  Dates Option); Longitudinal Temporal Information Modified = MODIFIED with the option,
  REMOVED without it (the basic profile removes or empties the dates).

Pixel data are kept as they are. An instance whose Burned In Annotation (0028,0301) is YES
carries identifying text in its pixels, which this profile does not clean: by default
:meth:`DicomDeidentifier.deidentify` and :meth:`~DicomDeidentifier.deidentify_bytes` raise
:class:`BurnedInAnnotationError` (a ``ValidationError``) before doing anything, so such an
instance never leaves silently; a caller catches it to skip or quarantine the instance, or
builds the de-identifier with ``allow_burned_in_annotation=True`` once the pixels are known
to be clean (Burned In Annotation is then kept as YES in the output).

Input checks (``deidentify_bytes``): pydicom reads a truncated file without complaint (a
short last value, a dropped last element, a lost undefined-length element), so the bytes are
first walked here, headers, lengths, items and delimiters, inflating a deflated data set, and
must be consumed exactly; then every value is decoded, and the data set must have its SOP
Class and Instance UIDs and, for an image storage class, its pixel data (a cut exactly
between two elements is otherwise a well-formed shorter file). Any failure is a
``ValidationError`` with a one-line message.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import io
import re
import struct
import zlib
from collections.abc import Callable

import pydicom
from pydicom.datadict import DicomDictionary, dictionary_VR, mask_match
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from hdhub.errors import ValidationError
from hdhub.privacy import _ps315_profile as profile

__all__ = ["BurnedInAnnotationError", "DicomDeidentifier"]


class BurnedInAnnotationError(ValidationError):
    """The instance says its pixel data hold burned-in annotation, which is not cleaned here."""

    code = "burned_in_annotation"


# ---------------------------------------------------------------------------------------------
# The plan: the table read once into one (action, fallback) per tag.

_Entry = tuple[str, str]  # (action, the action a C falls back to)

# The compound actions, read as the module docstring explains; a basic-profile C as X.
_RESOLVE = {"X": "X", "Z": "Z", "D": "D", "K": "K", "U": "U", "C": "X"}
_RESOLVE |= {"X/Z": "Z", "X/Z/D": "Z", "X/D": "D", "Z/D": "D", "X/Z/U*": "U"}

_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020
_PSEUDONYM: _Entry = ("P", "P")  # the patient pseudonym (see the module docstring)


def _plan(with_dates: bool) -> tuple[dict[int, _Entry], tuple[tuple[int, int, _Entry], ...]]:
    plan: dict[int, _Entry] = {}
    for tag, action in profile.BASIC_PROFILE.items():
        basic = _RESOLVE[action]
        option = profile.RETAIN_LONGITUDINAL_MODIFIED_DATES.get(tag) if with_dates else None
        plan[tag] = (option, basic) if option else (basic, basic)
    plan[_PATIENT_NAME] = plan[_PATIENT_ID] = _PSEUDONYM
    options = {(m, v): a for m, v, a in profile.RETAIN_LONGITUDINAL_MODIFIED_DATES_MASKED}
    masked = []
    for mask, value, action in profile.BASIC_PROFILE_MASKED:
        basic = _RESOLVE[action]
        option = options.get((mask, value)) if with_dates else None
        masked.append((mask, value, (option, basic) if option else (basic, basic)))
    if profile.PRIVATE_ATTRIBUTES != "X":  # the walk below removes odd groups outright
        raise RuntimeError(f"unexpected action {profile.PRIVATE_ATTRIBUTES} for private attributes")
    return plan, tuple(masked)


_BASIC_PLAN = _plan(with_dates=False)
_DATES_PLAN = _plan(with_dates=True)

# ---------------------------------------------------------------------------------------------
# Values.

_DUMMY_TEXT = "ANONYMIZED"
_FREE_TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
_DUMMY: dict[str, object] = {vr: _DUMMY_TEXT for vr in (*_FREE_TEXT_VRS, "CS")}
_DUMMY |= {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000D", "DS": "0", "IS": "0"}
_DUMMY |= {vr: 0 for vr in ("US", "SS", "UL", "SL", "SV", "UV", "AT", "US or SS", "US or SS or OW")}
_DUMMY |= {"FL": 0.0, "FD": 0.0}
_DUMMY |= {vr: bytes(8) for vr in _BYTES_VRS}

_DCM_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
}
_METHOD_BASIC = "PS3.15 E.1-1 Basic Application Confidentiality Profile"
_METHOD_DATES = "Retain Longitudinal Temporal Information Modified Dates"

_DT_RE = re.compile(r"(?P<date>[0-9]{8})(?P<rest>[0-9]{0,6}(?:\.[0-9]{1,6})?(?:[+-][0-9]{4})?)")
_PSEUDONYM_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?")
_MAX_SHIFT_DAYS = 36_500


def _shift_da(value: str, days: int) -> str | None:
    """A DA value shifted by ``days``, or None when it is not one exact date."""
    text = value.strip()
    if len(text) == 10 and text[4] == text[7] == ".":  # ACR-NEMA YYYY.MM.DD
        text = text[:4] + text[5:7] + text[8:]
    if len(text) != 8 or not text.isdecimal():
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _shift_dt(value: str, days: int) -> str | None:
    """A DT value with its date part shifted by ``days`` (time and UTC offset kept), or None."""
    match = _DT_RE.fullmatch(value.strip())
    if match is None:
        return None  # not a DT, or only a year or a month: no exact whole-day shift
    date = _shift_da(match["date"], days)
    return None if date is None else date + match["rest"]


# ---------------------------------------------------------------------------------------------
# Structure check: pydicom reads a truncated file silently (a short last value, a dropped
# last element), so the bytes are walked first and must be consumed exactly.

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
    b"UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_MAX_DEPTH = 64
_IMPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"})


class _Malformed(Exception):
    pass


def _need(buf: bytes, pos: int, size: int, limit: int, what: str) -> None:
    if pos + size > limit:
        raise _Malformed(f"truncated: {what} at byte {pos} runs past the end")


class _Walker:
    """Walks a data set's encoding: headers, lengths, items and delimiters."""

    def __init__(self, buf: bytes, implicit: bool, little: bool) -> None:
        self.buf, self.implicit = buf, implicit
        self.endian = "<" if little else ">"

    def dataset(self, pos: int, limit: int, until_delimiter: bool, implicit: bool, depth: int) -> int:
        buf, e = self.buf, self.endian
        if depth > _MAX_DEPTH:
            raise _Malformed(f"sequences nested more than {_MAX_DEPTH} deep at byte {pos}")
        first = True
        while pos < limit:
            _need(buf, pos, 8, limit, "an element header")
            group, element = struct.unpack_from(e + "HH", buf, pos)
            tag = group << 16 | element
            if tag == _ITEM_END:
                if until_delimiter:
                    return pos + 8
                raise _Malformed(f"malformed: an item delimiter out of place at byte {pos}")
            if first and not implicit and buf[pos + 4 : pos + 6] not in _VRS:
                implicit = True  # an item in implicit VR inside explicit VR, as pydicom accepts
            first = False
            vr: bytes | None = None
            if implicit:
                (length,) = struct.unpack_from(e + "L", buf, pos + 4)
                pos += 8
            else:
                vr = buf[pos + 4 : pos + 6]
                if vr in _LONG_VRS:
                    _need(buf, pos, 12, limit, "an element header")
                    (length,) = struct.unpack_from(e + "L", buf, pos + 8)
                    pos += 12
                elif vr in _VRS:
                    (length,) = struct.unpack_from(e + "H", buf, pos + 6)
                    pos += 8
                else:
                    raise _Malformed(f"malformed: invalid VR {vr!r} at byte {pos + 4}")
            if length == _UNDEFINED:
                if vr == b"UN":  # PS3.5 6.2.2: a sequence in implicit VR little endian
                    pos = _Walker(buf, True, True).sequence(pos, None, limit, depth + 1)
                elif self._is_sequence(tag, vr, pos, limit):
                    pos = self.sequence(pos, None, limit, depth + 1, implicit)
                elif tag == 0x7FE00010 or vr in (b"OB", b"OW", None):
                    pos = self.fragments(pos, limit)
                else:
                    raise _Malformed(f"malformed: undefined length on ({group:04X},{element:04X})")
                continue
            _need(buf, pos, length, limit, f"the value of ({group:04X},{element:04X})")
            if vr == b"SQ" or (vr is None and self._is_sequence(tag, vr, pos, pos + length)):
                self.sequence(pos, pos + length, limit, depth + 1, implicit)
            pos += length
        if until_delimiter:
            raise _Malformed(f"truncated: an item has no delimiter before byte {limit}")
        return pos

    def _is_sequence(self, tag: int, vr: bytes | None, pos: int, limit: int) -> bool:
        if vr is not None:
            return vr == b"SQ"
        if tag & 0x00010000 == 0:  # public: the dictionary knows (for implicit VR)
            try:
                return dictionary_VR(tag) == "SQ"
            except KeyError:
                pass
        if pos + 4 > limit:
            return False
        group, element = struct.unpack_from(self.endian + "HH", self.buf, pos)
        return (group << 16 | element) == _ITEM

    def sequence(
        self, pos: int, end: int | None, limit: int, depth: int, implicit: bool | None = None
    ) -> int:
        buf, e = self.buf, self.endian
        implicit = self.implicit if implicit is None else implicit
        stop = limit if end is None else end
        while end is None or pos < end:
            _need(buf, pos, 8, stop, "a sequence item")
            group, element, length = struct.unpack_from(e + "HHL", buf, pos)
            tag = group << 16 | element
            pos += 8
            if tag == _SEQUENCE_END and end is None:
                return pos
            if tag != _ITEM:
                raise _Malformed(f"malformed: expected a sequence item at byte {pos - 8}")
            if length == _UNDEFINED:
                pos = self.dataset(pos, stop, True, implicit, depth)
            else:
                _need(buf, pos, length, stop, "a sequence item")
                self.dataset(pos, pos + length, False, implicit, depth)
                pos += length
        return pos

    def fragments(self, pos: int, limit: int) -> int:
        buf, e = self.buf, self.endian
        while True:
            _need(buf, pos, 8, limit, "an encapsulated fragment")
            group, element, length = struct.unpack_from(e + "HHL", buf, pos)
            tag = group << 16 | element
            pos += 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM or length == _UNDEFINED:
                raise _Malformed(f"malformed: expected an encapsulated fragment at byte {pos - 8}")
            _need(buf, pos, length, limit, "an encapsulated fragment")
            pos += length


def _check_part10(raw: bytes) -> None:
    """Raise _Malformed unless ``raw`` is a complete, well-formed DICOM Part 10 file."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise _Malformed("not a DICOM Part 10 file (no 'DICM' prefix after the 128-byte preamble)")
    pos, limit, syntax = 132, len(raw), None
    while pos + 2 <= limit and raw[pos : pos + 2] == b"\x02\x00":  # file meta: explicit VR LE
        _need(raw, pos, 8, limit, "a file meta element header")
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            _need(raw, pos, 12, limit, "a file meta element header")
            (length,) = struct.unpack_from("<L", raw, pos + 8)
            start = pos + 12
        elif vr in _VRS:
            (length,) = struct.unpack_from("<H", raw, pos + 6)
            start = pos + 8
        else:
            raise _Malformed(f"malformed: invalid VR {vr!r} in the file meta at byte {pos + 4}")
        _need(raw, start, length, limit, "a file meta value")
        if raw[pos + 2 : pos + 4] == b"\x10\x00":  # (0002,0010) Transfer Syntax UID
            syntax = raw[start : start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + length
    if syntax is None:
        raise _Malformed("malformed: no Transfer Syntax UID in the file meta information")
    implicit = syntax == _IMPLICIT_LE
    if syntax not in _DEFLATED:
        _Walker(raw, implicit, little=syntax != _EXPLICIT_BE).dataset(pos, limit, False, implicit, 0)
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw[pos:])
    except zlib.error as exc:
        raise _Malformed(f"malformed: the deflated data set does not inflate ({exc})") from None
    if not inflater.eof:
        raise _Malformed("truncated: the deflated data set ends early")
    try:
        _Walker(body, False, True).dataset(0, len(body), False, False, 0)
    except _Malformed as exc:
        raise _Malformed(f"{exc} of the inflated data set") from None


# ---------------------------------------------------------------------------------------------


class DicomDeidentifier:
    """De-identifies the DICOM instances of one patient for one project's extract.

    ``uid_key``: the project's UID key (at least 16 bytes). ``date_shift_days``: the patient's
    whole-day shift, which turns on the Retain Longitudinal Temporal Information with
    Modified Dates Option; None applies the basic profile alone. ``patient_pseudonym``: the
    patient's name and ID in the extract (1-64 of letters, digits, space, ``._-``).
    ``allow_burned_in_annotation``: de-identify instances whose Burned In Annotation is YES
    instead of raising :class:`BurnedInAnnotationError`. Instances are immutable and safe to
    share between threads.
    """

    def __init__(
        self,
        uid_key: bytes,
        *,
        date_shift_days: int | None,
        patient_pseudonym: str,
        allow_burned_in_annotation: bool = False,
    ) -> None:
        if not isinstance(uid_key, bytes) or len(uid_key) < 16:
            raise ValidationError("uid_key: at least 16 bytes")
        if date_shift_days is not None and (
            isinstance(date_shift_days, bool)
            or not isinstance(date_shift_days, int)
            or not 0 < abs(date_shift_days) <= _MAX_SHIFT_DAYS
        ):
            raise ValidationError(
                f"date_shift_days: a non-zero whole number of days up to ±{_MAX_SHIFT_DAYS}, or None"
            )
        if not isinstance(patient_pseudonym, str) or not _PSEUDONYM_RE.fullmatch(patient_pseudonym):
            raise ValidationError("patient_pseudonym: 1 to 64 of letters, digits, space, '.', '_', '-'")
        self._key = uid_key
        self._days = date_shift_days
        self._pseudonym = patient_pseudonym
        self._allow_burned_in = allow_burned_in_annotation
        self._plan, self._masked = _DATES_PLAN if date_shift_days is not None else _BASIC_PLAN
        self._unlisted_date: _Entry = ("C", "D") if date_shift_days is not None else ("D", "D")

    @property
    def date_shift_days(self) -> int | None:
        """The whole-day shift applied to dates, or None under the basic profile alone."""
        return self._days

    def new_uid(self, uid: str) -> str:
        """The UID that replaces ``uid`` in this project: ``2.25.<128 bits of HMAC-SHA-256>``."""
        digest = hmac.new(self._key, uid.encode("utf-8", "backslashreplace"), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def deidentify(self, ds: Dataset) -> Dataset:
        """A de-identified copy of ``ds`` (``ds`` itself is left unchanged).

        Raises :class:`BurnedInAnnotationError` when Burned In Annotation is YES (unless
        allowed) and ``ValidationError`` when the instance has no SOP Instance UID. If ``ds``
        has file meta information, it is rebuilt for the new SOP Instance UID.
        """
        self._check_burned_in(ds)
        out = copy.deepcopy(ds)
        self._deidentify_in_place(out)
        return out

    def deidentify_bytes(self, raw: bytes) -> bytes:
        """De-identify a DICOM Part 10 file; the result is a Part 10 file, same transfer syntax.

        Raises ``ValidationError`` with a one-line message for input that is not a complete,
        well-formed Part 10 file (and :class:`BurnedInAnnotationError`, see the class).
        """
        try:
            _check_part10(raw)
        except _Malformed as exc:
            raise ValidationError(f"DICOM de-identification: {exc}") from None
        try:
            ds = pydicom.dcmread(io.BytesIO(raw))
            for _ in ds.file_meta.iterall():  # decode every value now: errors surface here
                pass
            for _ in ds.iterall():
                pass
        except Exception as exc:  # pydicom fails in many ways on bad input; all mean "invalid"
            raise ValidationError(f"DICOM de-identification: unreadable DICOM ({_one_line(exc)})") from None
        try:
            _check_complete(ds)
            self._check_burned_in(ds)
            self._deidentify_in_place(ds)
        except ValidationError:
            raise
        except Exception as exc:  # a value of the wrong type for its attribute, from damaged input
            raise ValidationError(f"DICOM de-identification: invalid DICOM ({_one_line(exc)})") from None
        out = io.BytesIO()
        try:
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
        except Exception as exc:  # a value the input made unwritable (a wrong VR, a bad charset)
            raise ValidationError(
                f"DICOM de-identification: the result cannot be encoded ({_one_line(exc)})"
            ) from None
        return out.getvalue()

    # -- the walk -----------------------------------------------------------------------------

    def _check_burned_in(self, ds: Dataset) -> None:
        value = ds.get("BurnedInAnnotation")
        if not self._allow_burned_in and isinstance(value, str) and value.strip().upper() == "YES":
            raise BurnedInAnnotationError(
                "DICOM de-identification: Burned In Annotation is YES; the pixel data may identify "
                "the patient and are not cleaned by this profile"
            )

    def _deidentify_in_place(self, ds: Dataset) -> None:
        if _uid_value(ds, 0x00080018) is None:
            raise ValidationError("DICOM de-identification: the instance has no valid SOP Instance UID")
        meta: FileMetaDataset | None = getattr(ds, "file_meta", None)
        self._clean(ds, dummy=False)
        new_sop = ds.SOPInstanceUID
        self._mark(ds)
        if meta is not None:
            new_meta = FileMetaDataset()
            sop_class = _uid_value(ds, 0x00080016) or _uid_value(meta, 0x00020002)
            if sop_class:
                new_meta.MediaStorageSOPClassUID = sop_class
            new_meta.MediaStorageSOPInstanceUID = new_sop
            if "TransferSyntaxUID" in meta:
                new_meta.TransferSyntaxUID = meta.TransferSyntaxUID
            ds.file_meta = new_meta
        if getattr(ds, "preamble", None) is not None:
            ds.preamble = None  # written as 128 zero bytes

    def _clean(self, ds: Dataset, dummy: bool) -> None:
        plan, masked = self._plan, self._masked
        for tag in list(ds.keys()):
            group = tag >> 16
            if group & 1 or tag & 0xFFFF == 0:  # private (odd group), or a stale group length
                del ds[tag]
                continue
            entry = plan.get(tag)
            if entry is None and group & 0xFF00 in (0x5000, 0x6000):
                entry = next((e for m, v, e in masked if tag & m == v), None)
            if entry is not None and entry[0] == "X":
                del ds[tag]
                continue
            if entry is None and tag not in DicomDictionary and mask_match(tag) is None:
                del ds[tag]  # not a standard attribute: its meaning cannot be judged
                continue
            elem = ds[tag]
            if entry is None:
                if elem.VR == "SQ":
                    self._items(elem, dummy)
                elif dummy and elem.VR in _FREE_TEXT_VRS:
                    elem.value = _DUMMY_TEXT
                elif dummy and elem.VR in ("DA", "DT", "TM"):
                    self._apply(ds, elem, self._unlisted_date, dummy)
                continue
            self._apply(ds, elem, entry, dummy)

    def _items(self, elem: DataElement, dummy: bool) -> None:
        for item in elem.value or ():
            self._clean(item, dummy)

    def _apply(self, ds: Dataset, elem: DataElement, entry: _Entry, dummy: bool) -> None:
        action, fallback = entry
        vr = elem.VR
        if action == "C":
            if vr in ("DA", "DT", "TM") and self._days is not None:
                shifted = self._shift(elem.value, vr)
                if shifted is not None:
                    elem.value = shifted
                    return
            action = fallback
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = empty_value_for_VR(vr)
        elif action == "U" or (action == "D" and vr == "UI"):
            if vr == "SQ":
                self._items(elem, dummy)
            elif vr in ("UI", "UN"):
                self._remap(elem)
            else:
                elem.value = None
        elif action == "D":
            if vr == "SQ":
                self._items(elem, dummy=True)
            else:
                elem.value = _DUMMY.get(vr)
        elif action == "P":
            elem.value = self._pseudonym
        elif vr == "SQ":  # K
            self._items(elem, dummy)

    def _remap(self, elem: DataElement) -> None:
        value = elem.value
        if isinstance(value, bytes):  # UN: a UID the dictionary does not know
            text = value.rstrip(b"\x00 ").decode("ascii", "backslashreplace")
            new = "\\".join(self.new_uid(v.strip()) if v.strip() else "" for v in text.split("\\"))
            encoded = new.encode("ascii")
            elem.value = encoded + b"\x00" * (len(encoded) % 2)
        elif isinstance(value, MultiValue | list | tuple):
            elem.value = [self.new_uid(str(v).strip()) if str(v).strip() else "" for v in value]
        elif value:
            elem.value = self.new_uid(str(value).strip())

    def _shift(self, value: object, vr: str) -> object | None:
        """``value`` with its dates shifted, or None if any of them cannot be."""
        if vr == "TM" or value is None or value == "":
            return value  # a whole-day shift keeps times of day
        shift: Callable[[str, int], str | None] = _shift_da if vr == "DA" else _shift_dt
        days = self._days
        assert days is not None
        if isinstance(value, MultiValue | list | tuple):
            out = [shift(str(v), days) if str(v) else "" for v in value]
            return None if any(v is None for v in out) else out
        return shift(str(value), days)

    def _mark(self, ds: Dataset) -> None:
        methods = [_METHOD_BASIC] + ([_METHOD_DATES] if self._days is not None else [])
        codes = ["113100"] + (["113107"] if self._days is not None else [])
        earlier = ds.get("DeidentificationMethod")
        if earlier:
            earlier_list = [str(v) for v in (earlier if isinstance(earlier, MultiValue) else [earlier])]
            methods = [m for m in earlier_list if m not in methods] + methods
        items = list(ds.get("DeidentificationMethodCodeSequence") or [])
        have = {(item.get("CodingSchemeDesignator"), item.get("CodeValue")) for item in items}
        for code in codes:
            if ("DCM", code) not in have:
                item = Dataset()
                item.CodeValue = code
                item.CodingSchemeDesignator = "DCM"
                item.CodeMeaning = _DCM_CODES[code]
                items.append(item)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self._days is not None else "REMOVED"


_PIXEL_DATA_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)


def _check_complete(ds: Dataset) -> None:
    """Refuse a data set cut short between two elements, which the encoding cannot show.

    A Part 10 file has no overall length: a cut exactly between two top-level elements is a
    well-formed, shorter file. The SOP Common UIDs come early and an image's pixel data last,
    so requiring both catches such a cut in an image.
    """
    sop_class = _uid_value(ds, 0x00080016)
    if sop_class is None or _uid_value(ds, 0x00080018) is None:
        raise ValidationError(
            "DICOM de-identification: the data set has no valid SOP Class UID or SOP Instance UID"
        )
    name = UID(sop_class).name
    if "Image Storage" in name and not any(tag in ds for tag in _PIXEL_DATA_TAGS):
        raise ValidationError(f"DICOM de-identification: a {name} without pixel data (truncated?)")


def _uid_value(ds: Dataset, tag: int) -> str | None:
    """The value of a single-valued UI attribute, or None if absent, empty or not a UID."""
    elem = ds.get(tag)  # by tag: the element, not its value
    if elem is None or elem.VR != "UI" or not isinstance(elem.value, str) or not elem.value.strip():
        return None
    return elem.value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
