"""Boot Loader Specification snippets as Fedora/RHEL GRUB's ``blscfg`` reads them.

References:
    rhboot/grub2 grub-core/commands/blscfg.c (Fedora, RHEL 9; RHEL 8 branch for the
    version-key sort): ``read_entry`` (line rules), ``vercmp`` (rpm's rpmvercmp),
    ``split_package_string``/``bls_cmp``/``bls_add_entry`` (file-name sort, newest
    first, an equal file dropped), ``expand_val`` (``$var`` expansion of ``options``
    and ``grub_users`` when ``blscfg`` runs), ``early_initrd_list``, ``create_entry``
    (the menu entry body).
    ../shared/reference/grub2-semantics.md section 13.

This is GRUB's reading of the snippets, quirks included (the systemd-boot engine
reads the same files by the UAPI rules and lives elsewhere):

* leading blanks are removed and ``#`` lines skipped; the key ends at the first
  space, or only if there is none at the first tab (``title<TAB>My Linux`` gives the
  key ``title<TAB>My``); the value starts after the blanks that follow;
* a line with no separator or nothing after it - an empty line included - ends
  the file: later keys are lost;
* keys may repeat (``initrd``, ``grub_class``, ``grub_arg``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "BlsEntry",
    "BlsMenuItem",
    "bls_menu_item",
    "expand_bls_value",
    "parse_bls_snippet",
    "rpmvercmp",
    "sort_bls_entries",
    "split_nvr",
]


@dataclass(frozen=True)
class BlsEntry:
    """One snippet file.

    Attributes:
        id: file name without ``.conf`` (what ``saved_entry`` names).
        path: where it was read ("(hd0,msdos1)/loader/entries/x.conf").
        keys: (key, value) pairs in file order, repeats kept.
        truncated_at: 1-based line number where reading stopped early (a line with
            no value), or None.
    """

    id: str
    path: str
    keys: tuple[tuple[str, str], ...]
    truncated_at: int | None = None

    def get(self, key: str) -> str | None:
        """The first value of ``key`` (``bls_get_val``)."""
        for k, v in self.keys:
            if k == key:
                return v
        return None

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` in order (``bls_make_list``)."""
        return [v for k, v in self.keys if k == key]


def parse_bls_snippet(text: str, entry_id: str, path: str = "") -> BlsEntry:
    """Parse one snippet with blscfg's line rules (see the module docstring)."""
    keys: list[tuple[str, str]] = []
    truncated: int | None = None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, raw in enumerate(lines, 1):
        line = raw.replace("\r", "")
        nul = line.find("\0")
        if nul >= 0:
            line = line[:nul]
        line = line.lstrip(" \t")
        if line.startswith("#"):
            continue
        sep = line.find(" ")
        if sep < 0:
            sep = line.find("\t")
        if sep < 0 or sep == len(line) - 1:
            truncated = lineno if lineno < len(lines) else None
            break
        key = line[:sep]
        value = line[sep + 1 :].lstrip(" \t")
        keys.append((key, value))
    return BlsEntry(entry_id, path, tuple(keys), truncated)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version comparison as blscfg's ``vercmp`` does it: 1 if a is newer, -1 if b, 0 equal.

    Segments are runs of ASCII digits or ASCII letters; other characters separate
    them.  ``~`` sorts before everything (even the end).  Numbers compare by value
    (leading zeros dropped), a number beats letters, letters compare bytewise; when
    all segments are equal the one with characters left over is newer.
    """
    if a == b:
        return 0
    i = j = 0
    na, nb = len(a), len(b)

    def alnum(c: str) -> bool:
        return c.isascii() and c.isalnum()

    while i < na or j < nb:
        while i < na and not alnum(a[i]) and a[i] != "~":
            i += 1
        while j < nb and not alnum(b[j]) and b[j] != "~":
            j += 1
        ta = i < na and a[i] == "~"
        tb = j < nb and b[j] == "~"
        if ta or tb:
            if not ta:
                return 1
            if not tb:
                return -1
            i += 1
            j += 1
            continue
        if i >= na or j >= nb:
            break
        si, sj = i, j
        if a[i].isascii() and a[i].isdigit():
            while i < na and a[i].isascii() and a[i].isdigit():
                i += 1
            while j < nb and b[j].isascii() and b[j].isdigit():
                j += 1
            isnum = True
        else:
            while i < na and a[i].isascii() and a[i].isalpha():
                i += 1
            while j < nb and b[j].isascii() and b[j].isalpha():
                j += 1
            isnum = False
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            return 1 if isnum else -1
        if isnum:
            seg_a = seg_a.lstrip("0")
            seg_b = seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            ba = seg_a.encode("utf-8", "surrogateescape")
            bb = seg_b.encode("utf-8", "surrogateescape")
            return 1 if ba > bb else -1
    if i >= na and j >= nb:
        return 0
    return -1 if i >= na else 1


def split_nvr(s: str) -> tuple[str, str, str]:
    """``split_package_string`` with a name: (name, version, release) at the last two ``-``.

    With one ``-`` the part after it is the version; with none the whole is the name.
    """
    head, dash, release = s.rpartition("-")
    if not dash:
        return s, "", ""
    name, vdash, version = head.rpartition("-")
    if not vdash:
        return head, release, ""
    return name, version, release


def _name_cmp(a: BlsEntry, b: BlsEntry) -> int:
    na, va, ra = split_nvr(a.id)
    nb, vb, rb = split_nvr(b.id)
    return rpmvercmp(na, nb) or rpmvercmp(va, vb) or rpmvercmp(ra, rb)


def sort_bls_entries(entries: Sequence[BlsEntry], mode: str = "name") -> tuple[list[BlsEntry], list[BlsEntry]]:
    """Order entries newest first.

    Args:
        entries: snippets in the order the directory listing returned them.
        mode: "name" (Fedora, RHEL 9: by file name as name-version-release; a file
            comparing equal to one already placed is dropped) or "version" (RHEL 8:
            by the ``version`` key when every entry has one, then by file name; nothing
            dropped).

    Returns:
        (ordered entries, dropped entries).
    """
    if mode == "version":
        use_version = all(e.get("version") is not None for e in entries)

        def key_cmp(a: BlsEntry, b: BlsEntry) -> int:
            if use_version:
                r = rpmvercmp(a.get("version") or "", b.get("version") or "")
                if r:
                    return r
            return rpmvercmp(a.id, b.id)

        import functools

        return sorted(entries, key=functools.cmp_to_key(key_cmp), reverse=True), []
    placed: list[BlsEntry] = []
    dropped: list[BlsEntry] = []
    for e in entries:
        for idx, p in enumerate(placed):
            r = _name_cmp(e, p)
            if r == 0:
                dropped.append(e)
                break
            if r == 1:
                placed.insert(idx, e)
                break
        else:
            placed.append(e)
    return placed, dropped


def expand_bls_value(value: str | None, get: Callable[[str], str | None]) -> str | None:
    """``expand_val``: ``$name`` references replaced when blscfg runs (grub2-semantics.md 13).

    Each defined variable's value is followed by one space; undefined ones vanish;
    ``\\$`` is kept as it is (the body is parsed again at boot, which turns it into ``$``).
    The result is None when nothing at all came out (a ``grub_users`` made only of an
    unset variable means "unrestricted").
    """
    if value is None:
        return None
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n and value[i + 1] == "$":
            out.append("\\$")
            i += 2
            continue
        if c == "$":
            j = i + 1
            while j < n and (value[j] == "_" or (value[j].isascii() and value[j].isalnum())):
                j += 1
            name = value[i + 1 : j]
            if not name:
                out.append("$")
            else:
                got = get(name)
                if got is not None:
                    out.append(got + " ")
            i = max(j, i + 1)
            continue
        out.append(c)
        i += 1
    return "".join(out) if out else None


@dataclass(frozen=True)
class BlsMenuItem:
    """What ``create_entry`` hands to ``grub_normal_add_menu_entry``."""

    title: str
    id: str
    args: tuple[str, ...]
    classes: tuple[str, ...]
    users: str | None
    hotkey: str | None
    body: str


def bls_menu_item(
    entry: BlsEntry,
    get: Callable[[str], str | None],
    *,
    rhel8: bool = False,
    boot_device: str = "($root)",
) -> BlsMenuItem | None:
    """Build the menu entry blscfg makes from ``entry`` (None when it has no ``linux`` key).

    Args:
        entry: the snippet.
        get: variable lookup at the time ``blscfg`` runs.
        rhel8: RHEL 8's body (``set gfx_payload=keep``, misspelt).
        boot_device: the prefix glued before every path (GRUB writes ``($root)``).
    """
    clinux = entry.get("linux")
    if clinux is None:
        return None
    title = entry.get("title")
    options = expand_bls_value(entry.get("options"), get)
    if options is None:
        options = expand_bls_value(get("default_kernelopts"), get)
    initrds = entry.get_all("initrd")
    users = expand_bls_value(entry.get("grub_users"), get)
    classes = tuple(entry.get_all("grub_class"))
    grub_args = entry.get_all("grub_arg")
    argv = (title if title is not None else clinux, *grub_args)
    early = get("early_initrd")
    early_list: list[str] = early.split(" ") if early is not None else []
    initrd_line = ""
    if early is not None or initrds:
        prefix_src = initrds[0] if initrds else clinux
        slash = prefix_src.rfind("/")
        prefix = prefix_src[: slash + 1] if slash >= 0 else ""
        parts = [f" {boot_device}{prefix}{e}" for e in early_list] if early is not None else []
        parts += [f" {boot_device}{i}" for i in initrds]
        initrd_line = "initrd" + "".join(parts) + "\n"
    body = "".join(
        [
            "savedefault\n" if get("save_default") == "true" else "",
            "load_video\n",
            "set gfx_payload=keep\n" if rhel8 else "set gfxpayload=keep\n",
            "insmod gzio\n",
            f"linux {boot_device}{clinux}{' ' if options is not None else ''}{options or ''}\n",
            initrd_line,
        ]
    )
    dtb = entry.get("devicetree")
    if dtb is not None:
        body += f"devicetree {boot_device}{dtb}\n"
    return BlsMenuItem(argv[0], entry.id, argv, classes, users, entry.get("grub_hotkey"), body)
