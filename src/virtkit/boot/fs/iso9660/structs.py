"""iso9660 on-disk records: volume descriptors, directory records, dates.

Every directory record is validated before any field past its length byte is
believed (XSA-497's first finding was a record length that nobody checked):
it must hold the 33-byte header and its file identifier, and end in the
2048-byte sector it starts in.

References:
    ECMA-119 4th edition (= ISO 9660): 8.4 Primary Volume Descriptor, 8.5
    Supplementary Volume Descriptor, 8.3 terminator, 9.1 Directory Record,
    9.1.5 recording date, 9.1.6 file flags, 8.4.26.1 dates in the PVD.
    Joliet specification (Microsoft, 1995): escape sequences ``%/@``, ``%/C``, ``%/E``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from virtkit._binstruct import Record
from virtkit.errors import CorruptStructure

__all__ = [
    "DIR_RECORD",
    "FLAG_ASSOCIATED",
    "FLAG_DIRECTORY",
    "FLAG_MULTI_EXTENT",
    "JOLIET_ESCAPES",
    "SECTOR",
    "VD_HEADER",
    "VOLUME_DESCRIPTOR",
    "DirRecord",
    "parse_dir_record",
    "record_date",
]

SECTOR = 2048  # ECMA-119 6.1.2: logical sector size
SYSTEM_AREA_SECTORS = 16  # ECMA-119 6.2.1: volume descriptors start at sector 16
STANDARD_ID = b"CD001"  # ECMA-119 8.1.2
VD_PRIMARY = 1  # ECMA-119 8.1.1 volume descriptor types
VD_SUPPLEMENTARY = 2
VD_TERMINATOR = 255
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")  # UCS-2 levels 1, 2, 3

FLAG_HIDDEN = 0x01  # ECMA-119 9.1.6 file flags
FLAG_DIRECTORY = 0x02
FLAG_ASSOCIATED = 0x04
FLAG_MULTI_EXTENT = 0x80
DIR_RECORD_HEADER = 33  # ECMA-119 9.1: bytes before the file identifier

VD_HEADER = Record("iso9660 volume descriptor header", "<", [("type", "B"), ("id", "5s"), ("version", "B")])

# ECMA-119 8.4 (PVD) / 8.5 (SVD): both-endian fields keep their little-endian half
# and skip the big-endian copy.
VOLUME_DESCRIPTOR = Record(
    "iso9660 volume descriptor",
    "<",
    [
        ("type", "B"),
        ("id", "5s"),
        ("version", "B"),
        ("flags", "B"),  # SVD only; unused in the PVD
        ("system_id", "32s"),
        ("volume_id", "32s"),
        ("_unused2", "8s"),
        ("volume_space_size", "I"),
        ("_volume_space_size_be", "4s"),
        ("escape_sequences", "32s"),  # SVD only
        ("volume_set_size", "H"),
        ("_volume_set_size_be", "2s"),
        ("volume_sequence_number", "H"),
        ("_volume_sequence_number_be", "2s"),
        ("logical_block_size", "H"),
        ("_logical_block_size_be", "2s"),
        ("path_table_size", "I"),
        ("_path_table_size_be", "4s"),
        ("type_l_path_table", "I"),
        ("opt_type_l_path_table", "I"),
        ("type_m_path_table", "4s"),
        ("opt_type_m_path_table", "4s"),
        ("root_directory_record", "34s"),
        ("volume_set_id", "128s"),
        ("publisher_id", "128s"),
        ("preparer_id", "128s"),
        ("application_id", "128s"),
        ("copyright_file_id", "37s"),
        ("abstract_file_id", "37s"),
        ("bibliographic_file_id", "37s"),
        ("volume_creation_date", "17s"),
        ("volume_modification_date", "17s"),
        ("volume_expiration_date", "17s"),
        ("volume_effective_date", "17s"),
        ("file_structure_version", "B"),
    ],
)

DIR_RECORD = Record(
    "iso9660 directory record",
    "<",
    [
        ("length", "B"),
        ("ext_attr_length", "B"),
        ("extent", "I"),
        ("_extent_be", "4s"),
        ("data_length", "I"),
        ("_data_length_be", "4s"),
        ("recording_date", "7s"),
        ("file_flags", "B"),
        ("file_unit_size", "B"),
        ("interleave_gap_size", "B"),
        ("volume_sequence_number", "H"),
        ("_volume_sequence_number_be", "2s"),
        ("file_identifier_length", "B"),
    ],
)


@dataclass(frozen=True, slots=True)
class DirRecord:
    """A validated directory record.

    Attributes:
        offset: byte offset of the record inside its directory's data.
        length: LEN_DR.
        extent: location of the extent (logical block).
        ext_attr_length: extended attribute record length (blocks before the data).
        data_length: bytes in this extent.
        flags: file flags.
        interleaved: file unit size or interleave gap set (not supported for reading).
        identifier: the raw file identifier bytes.
        system_use: the System Use area bytes (b"" if none).
        date: recording date as POSIX seconds, or None.
    """

    offset: int
    length: int
    extent: int
    ext_attr_length: int
    data_length: int
    flags: int
    interleaved: bool
    identifier: bytes
    system_use: bytes
    date: float | None

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & FLAG_DIRECTORY)

    @property
    def is_dot(self) -> bool:
        """The ``.`` (0x00) or ``..`` (0x01) record of a directory."""
        return self.identifier in (b"\x00", b"\x01")


def parse_dir_record(data: bytes, pos: int, *, susp_skip: int | None, where: str, base: int) -> DirRecord:
    """Validate and decode the directory record at ``data[pos]`` (its length byte is non-zero).

    Args:
        data: the directory's bytes.
        pos: where the record starts.
        susp_skip: SUSP ``LEN_SKP`` (bytes of the System Use area to skip), or None when
            SUSP is not in use (the System Use area is then ignored).
        where: the directory, for messages.
        base: volume byte offset of ``data[0]`` (for messages).

    Raises:
        CorruptStructure: the record is shorter than its header and identifier, it
            crosses the end of its sector or of the directory, or (SUSP in use) its
            System Use area would start past its end.
    """
    length = data[pos]
    what = f"iso9660 directory record in {where}"
    if length < DIR_RECORD_HEADER + 1:
        raise CorruptStructure(
            what, "record length is shorter than the header", offset=base + pos, expected=">= 34", got=length
        )
    if pos % SECTOR + length > SECTOR or pos + length > len(data):
        raise CorruptStructure(what, f"record of {length} bytes crosses the end of its sector", offset=base + pos)
    rec = DIR_RECORD.parse(data, pos, where=where)
    name_len = rec.file_identifier_length
    if name_len == 0 or DIR_RECORD_HEADER + name_len > length:
        raise CorruptStructure(
            what,
            f"file identifier of {name_len} bytes does not fit in a record of {length} bytes",
            offset=base + pos,
        )
    name_start = pos + DIR_RECORD_HEADER
    identifier = data[name_start : name_start + name_len]
    system_use = b""
    if susp_skip is not None:
        su_start = DIR_RECORD_HEADER + name_len + (1 - name_len % 2) + susp_skip  # padding byte after even names
        if su_start > length:  # XSA-497: "System Use length underflow"
            raise CorruptStructure(
                what,
                f"System Use area would start at byte {su_start}, past the end of the {length}-byte record",
                offset=base + pos,
            )
        system_use = data[pos + su_start : pos + length]
    return DirRecord(
        offset=pos,
        length=length,
        extent=rec.extent,
        ext_attr_length=rec.ext_attr_length,
        data_length=rec.data_length,
        flags=rec.file_flags,
        interleaved=bool(rec.file_unit_size or rec.interleave_gap_size),
        identifier=identifier,
        system_use=system_use,
        date=record_date(rec.recording_date),
    )


def record_date(raw: bytes) -> float | None:
    """ECMA-119 9.1.5 (and RRIP TF short form): 7 bytes -> POSIX seconds, or None if unset/invalid.

    Bytes: years since 1900, month, day, hour, minute, second, offset from GMT in
    15-minute intervals (signed).
    """
    if len(raw) < 7 or not any(raw[:6]):
        return None
    year, month, day, hour, minute, second = 1900 + raw[0], raw[1], raw[2], raw[3], raw[4], raw[5]
    offset = raw[6] - 256 if raw[6] > 127 else raw[6]
    return _posix((year, month, day, hour, minute, second), offset)


def digits_date(raw: bytes) -> float | None:
    """ECMA-119 8.4.26.1 (and RRIP TF long form): 16 ASCII digits + GMT offset byte."""
    if len(raw) < 17 or not raw[:16].isdigit():
        return None
    text = raw[:16].decode("ascii")
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second, hundredths = int(text[8:10]), int(text[10:12]), int(text[12:14]), int(text[14:16])
    if year == 0:
        return None
    offset = raw[16] - 256 if raw[16] > 127 else raw[16]
    t = _posix((year, month, day, hour, minute, second), offset)
    return None if t is None else t + hundredths / 100


def _posix(fields: tuple[int, int, int, int, int, int], offset: int) -> float | None:
    year, month, day, hour, minute, second = fields
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 59 or not -48 <= offset <= 52:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset * 900)
