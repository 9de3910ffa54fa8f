"""``regexp``: POSIX extended regular expressions on a bounded engine of our own.

References:
    grub-core/commands/regexp.c (GRUB 2.06): ``regexp [--set [N:]VAR]... REGEX STRING``;
    ``regcomp(REG_EXTENDED)``; a failed match or a bad pattern is a test failure
    (not printed); ``--set VAR`` stores group 1, ``--set N:VAR`` group N, and unsets the
    variable when that group did not take part.  Loading the ``regexp`` module also
    turns on wildcard expansion of arguments.
    POSIX.1-2017 XBD 9.4 (Extended Regular Expressions); gnulib adds ``\\w \\W \\s \\S``.

Guest patterns never reach Python's ``re`` (whose backtracking a hostile pattern
could make exponential).  The pattern is compiled to a small instruction list
and run by a backtracking machine that visits each (instruction, position) pair
at most once per start position, charging every visit to the script step budget.
Among the matches at the leftmost position the longest wins, as POSIX requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.argopts import ArgError, HelpRequested, Opt, parse_args
from virtkit.boot.config.grub2.test_cmd import grub_strtoul

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["RegexError", "cmd_regexp", "compile_ere", "search_ere"]

_MAX_PROGRAM = 20000

# instruction opcodes
_CHAR, _ANY, _SET, _SPLIT, _JMP, _SAVE, _MATCH, _BOL, _EOL = range(9)

_CLASSES: dict[str, Callable[[str], bool]] = {
    "alpha": str.isalpha, "digit": lambda c: "0" <= c <= "9", "alnum": str.isalnum,
    "upper": str.isupper, "lower": str.islower, "space": lambda c: c in " \t\n\r\f\v",
    "blank": lambda c: c in " \t", "punct": lambda c: c.isascii() and c.isprintable() and not c.isalnum() and c != " ",
    "print": lambda c: c.isprintable(), "graph": lambda c: c.isprintable() and c != " ",
    "cntrl": lambda c: ord(c) < 32 or ord(c) == 127, "xdigit": lambda c: c in "0123456789abcdefABCDEF",
}


class RegexError(Exception):
    """The pattern does not compile."""


class _CharSet:
    __slots__ = ("chars", "classes", "negate", "ranges")

    def __init__(self) -> None:
        self.chars: set[str] = set()
        self.ranges: list[tuple[str, str]] = []
        self.classes: list[str] = []
        self.negate = False

    def match(self, c: str) -> bool:
        hit = c in self.chars or any(a <= c <= b for a, b in self.ranges) or any(_CLASSES[k](c) for k in self.classes)
        return hit != self.negate


class _Compiler:
    """Pattern text -> program (recursive descent over the ERE grammar)."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.prog: list[tuple[int, object, object]] = []
        self.ngroups = 0

    def emit(self, op: int, a: object = None, b: object = None) -> int:
        if len(self.prog) >= _MAX_PROGRAM:
            raise RegexError("regular expression too big")
        self.prog.append((op, a, b))
        return len(self.prog) - 1

    def compile(self) -> list[tuple[int, object, object]]:
        self.emit(_SAVE, 0)
        self.alternation()
        if self.i < len(self.p):
            raise RegexError("unmatched ( or \\(" if self.p[self.i] == ")" else "invalid regular expression")
        self.emit(_SAVE, 1)
        self.emit(_MATCH)
        return self.prog

    def alternation(self) -> None:
        start = len(self.prog)
        branches: list[list[tuple[int, object, object]]] = []
        while True:
            self.concat()
            branches.append(self.prog[start:])
            del self.prog[start:]
            if self.i < len(self.p) and self.p[self.i] == "|":
                self.i += 1
                continue
            break
        if len(branches) == 1:
            self.prog.extend(branches[0])
            return
        # layout: SPLIT(next, other) code JMP(end) ... last code
        total = sum(len(b) for b in branches) + 2 * (len(branches) - 1)
        end = start + total
        pos = start
        for k, code in enumerate(branches):
            last = k == len(branches) - 1
            if not last:
                nxt = pos + 1 + len(code) + 1
                self.emit(_SPLIT, pos + 1, nxt)
                body_at = pos + 1
            else:
                body_at = pos
            for ins in code:
                self.prog.append(self._shift(ins, body_at - start))
            if not last:
                self.emit(_JMP, end)
                pos = nxt
        if len(self.prog) > _MAX_PROGRAM:
            raise RegexError("regular expression too big")

    @staticmethod
    def _shift(ins: tuple[int, object, object], by: int) -> tuple[int, object, object]:
        op, a, b = ins
        if op == _SPLIT:
            return (op, a + by, b + by)  # type: ignore[operator]
        if op == _JMP:
            return (op, a + by, b)  # type: ignore[operator]
        return ins

    def concat(self) -> None:
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            self.repeat()

    def repeat(self) -> None:
        start = len(self.prog)
        self.atom()
        while self.i < len(self.p) and self.p[self.i] in "*+?{":
            c = self.p[self.i]
            if c == "{":
                close = self.p.find("}", self.i)
                body = self.p[self.i + 1 : close] if close > 0 else ""
                lo_s, _, hi_s = body.partition(",")
                if close < 0 or not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
                    raise RegexError("invalid content of \\{\\}")
                lo = int(lo_s)
                hi = lo if "," not in body else (int(hi_s) if hi_s else None)
                if (hi is not None and hi < lo) or lo > 255 or (hi or 0) > 255:
                    raise RegexError("invalid content of \\{\\}")
                self.i = close + 1
                self._counted(start, lo, hi)
                continue
            self.i += 1
            code = self.prog[start:]
            del self.prog[start:]
            if c == "*":
                split = self.emit(_SPLIT)
                for ins in code:
                    self.prog.append(self._shift(ins, split + 1 - start))
                self.emit(_JMP, split)
                self.prog[split] = (_SPLIT, split + 1, len(self.prog))
            elif c == "+":
                for ins in code:
                    self.prog.append(ins)
                self.emit(_SPLIT, start, len(self.prog) + 1)
            else:  # ?
                split = self.emit(_SPLIT)
                for ins in code:
                    self.prog.append(self._shift(ins, split + 1 - start))
                self.prog[split] = (_SPLIT, split + 1, len(self.prog))

    def _counted(self, start: int, lo: int, hi: int | None) -> None:
        code = self.prog[start:]
        del self.prog[start:]

        def copy() -> None:
            base = len(self.prog)
            for ins in code:
                self.prog.append(self._shift(ins, base - start))
                if len(self.prog) > _MAX_PROGRAM:
                    raise RegexError("regular expression too big")

        for _ in range(lo):
            copy()
        if hi is None:
            split = self.emit(_SPLIT)
            base = len(self.prog)
            for ins in code:
                self.prog.append(self._shift(ins, base - start))
            self.emit(_JMP, split)
            self.prog[split] = (_SPLIT, split + 1, len(self.prog))
            return
        pending: list[int] = []
        for _ in range(hi - lo):
            pending.append(self.emit(_SPLIT))
            copy()
        end = len(self.prog)
        for s in pending:
            self.prog[s] = (_SPLIT, s + 1, end)

    def atom(self) -> None:
        p = self.p
        c = p[self.i]
        self.i += 1
        if c == "(":
            self.ngroups += 1
            g = self.ngroups
            self.emit(_SAVE, 2 * g)
            if self.i < len(p) and p[self.i] == ")":
                pass
            else:
                self.alternation()
            if self.i >= len(p) or p[self.i] != ")":
                raise RegexError("unmatched ( or \\(")
            self.i += 1
            self.emit(_SAVE, 2 * g + 1)
        elif c == ".":
            self.emit(_ANY)
        elif c == "^":
            self.emit(_BOL)
        elif c == "$":
            self.emit(_EOL)
        elif c == "[":
            self.emit(_SET, self.bracket())
        elif c == "\\":
            if self.i >= len(p):
                raise RegexError("trailing backslash")
            e = p[self.i]
            self.i += 1
            if e in "wWsS":
                cs = _CharSet()
                cs.classes = ["alnum"] if e in "wW" else ["space"]
                if e in "wW":
                    cs.chars.add("_")
                cs.negate = e.isupper()
                self.emit(_SET, cs)
            elif e.isdigit():
                raise RegexError("back references are not supported")
            else:
                self.emit(_CHAR, e)
        elif c in "*+?{":
            raise RegexError("invalid preceding regular expression")
        else:
            self.emit(_CHAR, c)

    def bracket(self) -> _CharSet:
        p = self.p
        cs = _CharSet()
        if self.i < len(p) and p[self.i] == "^":
            cs.negate = True
            self.i += 1
        first = True
        while True:
            if self.i >= len(p):
                raise RegexError("unmatched [, [^, [:, [., or [=")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                return cs
            first = False
            if c == "[" and p[self.i + 1 : self.i + 2] == ":":
                close = p.find(":]", self.i + 2)
                if close < 0 or p[self.i + 2 : close] not in _CLASSES:
                    raise RegexError("invalid character class name")
                cs.classes.append(p[self.i + 2 : close])
                self.i = close + 2
                continue
            self.i += 1
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                hi = p[self.i + 1]
                if hi < c:
                    raise RegexError("invalid range end")
                cs.ranges.append((c, hi))
                self.i += 2
            else:
                cs.chars.add(c)


def compile_ere(pattern: str) -> tuple[list[tuple[int, object, object]], int]:
    """Compile an ERE; returns (program, number of groups).

    Raises:
        RegexError: the pattern is invalid or too big.
    """
    comp = _Compiler(pattern)
    return comp.compile(), comp.ngroups


def search_ere(prog: list[tuple[int, object, object]], ngroups: int, s: str, step: object) -> list[tuple[int, int]] | None:
    """Leftmost-longest match of ``prog`` in ``s``; group spans ((-1,-1) if unset) or None.

    ``step`` is called once per machine state visited (it raises when the budget ends).
    """
    n = len(s)
    nslots = 2 * (ngroups + 1)
    for start in range(n + 1):
        visited: set[tuple[int, int]] = set()
        best: list[int] | None = None
        stack: list[tuple[int, int, tuple[int, ...]]] = [(0, start, (-1,) * nslots)]
        while stack:
            pc, pos, caps = stack.pop()
            while True:
                if (pc, pos) in visited:
                    break
                visited.add((pc, pos))
                step()  # type: ignore[operator]
                op, a, b = prog[pc]
                if op == _CHAR:
                    if pos < n and s[pos] == a:
                        pc += 1
                        pos += 1
                        continue
                    break
                if op == _ANY:
                    if pos < n:
                        pc += 1
                        pos += 1
                        continue
                    break
                if op == _SET:
                    if pos < n and a.match(s[pos]):  # type: ignore[attr-defined]
                        pc += 1
                        pos += 1
                        continue
                    break
                if op == _BOL:
                    if pos == 0:
                        pc += 1
                        continue
                    break
                if op == _EOL:
                    if pos == n:
                        pc += 1
                        continue
                    break
                if op == _SAVE:
                    lst = list(caps)
                    lst[a] = pos  # type: ignore[call-overload]
                    caps = tuple(lst)
                    pc += 1
                    continue
                if op == _JMP:
                    pc = a  # type: ignore[assignment]
                    continue
                if op == _SPLIT:
                    stack.append((b, pos, caps))  # type: ignore[arg-type]
                    pc = a  # type: ignore[assignment]
                    continue
                # MATCH
                if best is None or caps[1] > best[1]:
                    best = list(caps)
                break
        if best is not None:
            return [(best[2 * g], best[2 * g + 1]) for g in range(ngroups + 1)]
    return None


_REGEXP_OPTS = (Opt("set", "s", value=True, repeatable=True),)


def cmd_regexp(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.machine.modules.add("regexp")
    try:
        state, pos = parse_args(_REGEXP_OPTS, args)
    except HelpRequested:
        interp.write("Usage: regexp [-s [NUMBER:]VARNAME] REGEXP STRING\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    if len(pos) != 2:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "two arguments expected")
    try:
        prog, ngroups = compile_ere(pos[0])
    except RegexError as exc:
        return interp.error(E.GRUB_ERR_TEST_FAILURE, str(exc))
    subject = pos[1]
    spans = search_ere(prog, ngroups, subject, interp.step)
    if spans is None:
        return interp.error(E.GRUB_ERR_TEST_FAILURE, "No match")
    for spec in state.get("set") or []:
        colon = spec.find(":")
        if colon < 0:
            idx, var = 1, spec
        else:
            idx, _, _ = grub_strtoul(spec, 10)
            var = spec[colon + 1 :]
        if idx >= len(spans) or spans[idx][0] == -1:
            interp.unset(var)
        else:
            a, b = spans[idx]
            interp.set(var, subject[a:b])
    return 0
