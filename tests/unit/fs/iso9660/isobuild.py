"""A minimal iso9660 byte builder for shapes real tools will not make small.

mkisofs-style tools split a file into several extents only past 4 GiB, so a
multi-extent file is built here: system area, a PVD at sector 16, the
terminator at 17, the root directory at 18, data from 19 on.  Names are plain
ISO identifiers; no extensions.  isoinfo reads the result (see the
differential tests), so the builder is checked against a real tool.
"""

from __future__ import annotations

import struct

SECTOR = 2048
ROOT_BLOCK = 18
DATA_BLOCK = 19
DATE7 = bytes([123, 11, 14, 22, 13, 20, 0])  # 2023-11-14 22:13:20 UTC


def both16(v: int) -> bytes:
    return struct.pack("<H", v) + struct.pack(">H", v)


def both32(v: int) -> bytes:
    return struct.pack("<I", v) + struct.pack(">I", v)


def dir_record(name: bytes, extent: int, length: int, flags: int = 0, su: bytes = b"") -> bytes:
    body = (
        bytes([0])  # ext attr length
        + both32(extent)
        + both32(length)
        + DATE7
        + bytes([flags, 0, 0])
        + both16(1)
        + bytes([len(name)])
        + name
    )
    if len(name) % 2 == 0:
        body += b"\0"
    body += su
    return bytes([len(body) + 1]) + body


def build_iso(records: list[bytes], data: dict[int, bytes], *, root_dot_su: bytes = b"", label: bytes = b"SYNTH") -> bytes:
    """An image whose root directory holds ``records``; ``data[block]`` is written at ``block``."""
    last = max([DATA_BLOCK, *(b + -(-len(d) // SECTOR) for b, d in data.items())])
    img = bytearray(last * SECTOR)
    root = bytearray(SECTOR)
    pos = 0
    for rec in [dir_record(b"\0", ROOT_BLOCK, SECTOR, 2, root_dot_su), dir_record(b"\1", ROOT_BLOCK, SECTOR, 2), *records]:
        if pos % SECTOR + len(rec) > SECTOR:
            raise ValueError("root directory records overflow one sector")
        root[pos : pos + len(rec)] = rec
        pos += len(rec)
    img[ROOT_BLOCK * SECTOR : (ROOT_BLOCK + 1) * SECTOR] = root
    pvd = bytearray(SECTOR)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[40:72] = label.ljust(32, b" ")
    pvd[80:88] = both32(last)
    pvd[120:124] = both16(1)
    pvd[124:128] = both16(1)
    pvd[128:132] = both16(SECTOR)
    pvd[156:190] = dir_record(b"\0", ROOT_BLOCK, SECTOR, 2)
    pvd[813:830] = b"2023111422132000\0"
    pvd[830:847] = b"2023111422132000\0"
    pvd[881] = 1
    img[16 * SECTOR : 17 * SECTOR] = pvd
    img[17 * SECTOR : 17 * SECTOR + 7] = b"\xffCD001\x01"
    for block, blob in data.items():
        img[block * SECTOR : block * SECTOR + len(blob)] = blob
    return bytes(img)


def multi_extent_iso(parts: list[bytes]) -> bytes:
    """A root directory with MULTI.BIN;1 made of ``parts``, one extent each (flag 0x80 on all but the last)."""
    records = []
    data = {}
    block = DATA_BLOCK
    for i, part in enumerate(parts):
        flags = 0x80 if i < len(parts) - 1 else 0
        records.append(dir_record(b"MULTI.BIN;1", block, len(part), flags))
        data[block] = part
        block += -(-len(part) // SECTOR) + 1  # leave a gap so extents are not adjacent
    records.append(dir_record(b"AFTER.TXT;1", block, 6))
    data[block] = b"after\n"
    return build_iso(records, data)
