"""The qcow2 header and its header extensions, and the checks made when an image is opened.

:func:`parse_qcow2_header` takes bytes and returns a :class:`Qcow2Header`
(field names follow the spec); :func:`check_supported` refuses what the reader
must not read; :func:`read_l1_table` and :func:`read_backing_name` fetch the
two things the header points at, bounds-checked.  The data path is in
:mod:`virtkit.boot.image.qcow2`.

Layout of the first cluster::

    0        72 (v2) / header_length (v3)                        cluster_size
    |header  |ext type|len|data..pad|ext ...|type 0|  backing file name  |

References:
    QEMU ``docs/interop/qcow2.txt``: "Header", "Additional fields",
    "Header extensions", "Feature name table".
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field

from virtkit._binstruct import Record, unpack_from
from virtkit._streams import ByteSource
from virtkit.errors import CorruptStructure, NotThisFormat, UnsupportedFeature
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "COMPRESSION_NAMES",
    "INCOMPAT_COMPRESSION",
    "INCOMPAT_CORRUPT",
    "INCOMPAT_DATA_FILE",
    "INCOMPAT_DIRTY",
    "INCOMPAT_EXTL2",
    "QCOW2_MAGIC",
    "Qcow2Header",
    "be64_array",
    "check_supported",
    "guest_text",
    "parse_qcow2_header",
    "read_backing_name",
    "read_l1_table",
]

QCOW2_MAGIC = b"QFI\xfb"  # qcow2.txt "Header": magic "QFI\xfb"
MIN_CLUSTER_BITS = 9  # qcow2.txt: cluster_bits "must not be less than 9"
MAX_CLUSTER_BITS = 21  # qcow2.txt: qemu's implementation limit of 2 MB clusters
MIN_EXTL2_CLUSTER_BITS = 14  # qcow2.txt: extended L2 entries need cluster_bits >= 14
V2_HEADER_LENGTH = 72  # qcow2.txt: "For version 2, the header is exactly 72 bytes"
V3_MIN_HEADER_LENGTH = 104  # qcow2.txt: "For version 3 ... at least 104 bytes"
MAX_BACKING_FILE_SIZE = 1023  # qcow2.txt: backing_file_size "must not be longer than 1023 bytes"
MAX_REFCOUNT_ORDER = 6  # qcow2.txt: refcount_order "may not exceed 6"

# incompatible_features bits (qcow2.txt, header bytes 72-79)
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
# compatible_features bits (bytes 80-87)
COMPAT_LAZY_REFCOUNTS = 1 << 0
# autoclear_features bits (bytes 88-95)
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

_KNOWN_FEATURE_NAMES = {
    (0, 0): "dirty bit",
    (0, 1): "corrupt bit",
    (0, 2): "external data file",
    (0, 3): "compression type",
    (0, 4): "extended L2 entries",
    (1, 0): "lazy refcounts",
    (2, 0): "bitmaps",
    (2, 1): "raw external data",
}

# Header extension types (qcow2.txt, "Header extensions").
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_DATA_FILE = 0x44415441
FEATURE_TABLE_ENTRY = 48  # qcow2.txt "Feature name table": 1 + 1 + 46 bytes

COMPRESSION_NAMES = {0: "zlib", 1: "zstd"}  # qcow2.txt header byte 104
CRYPT_NAMES = {1: "AES", 2: "LUKS"}  # qcow2.txt crypt_method
QCOW_MAX_L1_SIZE = 32 << 20  # qcow2.txt: qemu's implementation limit of a 32 MB L1 table

_SWAP = sys.byteorder == "little"  # tables are big-endian on disk

QCOW2_HEADER = Record(
    "qcow2 header",
    ">",
    [
        ("magic", "4s"),
        ("version", "I"),
        ("backing_file_offset", "Q"),
        ("backing_file_size", "I"),
        ("cluster_bits", "I"),
        ("size", "Q"),
        ("crypt_method", "I"),
        ("l1_size", "I"),
        ("l1_table_offset", "Q"),
        ("refcount_table_offset", "Q"),
        ("refcount_table_clusters", "I"),
        ("nb_snapshots", "I"),
        ("snapshots_offset", "Q"),
    ],
)
QCOW2_HEADER_V3 = Record(
    "qcow2 version 3 header fields",
    ">",
    [
        ("incompatible_features", "Q"),
        ("compatible_features", "Q"),
        ("autoclear_features", "Q"),
        ("refcount_order", "I"),
        ("header_length", "I"),
    ],
)


@dataclass
class Qcow2Header:
    """The qcow2 header fields (spec names) plus what the header extensions say.

    ``backing_file_name`` is not filled here: the name may live outside the
    first cluster, so the reader fetches it (see ``backing_file_offset``).
    """

    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    compression_type: int = 0
    backing_format: bytes | None = None
    data_file_name: bytes | None = None
    has_bitmaps_extension: bool = False
    has_crypto_header: bool = False
    feature_names: dict[tuple[int, int], str] = field(default_factory=dict)
    unknown_extensions: list[int] = field(default_factory=list)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def extended_l2(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_EXTL2)

    def feature_name(self, kind: int, bit: int) -> str:
        """Name of feature ``bit`` of bitmap ``kind`` (0 incompatible, 1 compatible, 2 autoclear).

        Names from the image's feature name table are guest text; the caller
        sanitises before showing them.
        """
        return self.feature_names.get((kind, bit)) or _KNOWN_FEATURE_NAMES.get((kind, bit), f"bit {bit}")


def parse_qcow2_header(buf: bytes, *, name: str) -> Qcow2Header:
    """Parse the header and header extensions from the start of a qcow2 file.

    Args:
        buf: the first cluster of the file (less if the file is shorter).  Only
            the first 112 bytes are needed to learn the cluster size; callers
            read ``min(cluster_size, file size)`` bytes once they know it.
        name: the image, for messages.

    Returns:
        the header.

    Raises:
        NotThisFormat: no qcow2 magic.
        UnsupportedFeature: a version other than 2 or 3.
        CorruptStructure: impossible field values (cluster_bits outside 9..21,
            header_length out of range, an extension overrunning the cluster).
    """
    what = f"qcow2 header of {name}"
    if len(buf) < 8 or buf[:4] != QCOW2_MAGIC:
        raise NotThisFormat(f"{name}: not a qcow2 image (no QFI\\xfb magic)")
    h = QCOW2_HEADER.parse(buf, 0, where=name)
    if h.version not in (2, 3):
        raise UnsupportedFeature(f"{name}: qcow2 version {h.version} is not supported (only versions 2 and 3)")
    if not MIN_CLUSTER_BITS <= h.cluster_bits <= MAX_CLUSTER_BITS:
        raise CorruptStructure(
            what,
            f"cluster_bits {h.cluster_bits} is outside {MIN_CLUSTER_BITS}..{MAX_CLUSTER_BITS}",
            offset=20,
        )
    fields = h._asdict()
    del fields["magic"]
    hdr = Qcow2Header(**fields)
    if h.version >= 3:
        v3 = QCOW2_HEADER_V3.parse(buf, V2_HEADER_LENGTH, where=name)
        hdr.incompatible_features = v3.incompatible_features
        hdr.compatible_features = v3.compatible_features
        hdr.autoclear_features = v3.autoclear_features
        hdr.refcount_order = v3.refcount_order
        hdr.header_length = v3.header_length
        if v3.header_length < V3_MIN_HEADER_LENGTH:
            raise CorruptStructure(
                what, f"header_length {v3.header_length} is below {V3_MIN_HEADER_LENGTH}", offset=100
            )
        if v3.header_length > hdr.cluster_size:
            raise CorruptStructure(
                what, f"header_length {v3.header_length} exceeds the cluster size {hdr.cluster_size}", offset=100
            )
        if v3.refcount_order > MAX_REFCOUNT_ORDER:
            raise CorruptStructure(what, f"refcount_order {v3.refcount_order} exceeds {MAX_REFCOUNT_ORDER}", offset=96)
        if v3.header_length > V3_MIN_HEADER_LENGTH:
            (hdr.compression_type,) = unpack_from(">B", buf, V3_MIN_HEADER_LENGTH, what)
    _parse_extensions(buf, hdr, name)
    return hdr


def _parse_extensions(buf: bytes, hdr: Qcow2Header, name: str) -> None:
    """Walk the header extensions; each advances at least 8 bytes, so the walk ends."""
    pos = hdr.header_length
    end = hdr.cluster_size
    if hdr.backing_file_offset and hdr.backing_file_offset < end:
        end = hdr.backing_file_offset  # the name follows the extension area
    end = min(end, len(buf))  # a file shorter than one cluster: extensions must fit in it
    while pos + 8 <= end:
        ext_type, ext_len = unpack_from(">II", buf, pos, f"qcow2 header extension of {name}")
        if ext_type == EXT_END:
            return
        data_at = pos + 8
        if ext_len > end - data_at:
            raise CorruptStructure(
                f"qcow2 header extension {ext_type:#010x} of {name}",
                f"length {ext_len} runs past the header area ending at {end:#x}",
                offset=pos,
            )
        data = buf[data_at : data_at + ext_len]
        if ext_type == EXT_BACKING_FORMAT:
            hdr.backing_format = data
        elif ext_type == EXT_DATA_FILE:
            hdr.data_file_name = data
        elif ext_type == EXT_BITMAPS:
            hdr.has_bitmaps_extension = True
        elif ext_type == EXT_CRYPTO_HEADER:
            hdr.has_crypto_header = True
        elif ext_type == EXT_FEATURE_TABLE:
            for i in range(0, ext_len - FEATURE_TABLE_ENTRY + 1, FEATURE_TABLE_ENTRY):
                kind, bit = data[i], data[i + 1]
                label = data[i + 2 : i + FEATURE_TABLE_ENTRY].split(b"\0", 1)[0]
                if kind <= 2 and bit < 64:
                    hdr.feature_names[(kind, bit)] = label.decode("utf-8", "replace")
        else:
            hdr.unknown_extensions.append(ext_type)
        pos = data_at + ((ext_len + 7) & ~7)
    # Reaching the end of the area without a terminator is tolerated (QEMU too).


def be64_array(data: bytes) -> array[int]:
    """Big-endian 64-bit table entries as a native array (one C-level byteswap)."""
    table = array("Q")
    table.frombytes(data)
    if _SWAP:
        table.byteswap()
    return table


def guest_text(raw: bytes) -> str:
    """Guest bytes as text safe for a terminal or a log."""
    return sanitize_text(raw.decode("utf-8", "surrogateescape"))


def check_supported(hdr: Qcow2Header, name: str) -> None:
    """Refuse what the reader cannot or must not read.

    Raises:
        UnsupportedFeature: encryption, an external data file, unknown
            incompatible features, an unknown compression type.
        CorruptStructure: contradictory compression fields, extended L2
            entries with clusters below 16 KiB.
    """
    if hdr.crypt_method:
        method = CRYPT_NAMES.get(hdr.crypt_method, f"method {hdr.crypt_method}")
        raise UnsupportedFeature(
            f"{name}: encrypted qcow2 (AES/LUKS) is not supported (this one uses {method}); "
            f"decrypt it first with qemu-img convert"
        )
    known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2
    unknown = hdr.incompatible_features & ~known
    if unknown:
        bits = [b for b in range(64) if unknown >> b & 1]
        names = ", ".join(
            f"bit {b} ({sanitize_text(hdr.feature_names[(0, b)])})" if (0, b) in hdr.feature_names else f"bit {b}"
            for b in bits
        )
        raise UnsupportedFeature(f"{name}: qcow2 image uses unknown incompatible features: {names}")
    if hdr.incompatible_features & INCOMPAT_DATA_FILE:
        target = f" {guest_text(hdr.data_file_name)!r}" if hdr.data_file_name is not None else ""
        raise UnsupportedFeature(
            f"{name}: qcow2 image keeps its data in an external data file{target}, which virtkit does not read "
            f"(the path is guest-controlled); convert it with qemu-img convert -O qcow2"
        )
    has_type_bit = bool(hdr.incompatible_features & INCOMPAT_COMPRESSION)
    what = f"qcow2 header of {name}"
    if has_type_bit and hdr.compression_type == 0:
        raise CorruptStructure(what, "compression type bit set but compression_type is zlib (0)", offset=104)
    if not has_type_bit and hdr.compression_type != 0:
        raise CorruptStructure(
            what,
            "compression_type is non-zero without the compression type feature bit",
            offset=104,
            got=hdr.compression_type,
        )
    if hdr.compression_type not in COMPRESSION_NAMES:
        raise UnsupportedFeature(f"{name}: unknown qcow2 compression_type {hdr.compression_type}")
    if hdr.extended_l2 and hdr.cluster_bits < MIN_EXTL2_CLUSTER_BITS:
        raise CorruptStructure(
            what,
            f"extended L2 entries need clusters of at least {1 << MIN_EXTL2_CLUSTER_BITS} bytes",
            offset=20,
            got=hdr.cluster_size,
        )


def read_l1_table(file: ByteSource, hdr: Qcow2Header, limits: Limits) -> array[int]:
    """Read the part of the active L1 table that covers the virtual size.

    Raises:
        CorruptStructure: l1_size too small or over QEMU's limit, the table
            unaligned or past the end of the file.
        LimitExceeded: the table is larger than ``max_read``.
    """
    name = file.name
    what = f"qcow2 L1 table of {name}"
    entry_bytes = 8 << (1 if hdr.extended_l2 else 0)
    l2_span = hdr.cluster_size * (hdr.cluster_size // entry_bytes)  # bytes covered by one L2 table
    needed = -(-hdr.size // l2_span)
    if hdr.l1_size > QCOW_MAX_L1_SIZE // 8:
        raise CorruptStructure(
            what, f"l1_size {hdr.l1_size} exceeds the 32 MiB L1 table limit", offset=hdr.l1_table_offset
        )
    if hdr.l1_size < needed:
        raise CorruptStructure(
            what,
            f"l1_size is too small for the virtual size {hdr.size:#x}",
            offset=hdr.l1_table_offset,
            expected=needed,
            got=hdr.l1_size,
        )
    if needed == 0:
        return array("Q")
    if hdr.l1_table_offset & (hdr.cluster_size - 1):
        raise CorruptStructure(
            what, f"table offset is not aligned to the {hdr.cluster_size}-byte cluster size", offset=hdr.l1_table_offset
        )
    nbytes = limits.check("max_read", needed * 8, what)
    if hdr.l1_table_offset + nbytes > file.size:
        raise CorruptStructure(
            what, f"{needed} entries run past the end of the file ({file.size:#x})", offset=hdr.l1_table_offset
        )
    return be64_array(file.pread(hdr.l1_table_offset, nbytes))


def read_backing_name(file: ByteSource, hdr: Qcow2Header) -> bytes:
    """The backing file name as stored (guest-controlled bytes).

    Raises:
        CorruptStructure: longer than 1023 bytes or past the end of the file.
    """
    what = f"qcow2 backing file name of {file.name}"
    if hdr.backing_file_size > MAX_BACKING_FILE_SIZE:
        raise CorruptStructure(
            what, f"backing_file_size {hdr.backing_file_size} exceeds {MAX_BACKING_FILE_SIZE}", offset=16
        )
    if hdr.backing_file_offset + hdr.backing_file_size > file.size:
        raise CorruptStructure(what, "runs past the end of the file", offset=hdr.backing_file_offset)
    return file.pread(hdr.backing_file_offset, hdr.backing_file_size)
