"""System Use Sharing Protocol (SUSP) entries and the Rock Ridge (RRIP) ones we read.

This is where Xen's iso9660 reader had XSA-497.  Every length here is
validated before it is used:

* an entry shorter than its 4-byte header (a zero length would loop forever)
  or longer than what is left of its area is :class:`CorruptStructure`
  (trailing zero padding is allowed);
* an NM entry shorter than 5 bytes (its name length would underflow) is
  corrupt, and the name built from all NM parts is bounded by
  ``Limits.max_name_bytes``;
* SL component records must fit inside their entry;
* a CE continuation area must lie inside one logical block and inside the
  volume; continuation areas are followed with a visited set and a counter
  bounded by ``Limits.max_chain_length``.

References:
    IEEE P1281 SUSP 1.12: 5.1 CE, 5.3 SP, 5.4 ST, 5.5 ER.
    IEEE P1282 RRIP 1.12: 4.1.1 PX, 4.1.3 SL (component flags), 4.1.4 NM,
    4.1.5 CL/PL/RE (deep directory relocation), 4.1.6 TF; zisofs "ZF" (mkzftree).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import decode_name
from virtkit.boot.fs.iso9660.structs import digits_date, record_date
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

__all__ = ["RockRidge", "parse_system_use", "sp_skip"]

SUSP_HEADER = 4  # signature (2), length (1), version (1)
SP_CHECK = b"\xbe\xef"  # SUSP 5.3: check bytes
NM_CONTINUE, NM_CURRENT, NM_PARENT = 0x01, 0x02, 0x04  # RRIP 4.1.4
SL_CONTINUE, SL_CURRENT, SL_PARENT, SL_ROOT, SL_VOLROOT, SL_HOST = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20  # RRIP 4.1.3.1
TF_CREATION, TF_MODIFY, TF_ACCESS, TF_ATTRIBUTES = 0x01, 0x02, 0x04, 0x08  # RRIP 4.1.6
TF_LONG_FORM = 0x80
TF_STAMPS = 7  # creation, modify, access, attributes, backup, expiration, effective


@dataclass
class RockRidge:
    """What the System Use area of one directory record says.

    Attributes:
        name: NM name bytes joined, or None without NM.
        symlink: SL target, or None.
        mode, nlink, uid, gid, ino: PX fields, or None without PX.
        mtime, atime, ctime: TF modify / access / attribute-change times.
        child_link: CL: the logical block of a relocated directory this record stands for.
        relocated: RE: this record is the relocated directory itself (hidden, as Linux does).
        zisofs: ZF: the file is zisofs-compressed.
        er: an ER (extensions reference) entry was seen.
    """

    name: bytes | None = None
    symlink: str | None = None
    mode: int | None = None
    nlink: int | None = None
    uid: int | None = None
    gid: int | None = None
    ino: int | None = None
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None
    child_link: int | None = None
    relocated: bool = False
    zisofs: bool = False
    er: bool = False
    _sl_parts: list[str] = field(default_factory=list)
    _sl_partial: str = ""
    _sl_absolute: bool = False


def sp_skip(system_use: bytes) -> int | None:
    """If ``system_use`` (of the root's first record) starts with a valid SP entry, its LEN_SKP."""
    if len(system_use) >= 7 and system_use[:2] == b"SP" and system_use[2] >= 7 and system_use[4:6] == SP_CHECK:
        return system_use[6]
    return None


def _le32(entry: bytes, at: int) -> int:
    return int.from_bytes(entry[at : at + 4], "little")


def parse_system_use(
    area: bytes, *, source: ByteSource, block_size: int, limits: Limits, where: str, offset: int
) -> RockRidge:
    """Read the SUSP entries of one directory record, following CE continuation areas.

    Args:
        area: the record's System Use bytes (after LEN_SKP).
        source: the volume (continuation areas live elsewhere on it).
        block_size: the logical block size.
        limits: ``max_chain_length``, ``max_name_bytes``, ``max_read``.
        where: the directory record, for messages.
        offset: volume byte offset of ``area`` (for messages).

    Returns:
        what the entries said.

    Raises:
        CorruptStructure: an entry or continuation area with bad lengths, a CE loop.
        LimitExceeded: too many continuation areas, a name over ``max_name_bytes``.
    """
    rr = RockRidge()
    seen: set[tuple[int, int]] = set()
    name_parts: list[bytes] = []
    name_len = 0
    while True:
        ce: tuple[int, int, int] | None = None
        pos = 0
        stop = False
        while pos + SUSP_HEADER <= len(area):
            sig = area[pos : pos + 2]
            length = area[pos + 2]
            what = f"SUSP entry {sig!r} of {where}"
            if length < SUSP_HEADER:
                if not any(area[pos:]):
                    break  # zero padding at the end of the area
                raise CorruptStructure(
                    what, "entry length is shorter than the 4-byte header", offset=offset + pos, got=length
                )
            if pos + length > len(area):
                raise CorruptStructure(
                    what,
                    f"entry of {length} bytes overruns the System Use area ({len(area) - pos} bytes left)",
                    offset=offset + pos,
                )
            entry = area[pos : pos + length]
            if sig == b"ST":
                stop = True
                break
            if sig == b"CE":
                _need(entry, 28, what, offset + pos)
                ce = (_le32(entry, 4), _le32(entry, 12), _le32(entry, 20))
            elif sig == b"NM":
                _need(entry, 5, what, offset + pos)  # XSA-497: NM length underflow
                if not entry[4] & (NM_CURRENT | NM_PARENT):
                    name_len += length - 5
                    if name_len > limits.max_name_bytes:
                        raise LimitExceeded("max_name_bytes", name_len, limits.max_name_bytes, where)
                    name_parts.append(entry[5:])
                    rr.name = b"".join(name_parts)
            elif sig == b"SL":
                _need(entry, 5, what, offset + pos)
                _symlink_components(rr, entry, what, offset + pos, limits)
            elif sig == b"PX":
                _need(entry, 36, what, offset + pos)
                rr.mode, rr.nlink, rr.uid, rr.gid = _le32(entry, 4), _le32(entry, 12), _le32(entry, 20), _le32(entry, 28)
                if length >= 44:
                    rr.ino = _le32(entry, 36)
            elif sig == b"TF":
                _need(entry, 5, what, offset + pos)
                _timestamps(rr, entry, what, offset + pos)
            elif sig == b"CL":
                _need(entry, 12, what, offset + pos)
                rr.child_link = _le32(entry, 4)
            elif sig == b"RE":
                rr.relocated = True
            elif sig == b"ZF":
                rr.zisofs = True
            elif sig == b"ER":
                rr.er = True
            pos += length
        if stop or ce is None:
            break
        block, ce_offset, ce_length = ce
        hop_what = f"SUSP continuation area (CE) of {where}"
        if (block, ce_offset) in seen:
            raise CorruptStructure(hop_what, f"continuation areas form a loop at block {block} offset {ce_offset}")
        seen.add((block, ce_offset))
        limits.check("max_chain_length", len(seen), hop_what)
        start = block * block_size + ce_offset
        if ce_offset + ce_length > block_size or start + ce_length > source.size:
            raise CorruptStructure(
                hop_what,
                f"area of {ce_length} bytes at block {block} offset {ce_offset} does not fit in one "
                f"{block_size}-byte block of the volume",
            )
        area = source.pread(start, ce_length)
        offset = start
    if rr._sl_partial or rr._sl_parts or rr._sl_absolute:
        parts = [*rr._sl_parts, rr._sl_partial] if rr._sl_partial else rr._sl_parts
        rr.symlink = ("/" if rr._sl_absolute else "") + "/".join(parts)
    return rr


def _need(entry: bytes, minimum: int, what: str, offset: int) -> None:
    if len(entry) < minimum:
        raise CorruptStructure(what, f"entry of {len(entry)} bytes is shorter than {minimum}", offset=offset)


def _symlink_components(rr: RockRidge, entry: bytes, what: str, offset: int, limits: Limits) -> None:
    """Append the component records of one SL entry (RRIP 4.1.3.1) to ``rr``'s target."""
    pos = 5
    while pos < len(entry):
        if pos + 2 > len(entry):
            raise CorruptStructure(what, "truncated symlink component record", offset=offset + pos)
        flags, clen = entry[pos], entry[pos + 1]
        if pos + 2 + clen > len(entry):
            raise CorruptStructure(
                what, f"symlink component of {clen} bytes overruns the entry", offset=offset + pos
            )
        content = entry[pos + 2 : pos + 2 + clen]
        if flags & (SL_ROOT | SL_VOLROOT):
            rr._sl_parts.clear()
            rr._sl_partial = ""
            rr._sl_absolute = True
        elif flags & SL_CURRENT:
            rr._sl_parts.append(".")
        elif flags & SL_PARENT:
            rr._sl_parts.append("..")
        elif not flags & SL_HOST:
            rr._sl_partial += decode_name(content)
            if not flags & SL_CONTINUE:
                rr._sl_parts.append(rr._sl_partial)
                rr._sl_partial = ""
        total = sum(len(p) + 1 for p in rr._sl_parts) + len(rr._sl_partial)
        if total > limits.max_string_bytes:
            raise LimitExceeded("max_string_bytes", total, limits.max_string_bytes, what)
        pos += 2 + clen


def _timestamps(rr: RockRidge, entry: bytes, what: str, offset: int) -> None:
    flags = entry[4]
    size = 17 if flags & TF_LONG_FORM else 7
    pos = 5
    for bit in range(TF_STAMPS):
        if not flags & (1 << bit):
            continue
        if pos + size > len(entry):
            raise CorruptStructure(what, "timestamps overrun the TF entry", offset=offset + pos)
        raw = entry[pos : pos + size]
        value = digits_date(raw) if size == 17 else record_date(raw)
        if 1 << bit == TF_MODIFY:
            rr.mtime = value
        elif 1 << bit == TF_ACCESS:
            rr.atime = value
        elif 1 << bit == TF_ATTRIBUTES:
            rr.ctime = value
        pos += size
