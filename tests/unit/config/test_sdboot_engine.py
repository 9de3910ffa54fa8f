"""systemd-boot engine: loader.conf, Type #1 entries, sorting, boot counting, globs, versions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from enginekit import Expect, check, guest

from virtkit.boot.config.sdboot import efi_fnmatch, load_sdboot_menu, parse_tries, uapi_vercmp
from virtkit.errors import FileNotFound
from virtkit.limits import Limits

E = "hd0,gpt1"
KERNELS = {"/vmlinuz-a": b"", "/vmlinuz-b": b"", "/vmlinuz-c": b"", "/initrd-a": b"", "/ucode": b""}


def ent(title: str, linux: str = "/vmlinuz-a", **keys: str) -> str:
    lines = [f"title {title}", f"linux {linux}"] + [f"{k.replace('_', '-')} {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    entries: dict[str, str]
    expect: Expect
    conf: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)


CASES = [
    Case("sorted-by-id-descending", {"a.conf": ent("A"), "b.conf": ent("B"), "b10.conf": ent("B10"), "b9.conf": ent("B9")},
         Expect(titles=["B10", "B9", "B", "A"], ids=["b10.conf", "b9.conf", "b.conf", "a.conf"], default=(0,),
                trail_contain=["no `default` in loader.conf -> the first entry in sort order"])),
    Case("sort-key-entries-first", {"z.conf": ent("Z"), "a.conf": ent("A", sort_key="x")}, Expect(titles=["A", "Z"])),
    Case("sort-key-then-version", {
        "f1.conf": ent("F", sort_key="fedora", version="6.5.6"),
        "f2.conf": ent("F", sort_key="fedora", version="6.10.3"),
        "d.conf": ent("D", sort_key="debian", version="9"),
    }, Expect(titles=["D", "F (6.10.3)", "F (6.5.6)"])),
    Case("machine-id-groups", {
        "1.conf": ent("X", sort_key="s", machine_id="bbbb", version="1"),
        "2.conf": ent("X", sort_key="s", machine_id="aaaa", version="1"),
    }, Expect(ids=["2.conf", "1.conf"], titles=["X (1) (aaaa)", "X (1) (bbbb)"])),
    Case("boot-counting-suffix-removed", {"arch+3-1.conf": ent("Arch")},
         Expect(ids=["arch.conf"], notes_contain={0: ["boot counting: 3 tries left, 1 done"]})),
    Case("no-tries-left-sorted-last", {"a+0-3.conf": ent("Bad"), "b.conf": ent("Good")},
         Expect(titles=["Good", "Bad"], notes_contain={1: ["marked bad, sorted last"]})),
    Case("more-tries-first-on-ties", {"x+1-2.conf": ent("X"), "x+2-1.conf": ent("X")},
         Expect(extra=lambda m: _note0(m, "2 tries left"))),
    Case("repeated-options-joined-and-initrds", {"a.conf": "title A\nlinux /vmlinuz-a\ninitrd /ucode\ninitrd /initrd-a\n"
                                                 "options root=/dev/vda2\noptions quiet\n"},
         Expect(cmdlines=["initrd=\\ucode initrd=\\initrd-a root=/dev/vda2 quiet"],
                initrds=[[f"({E})/ucode", f"({E})/initrd-a"]])),
    Case("quotes-stripped", {"a.conf": 'title "Quoted"\nlinux /vmlinuz-a\noptions "a b"\n'},
         Expect(titles=["Quoted"], cmdlines=["a b"])),
    Case("title-falls-back-to-id", {"nameless.conf": "linux /vmlinuz-a\n"}, Expect(titles=["nameless.conf"])),
    Case("comments-and-blank-lines", {"a.conf": "# c\n\n  title   A  \nlinux\t/vmlinuz-a\n"}, Expect(titles=["A"])),
    Case("missing-kernel-hidden", {"a.conf": ent("A"), "b.conf": ent("B", linux="/gone")},
         Expect(titles=["A"], warnings_contain=["/gone does not exist on (hd0,gpt1); systemd-boot hides the entry"])),
    Case("no-linux-ignored", {"a.conf": ent("A"), "n.conf": "title N\noptions x\n"},
         Expect(titles=["A"], warnings_contain=["no `linux`, `efi` or `uki` line"])),
    Case("linux-and-efi-conflict", {"a.conf": "title A\nlinux /vmlinuz-a\nefi /vmlinuz-b\n"},
         Expect(titles=[], default=None, warnings_contain=["both `linux` and `efi`"])),
    Case("other-architecture-skipped", {"a.conf": ent("A", architecture="aa64"), "b.conf": ent("B")},
         Expect(titles=["B"], warnings_contain=["architecture aa64 is not x64"])),
    Case("efi-entry-chainloads", {"shell.conf": "title Shell\nefi /vmlinuz-c\n"}, Expect(kinds=["chainload"])),
    Case("bad-file-names-skipped", {".hidden.conf": ent("H"), "auto-x.conf": ent("Auto"), "x.txt": ent("T"),
                                    "UPPER.CONF": ent("U")}, Expect(titles=["U"], ids=["upper.conf"])),
    Case("default-glob", {"arch.conf": ent("Arch"), "arch-lts.conf": ent("LTS"), "debian.conf": ent("Deb")},
         Expect(default=(2,), trail_contain=["`default arch-*` (loader.conf:1) matches entry id 'arch-lts.conf'"]),
         conf="default arch-*\n"),
    Case("default-is-case-insensitive", {"arch.conf": ent("Arch"), "zed.conf": ent("Zed")},
         Expect(default=(1,)), conf="default ARCH.CONF\n"),
    Case("default-without-conf-suffix", {"arch.conf": ent("Arch"), "zed.conf": ent("Zed")},
         Expect(default=(0,), trail_contain=["matches no entry id", "before v245"]), conf="default arch\n"),
    Case("default-saved", {"arch.conf": ent("Arch")},
         Expect(default=(0,), trail_contain=["LoaderEntryLastBooted"]), conf="default @saved\n"),
    Case("default-other-special-ignored", {"arch.conf": ent("Arch")},
         Expect(warnings_contain=["unsupported special entry identifier @foo"]), conf="default @foo\n"),
    Case("timeout-seconds", {"a.conf": ent("A")}, Expect(timeout=5.0, timeout_style="menu"), conf="timeout 5\n"),
    Case("timeout-default-zero", {"a.conf": ent("A")}, Expect(timeout=0.0, timeout_style="hidden"), conf="editor no\n"),
    Case("timeout-menu-force", {"a.conf": ent("A")}, Expect(timeout=None, timeout_style="menu"), conf="timeout menu-force\n"),
    Case("timeout-menu-hidden", {"a.conf": ent("A")}, Expect(timeout=0.0, timeout_style="hidden"),
         conf="timeout menu-hidden\n"),
    Case("timeout-bad", {"a.conf": ent("A")}, Expect(timeout=0.0, warnings_contain=["timeout 5s: not a number"]),
         conf="timeout 5s\n"),
    Case("uki-listed-as-other", {"u.conf": "title U\nuki /vmlinuz-c\n"}, Expect(kinds=["other"])),
    Case("type2-ukis-warned", {"a.conf": ent("A")}, Expect(warnings_contain=["Type #2 unified kernel images"]),
         files={"/EFI/Linux/arch.efi": b""}),
]


def _note0(menu: object, frag: str) -> None:
    assert any(frag in n for n in menu.items[0].notes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sdboot(case: Case) -> None:
    tree = {**KERNELS, **{f"/loader/entries/{n}": t.encode() for n, t in case.entries.items()}, **case.files}
    if case.conf is not None:
        tree["/loader/loader.conf"] = case.conf.encode()
    files = guest({E: tree}, hd0_gpt1={"fs_type": "vfat"})
    menu = load_sdboot_menu(files, E, "/loader/loader.conf", limits=Limits())
    assert menu.loader == "systemd-boot"
    check(menu, case.expect)


def test_xbootldr_entries_merged() -> None:
    files = guest({E: {"/loader/loader.conf": "timeout 3\n", "/loader/entries/a.conf": ent("A"), **KERNELS},
                   "hd0,gpt2": {"/loader/entries/b.conf": ent("B", linux="/k"), "/k": b""},
                   "hd0,gpt3": {"/loader/entries/c.conf": ent("C", linux="/k"), "/k": b""}},
                  hd0_gpt1={"fs_type": "vfat"}, hd0_gpt2={"fs_type": "vfat"}, hd0_gpt3={"fs_type": "ext4"})
    menu = load_sdboot_menu(files, E, "/loader/loader.conf", limits=Limits())
    check(menu, Expect(titles=["B", "A"], kernels=["(hd0,gpt2)/k", f"({E})/vmlinuz-a"]))


def test_nothing_there() -> None:
    with pytest.raises(FileNotFound, match=r"neither loader\.conf nor entries"):
        load_sdboot_menu(guest({E: {"/x": b""}}), E, "/loader/loader.conf", limits=Limits())


@pytest.mark.parametrize(("a", "op", "b"), [
    ("1.2", "<", "1.10"), ("1.2~rc1", "<", "1.2"), ("123-a", ">", "123"), ("123a", ">", "123.a"),
    ("5.11.0-0.rc5", "<", "5.11.0-1"), ("a", "<", "b"), ("1.0^post", ">", "1.0-1"), ("abc", "<", "abcd"),
    ("0001", "==", "1"), ("1_a", "==", "1a"), ("", "==", ""), ("1", ">", ""), ("~1", "<", ""), ("6.10.12", ">", "6.10.3"),
    ("0-rescue", "<", "6.5.6-300.fc39.x86_64"), ("122.1", "<", "123~rc1-1"), ("123~rc1-1", "<", "123"),
    ("123", "<", "123-a"), ("123-a", "<", "123-a.1"), ("123-a.1", "<", "123-1"), ("123-1", "<", "123-1.1"),
    ("123-1.1", "<", "123^post1"), ("123^post1", "<", "123.a-1"), ("123.a-1", "<", "123.1-1"),
    ("123.1-1", "<", "123a-1"), ("123a-1", "<", "124-1"),
])
def test_uapi_vercmp_table(a: str, op: str, b: str) -> None:
    want = {"<": -1, "==": 0, ">": 1}[op]
    assert uapi_vercmp(a, b) == want
    assert uapi_vercmp(b, a) == -want


@pytest.mark.parametrize(("pattern", "text", "hit"), [
    ("arch*", "arch-lts.conf", True), ("*lts*", "arch-lts.conf", True), ("arch", "arch.conf", False),
    ("a?ch.conf", "arch.conf", True), ("[a-c]rch.conf", "brch.conf", True), ("[!a]rch.conf", "!rch.conf", True),
    ("[]]x", "]x", True), ("\\*x", "*x", True), ("\\*x", "ax", False), ("*", "", True), ("a*b*c", "aXbYc", True),
    ("a*b*c", "aXbY", False), ("[a-", "a", False), ("*" * 40 + "b", "a" * 200, False),
])
def test_efi_fnmatch(pattern: str, text: str, hit: bool) -> None:
    assert efi_fnmatch(pattern, text) is hit


@pytest.mark.parametrize(("name", "expected"), [
    ("a+3.conf", ("a.conf", 3, 0)), ("a+3-1.conf", ("a.conf", 3, 1)), ("a+b+2-0.conf", ("a+b.conf", 2, 0)),
    ("a.conf", ("a.conf", None, None)), ("a+x.conf", ("a+x.conf", None, None)), ("a+3-.conf", ("a+3-.conf", None, None)),
    ("a+3-1x.conf", ("a+3-1x.conf", None, None)), ("a+99999999999.conf", ("a+99999999999.conf", None, None)),
])
def test_parse_tries(name: str, expected: tuple[object, ...]) -> None:
    assert parse_tries(name) == expected
