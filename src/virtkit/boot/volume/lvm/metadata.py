"""The LVM2 text metadata: a small recursive-descent parser and the VG model built from it.

Grammar (LVM's configuration syntax, as far as VG metadata uses it)::

    document := item* EOF
    item     := WORD "=" value
              | WORD "{" item* "}"
    value    := STRING | NUMBER | "[" [ scalar ("," scalar)* [","] ] "]"
    scalar   := STRING | NUMBER
    NUMBER   := a WORD that reads as an integer ("-1", "8192") or a decimal ("0.5")

A metadata copy is one VG section plus top-level settings (``contents``,
``version``, ``description``, ``creation_host``, ``creation_time``).  Nesting is
bounded by ``Limits.max_tree_depth`` and the token count by
``Limits.max_lvm_tokens``; numbers longer than 20 digits are refused before
Python converts them.  Errors say ``line L:C``.

The model keeps LVM's names: ``extent_size`` and ``pe_start`` in 512-byte
sectors, ``start_extent``/``extent_count`` in extents, ``stripe_size`` in
sectors, ``stripes = ["pv0", 0, "pv1", 0]`` as (PV name, first extent) pairs.

References:
    - LVM2 ``lib/format_text/import_vsn1.c`` and ``export.c`` (which keys a VG, PV,
      LV and segment carry, and their units); read for facts.
    - ``lvm.conf(5)`` "SYNTAX"; ``lvmraid(7)``, ``lvmthin(7)``, ``lvmcache(7)``
      (segment types we recognise but refuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virtkit.boot.volume.lvm.metadata_lexer import Token, TokenKind, tokenize
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = [
    "LvMeta",
    "PvMeta",
    "Section",
    "SegmentMeta",
    "VgMetadata",
    "parse_config",
    "parse_metadata",
    "parse_vg_metadata",
]

Scalar = str | int | float
Value = Scalar | list[Scalar]
MAX_NUMBER_DIGITS = 20  # a u64 has at most 20 decimal digits


@dataclass
class Section:
    """A ``name { ... }`` block: settings and subsections in file order, with positions."""

    name: str
    line: int
    col: int
    values: dict[str, Value] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str, limits: Limits, where: str) -> None:
        self.tokens = tokenize(text, limits=limits, where=where)
        self.where = where
        self.max_depth = limits.max_tree_depth
        self.limits = limits
        self.tok: Token = next(self.tokens)

    def error(self, msg: str, tok: Token | None = None) -> CorruptStructure:
        t = tok or self.tok
        return CorruptStructure(f"LVM metadata on {self.where}", f"line {t.line}:{t.col}: {msg}")

    def advance(self) -> Token:
        tok = self.tok
        self.tok = next(self.tokens)
        return tok

    def expect_punct(self, ch: str) -> Token:
        if self.tok.kind is not TokenKind.PUNCT or self.tok.text != ch:
            raise self.error(f"expected {ch!r}, got {self.tok.describe()}")
        return self.advance()

    def parse_body(self, section: Section, depth: int, closing: bool) -> None:
        """Parse items into ``section`` until "}" (if ``closing``) or EOF."""
        while True:
            tok = self.tok
            if closing and tok.kind is TokenKind.PUNCT and tok.text == "}":
                self.advance()
                return
            if tok.kind is TokenKind.EOF:
                if closing:
                    raise self.error(f"section {section.name!r} (line {section.line}) is not closed")
                return
            if tok.kind is not TokenKind.WORD:
                raise self.error(f"expected a name, got {tok.describe()}")
            name = self.advance().text
            if name in section.values or name in section.sections:
                raise self.error(f"duplicate key {name!r} in section {section.name!r}", tok)
            nxt = self.tok
            if nxt.kind is TokenKind.PUNCT and nxt.text == "{":
                if depth + 1 > self.max_depth:
                    self.limits.check("max_tree_depth", depth + 1, f"LVM metadata on {self.where}, line {tok.line}")
                self.advance()
                child = Section(name, tok.line, tok.col)
                self.parse_body(child, depth + 1, closing=True)
                section.sections[name] = child
            elif nxt.kind is TokenKind.PUNCT and nxt.text == "=":
                self.advance()
                section.values[name] = self.parse_value()
            else:
                raise self.error(f"expected '=' or '{{' after {name!r}, got {nxt.describe()}")
            section.positions[name] = (tok.line, tok.col)

    def parse_scalar(self) -> Scalar:
        tok = self.tok
        if tok.kind is TokenKind.STRING:
            self.advance()
            return tok.text
        if tok.kind is TokenKind.WORD:
            self.advance()
            return self.number(tok)
        raise self.error(f"expected a value, got {tok.describe()}")

    def number(self, tok: Token) -> int | float:
        text = tok.text
        digits = text.lstrip("+-")
        if not digits or len(digits) > MAX_NUMBER_DIGITS + 2:
            raise self.error(f"expected a number, got {tok.describe()}", tok)
        try:
            if digits.isdigit():
                return int(text)
            return float(text)
        except ValueError:
            raise self.error(f"expected a number, got {tok.describe()}", tok) from None

    def parse_value(self) -> Value:
        if self.tok.kind is TokenKind.PUNCT and self.tok.text == "[":
            self.advance()
            items: list[Scalar] = []
            while not (self.tok.kind is TokenKind.PUNCT and self.tok.text == "]"):
                items.append(self.parse_scalar())
                if self.tok.kind is TokenKind.PUNCT and self.tok.text == ",":
                    self.advance()
                elif not (self.tok.kind is TokenKind.PUNCT and self.tok.text == "]"):
                    raise self.error(f"expected ',' or ']' in a list, got {self.tok.describe()}")
            self.advance()
            return items
        return self.parse_scalar()


def parse_config(text: str, *, limits: Limits, where: str) -> Section:
    """Parse LVM configuration-syntax ``text`` into a root :class:`Section` named "".

    Raises:
        CorruptStructure: a syntax error (with line and column), a duplicate key.
        LimitExceeded: ``max_lvm_tokens`` or ``max_tree_depth``.
    """
    parser = _Parser(text, limits, where)
    root = Section("", 1, 1)
    parser.parse_body(root, 0, closing=False)
    return root


@dataclass(frozen=True)
class PvMeta:
    """A PV as the VG metadata describes it (``pv0 { ... }``)."""

    name: str  # "pv0": how segments refer to it
    id: str  # dashed UUID
    pe_start: int  # sectors
    pe_count: int
    dev_size: int  # sectors (0 if absent)

    @property
    def uuid_plain(self) -> str:
        """The id without dashes, as in the PV label."""
        return self.id.replace("-", "")


@dataclass(frozen=True)
class SegmentMeta:
    """One ``segmentN { ... }`` block."""

    start_extent: int
    extent_count: int
    type: str
    stripe_count: int = 0
    stripe_size: int = 0  # sectors
    stripes: tuple[tuple[str, int], ...] = ()  # (pv name, first extent on it)
    settings: dict[str, Value] = field(default_factory=dict, compare=False)
    line: int = 0


@dataclass(frozen=True)
class LvMeta:
    """A logical volume as described by the metadata."""

    name: str
    id: str
    status: tuple[str, ...]
    segments: tuple[SegmentMeta, ...]
    line: int = 0

    @property
    def visible(self) -> bool:
        return "VISIBLE" in self.status

    @property
    def extent_count(self) -> int:
        return sum(s.extent_count for s in self.segments)


@dataclass(frozen=True)
class VgMetadata:
    """One parsed VG metadata copy."""

    name: str
    id: str
    seqno: int
    extent_size: int  # sectors
    status: tuple[str, ...]
    pvs: dict[str, PvMeta]
    lvs: tuple[LvMeta, ...]
    where: str

    @property
    def extent_bytes(self) -> int:
        return self.extent_size * 512


class _Reader:
    """Typed access to a section's values with positioned errors."""

    def __init__(self, section: Section, where: str, path: str) -> None:
        self.s = section
        self.where = where
        self.path = path

    def error(self, key: str, msg: str) -> CorruptStructure:
        line, col = self.s.positions.get(key, (self.s.line, self.s.col))
        return CorruptStructure(f"LVM metadata on {self.where}", f"line {line}:{col}: {self.path}/{key}: {msg}")

    def get_int(self, key: str, *, default: int | None = None, minimum: int = 0) -> int:
        v = self.s.values.get(key)
        if v is None:
            if default is None:
                raise self.error(key, "missing")
            return default
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.error(key, f"expected an integer, got {v!r}"[:120])
        if v < minimum:
            raise self.error(key, f"expected at least {minimum}, got {v}")
        return v

    def get_str(self, key: str, *, default: str | None = None) -> str:
        v = self.s.values.get(key)
        if v is None:
            if default is None:
                raise self.error(key, "missing")
            return default
        if not isinstance(v, str):
            raise self.error(key, f"expected a string, got {v!r}"[:120])
        return v

    def get_strings(self, key: str) -> tuple[str, ...]:
        v = self.s.values.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.error(key, "expected a list of strings")
        return tuple(str(x) for x in v)

    def section(self, key: str) -> Section | None:
        return self.s.sections.get(key)


def parse_vg_metadata(text: bytes, *, limits: Limits, where: str) -> VgMetadata:
    """Parse one VG metadata copy into a :class:`VgMetadata`.

    Args:
        text: the metadata text as read from the metadata area.
        limits: ``max_lvm_metadata_bytes``, ``max_lvm_tokens``, ``max_tree_depth``,
            ``max_extents`` (segments per LV) apply.
        where: the copy's location for messages.

    Raises:
        CorruptStructure: syntax errors, missing or ill-typed keys, segment lists that
            do not match ``segment_count``, stripe lists of the wrong length.
        LimitExceeded: a bound above was broken.
    """
    limits.check("max_lvm_metadata_bytes", len(text), f"LVM metadata on {where}")
    root = parse_config(text.decode("utf-8", "replace"), limits=limits, where=where)
    if len(root.sections) != 1:
        names = ", ".join(repr(n) for n in root.sections) or "none"
        raise CorruptStructure(f"LVM metadata on {where}", f"expected exactly one volume group section, found {names}")
    ((vg_name, vg_sec),) = root.sections.items()
    vg = _Reader(vg_sec, where, vg_name)
    extent_size = vg.get_int("extent_size", minimum=1)
    pvs: dict[str, PvMeta] = {}
    pv_root = vg.section("physical_volumes")
    if pv_root is None:
        raise vg.error("physical_volumes", "missing")
    for pv_name, pv_sec in pv_root.sections.items():
        r = _Reader(pv_sec, where, f"{vg_name}/physical_volumes/{pv_name}")
        pvs[pv_name] = PvMeta(
            name=pv_name,
            id=r.get_str("id"),
            pe_start=r.get_int("pe_start"),
            pe_count=r.get_int("pe_count"),
            dev_size=r.get_int("dev_size", default=0),
        )
    lvs: list[LvMeta] = []
    lv_root = vg.section("logical_volumes")
    for lv_name, lv_sec in lv_root.sections.items() if lv_root is not None else ():
        lvs.append(_parse_lv(lv_name, lv_sec, vg_name, where, limits))
    return VgMetadata(
        name=vg_name,
        id=vg.get_str("id"),
        seqno=vg.get_int("seqno"),
        extent_size=extent_size,
        status=vg.get_strings("status"),
        pvs=pvs,
        lvs=tuple(lvs),
        where=where,
    )


def parse_metadata(text: str, *, limits: Limits, where: str = "metadata text") -> VgMetadata:
    """:func:`parse_vg_metadata` for text already decoded (tools, fuzzing, tests).

    Raises:
        CorruptStructure, LimitExceeded: as :func:`parse_vg_metadata`.
    """
    return parse_vg_metadata(text.encode("utf-8", "surrogateescape"), limits=limits, where=where)


def _parse_lv(lv_name: str, lv_sec: Section, vg_name: str, where: str, limits: Limits) -> LvMeta:
    path = f"{vg_name}/logical_volumes/{lv_name}"
    r = _Reader(lv_sec, where, path)
    count = r.get_int("segment_count", minimum=1)
    limits.check("max_extents", count, f"LVM metadata on {where}: {path}")
    if len(lv_sec.sections) != count or any(f"segment{i}" not in lv_sec.sections for i in range(1, count + 1)):
        raise r.error("segment_count", f"says {count}, but the segments are {', '.join(lv_sec.sections) or 'none'}")
    segments: list[SegmentMeta] = []
    next_extent = 0
    for i in range(1, count + 1):
        seg_sec = lv_sec.sections[f"segment{i}"]
        s = _Reader(seg_sec, where, f"{path}/segment{i}")
        start = s.get_int("start_extent")
        extents = s.get_int("extent_count", minimum=1)
        if start != next_extent:
            raise s.error("start_extent", f"expected {next_extent} (segments must be contiguous), got {start}")
        next_extent = start + extents
        seg_type = s.get_str("type")
        stripe_count = 0
        stripe_size = 0
        stripes: list[tuple[str, int]] = []
        if seg_type == "striped":
            stripe_count = s.get_int("stripe_count", minimum=1)
            stripe_size = s.get_int("stripe_size", default=0)
            raw = seg_sec.values.get("stripes")
            if not isinstance(raw, list) or len(raw) != 2 * stripe_count:
                raise s.error("stripes", f"expected {stripe_count} (PV name, extent) pairs")
            for j in range(stripe_count):
                pv, ext = raw[2 * j], raw[2 * j + 1]
                if not isinstance(pv, str) or not isinstance(ext, int) or ext < 0:
                    raise s.error("stripes", f"pair {j + 1} is not (PV name, extent): {pv!r}, {ext!r}"[:160])
                stripes.append((pv, ext))
        segments.append(
            SegmentMeta(
                start_extent=start,
                extent_count=extents,
                type=seg_type,
                stripe_count=stripe_count,
                stripe_size=stripe_size,
                stripes=tuple(stripes),
                settings=dict(seg_sec.values),
                line=seg_sec.line,
            )
        )
    return LvMeta(
        name=lv_name, id=r.get_str("id"), status=r.get_strings("status"), segments=tuple(segments), line=lv_sec.line
    )
