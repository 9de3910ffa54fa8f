"""``test`` and ``[``, exactly as GRUB evaluates them (not as POSIX does).

References:
    grub-core/commands/test.c (GRUB 2.06) ``test_parse``/``grub_cmd_test``.
    grub-core/kern/misc.c ``grub_strtoull``: base 0 (``0x`` hex, ``0`` + octal digit
    octal, else decimal), stops at the first non-digit, "unrecognized number" when
    no digit was read, "overflow is detected" past 64 bits.

GRUB's quirks kept on purpose: no arguments is TRUE; a trailing ``]`` is dropped
but not required; three-argument forms are tried before two-argument ones at
every position; ``-a`` is a no-op and ``-o`` ORs; numbers are C ``int`` after a
64-bit ``strtoul`` (so 4294967296 equals 0); ``-pgt``/``-plt`` compare the numeric
tails after a common prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.paths import resolve, stat_path

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["cmd_test", "grub_strtoul"]

_U64 = 1 << 64


def grub_strtoul(s: str, base: int = 0) -> tuple[int, int, str | None]:
    """``grub_strtoull``.

    Returns:
        (value, index just past the digits, error message or None).  On "unrecognized
        number" the value is 0 and the index 0; on overflow the value is 2**64 - 1.
    """
    i = 0
    n = len(s)
    while i < n and s[i] in " \t\n\r\f\v":
        i += 1
    if i + 1 < n and s[i] == "0" and s[i + 1] == "x":
        if base in (0, 16):
            base = 16
            i += 2
    elif base == 0 and i + 1 < n and s[i] == "0" and "0" <= s[i + 1] <= "7":
        base = 8
    if base == 0:
        base = 10
    num = 0
    found = False
    while i < n:
        c = s[i].lower()
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif "a" <= c <= "z":
            d = ord(c) - 87
        else:
            break
        if d >= base:
            break
        found = True
        num = num * base + d
        if num >= _U64:
            return _U64 - 1, i + 1, "overflow is detected"
        i += 1
    if not found:
        return 0, 0, "unrecognized number"
    return num, i, None


def _to_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


class _Ctx:
    __slots__ = ("and_", "err", "interp", "invert", "or_")

    def __init__(self, interp: Interpreter) -> None:
        self.interp = interp
        self.err: str | None = None
        self.invert = False
        self.or_ = False
        self.and_ = True

    def update(self, val: bool) -> None:
        self.and_ = self.and_ and ((not val) if self.invert else val)
        self.invert = False

    def strtosl(self, s: str) -> int:
        """``grub_strtosl``: a leading ``-`` negates; the result is a C ``int``."""
        neg = s.startswith("-")
        v, _, err = grub_strtoul(s[1:] if neg else s)
        if err is not None:
            self.err = err
        return _to_int32(-v if neg else v)

    def strtoul(self, s: str) -> int:
        v, _, err = grub_strtoul(s)
        if err is not None:
            self.err = err
        return v


def _fileinfo(interp: Interpreter, path: str) -> tuple[bool, bool]:
    """(exists, is_dir) as ``get_fileinfo`` would find them."""
    p = path
    while len(p) > 1 and p.endswith("/") and not p.endswith(")/"):
        p = p[:-1]
    rp = resolve(interp, p)
    if rp.device is None or rp.device.fs_type is None:
        return False, False
    if rp.error is not None and rp.path != "":
        return False, False
    st = stat_path(interp, rp)
    if st is None:
        return False, False
    return True, st.is_dir


def _mtime(interp: Interpreter, path: str) -> tuple[bool, float | None]:
    """(exists, mtime or None) for ``-nt``/``-ot``."""
    exists, _ = _fileinfo(interp, path)
    if not exists:
        return False, None
    st = stat_path(interp, resolve(interp, path))
    return True, (st.mtime if st is not None else None)


def _parse(args: list[str], idx: list[int], argc: int, c: _Ctx) -> bool:
    interp = c.interp
    while idx[0] < argc:
        i = idx[0]
        interp.step()
        if i + 2 < argc:
            op = args[i + 1]
            a, b = args[i], args[i + 2]
            result: bool | None = None
            if op in ("=", "=="):
                result = a == b
            elif op == "!=":
                result = a != b
            elif op == "<":
                result = a.encode("utf-8", "surrogateescape") < b.encode("utf-8", "surrogateescape")
            elif op == "<=":
                result = a.encode("utf-8", "surrogateescape") <= b.encode("utf-8", "surrogateescape")
            elif op == ">":
                result = a.encode("utf-8", "surrogateescape") > b.encode("utf-8", "surrogateescape")
            elif op == ">=":
                result = a.encode("utf-8", "surrogateescape") >= b.encode("utf-8", "surrogateescape")
            elif op in ("-eq", "-ge", "-gt", "-le", "-lt", "-ne"):
                x, y = c.strtosl(a), c.strtosl(b)
                result = {"-eq": x == y, "-ge": x >= y, "-gt": x > y, "-le": x <= y, "-lt": x < y, "-ne": x != y}[op]
            elif op in ("-pgt", "-plt"):
                k = 0
                while k < len(a) and k < len(b) and a[k] == b[k]:
                    k += 1
                k -= 1
                while k > 0 and a[k].isdigit() and a[k].isascii():
                    k -= 1
                k += 1
                x = c.strtoul(a[k:])
                y = c.strtoul(b[k:])
                result = x > y if op == "-pgt" else x < y
            elif op[:3] in ("-nt", "-ot"):
                e1, m1 = _mtime(interp, a)
                e2, m2 = _mtime(interp, b)
                bias = c.strtosl(op[3:]) if len(op) > 3 else 0
                both = m1 is not None and m2 is not None
                if op[:3] == "-nt":
                    result = (e1 and not e2) or (both and m1 + bias > m2)  # type: ignore[operator]
                else:
                    result = (not e1 and e2) or (both and m1 + bias < m2)  # type: ignore[operator]
            if result is not None:
                c.update(result)
                idx[0] += 3
                continue
        if i + 1 < argc:
            op = args[i]
            arg = args[i + 1]
            two: bool | None = None
            if op == "-d":
                ex, isdir = _fileinfo(interp, arg)
                two = ex and isdir
            elif op == "-e":
                two = _fileinfo(interp, arg)[0]
            elif op == "-f":
                ex, isdir = _fileinfo(interp, arg)
                two = ex and not isdir
            elif op == "-s":
                st = stat_path(interp, resolve(interp, arg))
                two = st is not None and not st.is_dir and st.size != 0
            elif op == "-n":
                two = arg != ""
            elif op == "-z":
                two = arg == ""
            if two is not None:
                c.update(two)
                idx[0] += 2
                continue
        tok = args[i]
        if tok == ")":
            idx[0] += 1
            return c.or_ or c.and_
        if tok == "(":
            idx[0] += 1
            sub = _Ctx(interp)
            val = _parse(args, idx, argc, sub)
            if sub.err is not None:
                c.err = sub.err
            c.update(val)
            continue
        if tok == "!":
            c.invert = not c.invert
            idx[0] += 1
            continue
        if tok == "-a":
            idx[0] += 1
            continue
        if tok == "-o":
            c.or_ = c.or_ or c.and_
            c.and_ = True
            idx[0] += 1
            continue
        c.update(tok != "")
        idx[0] += 1
    return c.or_ or c.and_


def cmd_test(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    """``test EXPR`` / ``[ EXPR ]``."""
    argc = len(args)
    if argc >= 1 and args[-1] == "]":
        argc -= 1
    c = _Ctx(interp)
    ok = _parse(args, [0], argc, c)
    if ok:
        if c.err is not None:
            interp.error(E.GRUB_ERR_BAD_NUMBER, c.err)
        return E.GRUB_ERR_NONE
    return interp.error(E.GRUB_ERR_TEST_FAILURE, "false")
