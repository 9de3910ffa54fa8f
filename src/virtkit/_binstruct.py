"""A tiny helper for fixed-layout on-disk records, built on :mod:`struct`.

Records keep the spec's field names (STYLE.md, "Naming")::

    EXT4_SUPERBLOCK = Record("ext4 superblock", "<", [
        ("s_inodes_count", "I"),
        ("s_blocks_count_lo", "I"),
        ...
    ])
    sb = EXT4_SUPERBLOCK.parse(buf, 0, where="disk0p1")
    sb.s_magic

``parse`` checks that the record fits in the buffer and raises
:class:`~virtkit.errors.CorruptStructure` (naming the record and offset) if it
does not, so a truncated structure never surfaces as ``struct.error``.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from virtkit.errors import CorruptStructure

__all__ = ["Record", "unpack_from"]


class Record:
    """A named, fixed-size binary record.

    Args:
        name: human name used in errors ("GPT header").
        endian: a :mod:`struct` byte-order prefix ("<", ">").
        fields: ``(field_name, struct_code)`` pairs; codes like ``"16s"`` give bytes.
            Field names starting with ``_`` are padding and still parsed.
    """

    def __init__(self, name: str, endian: str, fields: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.struct = struct.Struct(endian + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.fields = tuple(f for f, _ in fields)
        make_type: Any = namedtuple
        self._tuple: Any = make_type(name.replace(" ", "_").replace("-", "_") + "_t", self.fields, rename=True)

    def parse(self, data: bytes | bytearray | memoryview, offset: int = 0, *, where: str = "") -> Any:
        """Parse the record at ``offset`` of ``data``.

        Returns:
            a namedtuple with one attribute per field.

        Raises:
            CorruptStructure: the record does not fit in ``data``.
        """
        if offset < 0 or offset + self.size > len(data):
            what = f"{self.name} on {where}" if where else self.name
            raise CorruptStructure(what, f"truncated: needs {self.size} bytes, {max(0, len(data) - offset)} available", offset=offset)
        return self._tuple._make(self.struct.unpack_from(data, offset))

    def parse_array(self, data: bytes | bytearray | memoryview, offset: int, count: int, *, where: str = "") -> list[Any]:
        """Parse ``count`` consecutive records starting at ``offset``."""
        end = offset + count * self.size
        if offset < 0 or count < 0 or end > len(data):
            what = f"{self.name} array on {where}" if where else f"{self.name} array"
            raise CorruptStructure(what, f"truncated: {count} records need {count * self.size} bytes", offset=offset)
        it = self.struct.iter_unpack(bytes(data[offset:end]))
        make = self._tuple._make
        return [make(t) for t in it]


def unpack_from(fmt: str, data: bytes | bytearray | memoryview, offset: int, what: str) -> tuple[Any, ...]:
    """:func:`struct.unpack_from` that raises CorruptStructure instead of ``struct.error``."""
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise CorruptStructure(what, f"truncated: needs {size} bytes", offset=offset)
    return struct.unpack_from(fmt, data, offset)
