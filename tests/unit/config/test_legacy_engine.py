"""GRUB legacy engine: one row per directive and quirk of GRUB 0.97, exact expectations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from enginekit import Expect, check, guest

from virtkit.boot.config.grub_legacy import load_grub_legacy_menu, parse_maxint, split_logical_lines
from virtkit.limits import Limits

P1 = "hd0,msdos1"
K = {"/vmlinuz-a": b"", "/vmlinuz-b": b"", "/initrd-a": b"", "/initrd-b": b"", "/xen.gz": b""}
TWO = "title A\nkernel /vmlinuz-a ro\ntitle B\nkernel /vmlinuz-b quiet\n"


@dataclass(frozen=True)
class Case:
    id: str
    cfg: str
    expect: Expect
    files: dict[str, bytes] = field(default_factory=dict)
    more: dict[str, dict[str, bytes]] = field(default_factory=dict)  # other devices
    cfg_path: str = "/grub/menu.lst"


CASES = [
    # -- default ------------------------------------------------------------------------------
    Case("no-default-is-0", TWO, Expect(default=(0,), trail_contain=["no `default` command -> entry 0"])),
    Case("default-number", "default 1\n" + TWO, Expect(default=(1,), trail_contain=["`default 1` (menu.lst:1)"])),
    Case("default-equals-separator", "default=1\n" + TWO, Expect(default=(1,))),
    Case("default-equals-and-blanks", "default = 1\n" + TWO, Expect(default=(1,))),
    Case("default-trailing-garbage", "default 1abc\n" + TWO, Expect(default=(1,))),
    Case("default-hex", "default 0x1\n" + TWO, Expect(default=(1,))),
    Case("default-negative-rejected", "default -1\n" + TWO,
         Expect(default=(0,), warnings_contain=["`default -1`: not a number; GRUB legacy keeps the previous default"])),
    Case("default-overflow-rejected", "default 99999999999\n" + TWO,
         Expect(default=(0,), warnings_contain=["number overflow"])),
    Case("default-last-wins", "default 1\ndefault 0\n" + TWO, Expect(default=(0,))),
    Case("default-past-end-is-0", "default 7\n" + TWO,
         Expect(default=(0,), trail_contain=["entry 7 does not exist (2 entries) -> entry 0"])),
    Case("default-past-end-uses-fallback", "default 7\nfallback 1\n" + TWO,
         Expect(default=(1,), fallback=[], trail_contain=["-> first fallback entry 1"])),
    Case("default-saved-reads-default-file", "default saved\n" + TWO,
         Expect(default=(1,), trail_contain=["`default saved` (menu.lst:1)", "(hd0,msdos1)/grub/default says 1"]),
         files={"/grub/default": b"1\n#\n# WARNING: ...\n"}),
    Case("default-saved-no-file-is-0", "default saved\n" + TWO,
         Expect(default=(0,), trail_contain=["(hd0,msdos1)/grub/default does not exist -> saved entry 0"])),
    Case("default-saved-only-9-bytes", "default saved\n" + TWO,
         Expect(default=(0,), trail_contain=["not a number -> saved entry 0"]),
         files={"/grub/default": b"         1\n"}),
    Case("default-saved-trailing-space-is-not-saved", "default saved \n" + TWO,
         Expect(default=(0,), warnings_contain=["`default saved `: not a number"]),
         files={"/grub/default": b"1\n"}),
    Case("default-saved-next-to-grub-conf", "default saved\n" + TWO, Expect(default=(1,)),
         files={"/boot/grub/default": b"1"}, cfg_path="/boot/grub/grub.conf"),
    # -- fallback / timeout / hiddenmenu --------------------------------------------------------
    Case("fallback-list", "fallback 1 0\n" + TWO, Expect(fallback=[(1,), (0,)])),
    Case("fallback-past-end-dropped", "fallback 5 1\n" + TWO, Expect(fallback=[(1,)])),
    Case("fallback-duplicate-rejected", "fallback 1 1\n" + TWO,
         Expect(fallback=[], warnings_contain=["1 is repeated; GRUB legacy rejects the command"])),
    Case("timeout-seconds", "timeout 10\n" + TWO, Expect(timeout=10.0, timeout_style="menu")),
    Case("timeout-absent-waits", TWO, Expect(timeout=None)),
    Case("timeout-zero", "timeout 0\n" + TWO, Expect(timeout=0.0)),
    Case("timeout-bad", "timeout soon\n" + TWO, Expect(timeout=None, warnings_contain=["`timeout soon`: not a number"])),
    Case("hiddenmenu", "hiddenmenu\ntimeout 3\n" + TWO, Expect(timeout=3.0, timeout_style="hidden")),
    Case("password-ignored-safely", "password --md5 $1$abc$xyz\n" + TWO,
         Expect(default=(0,), warnings_contain=["`password` set: GRUB legacy locks interactive editing"])),
    # -- titles and lines -----------------------------------------------------------------------
    Case("title-with-equals", "title=Linux 2.6\nkernel /vmlinuz-a\n", Expect(titles=["Linux 2.6"])),
    Case("title-keeps-inner-blanks", "title   A  B\nkernel /vmlinuz-a\n", Expect(titles=["A  B"])),
    Case("empty-title-dropped", "title Empty\ntitle A\nkernel /vmlinuz-a\ntitle Last\n",
         Expect(titles=["A"], warnings_contain=["entry 'Empty' has no commands; GRUB legacy drops it",
                                                "entry 'Last' has no commands"])),
    Case("unknown-command-not-an-entry-command", "title A\nfrobnicate\ntitle B\nkernel /vmlinuz-b\n",
         Expect(titles=["B"], warnings_contain=["unknown command `frobnicate` skipped"])),
    Case("kernel-before-title-ignored", "kernel /vmlinuz-a\n" + TWO,
         Expect(titles=["A", "B"], warnings_contain=["`kernel` before the first `title` is ignored"])),
    Case("backslash-continuation", "title A\nkernel /vmlinuz-a ro \\\n  quiet\n",
         Expect(cmdlines=["ro    quiet"])),
    Case("comment-continuation-swallows-next-line", "# comment \\\ndefault 1\n" + TWO, Expect(default=(0,))),
    Case("comment-only-at-line-start", "title A # not a comment\nkernel /vmlinuz-a\n",
         Expect(titles=["A # not a comment"])),
    Case("tabs-and-cr", "title\tA\r\n\tkernel\t/vmlinuz-a\tro\r\n", Expect(titles=["A"], cmdlines=["ro"])),
    Case("nul-ends-a-command", "title A\nkernel /vmlinuz-a ro\0 evil\n", Expect(cmdlines=["ro"])),
    Case("cmdline-keeps-trailing-blank", "title A\nkernel /vmlinuz-a ro quiet \n", Expect(cmdlines=["ro quiet "])),
    # -- root and paths -------------------------------------------------------------------------
    Case("root-0-based-partition", "title A\nroot (hd0,1)\nkernel /vmlinuz-b\n",
         Expect(kernels=["(hd0,msdos2)/vmlinuz-b"]), more={"hd0,msdos2": {"/vmlinuz-b": b""}}),
    Case("root-whole-disk", "title A\nroot (hd1)\nkernel /vmlinuz-b\n",
         Expect(kernels=["(hd1)/vmlinuz-b"]), more={"hd1": {"/vmlinuz-b": b""}}),
    Case("explicit-device-in-path", "title A\nkernel (hd0,1)/vmlinuz-b\ninitrd /initrd-a\n",
         Expect(kernels=["(hd0,msdos2)/vmlinuz-b"], initrds=[["(hd0,msdos1)/initrd-a"]]),
         more={"hd0,msdos2": {"/vmlinuz-b": b""}}),
    Case("root-missing-falls-back-to-config-device", "title A\nroot (hd3,0)\nkernel /vmlinuz-a\n",
         Expect(kinds=["linux"], kernels=["(hd0,msdos1)/vmlinuz-a"],
                notes_contain={0: ["(hd3,0) is not a device of this guest", "as pygrub and PV-GRUB do"]})),
    Case("root-without-parentheses-fails", "title A\nroot hd0,0\nkernel /vmlinuz-a\n",
         Expect(kinds=["none"], notes_contain={0: ["a device must be written in parentheses"]})),
    Case("root-floppy-not-a-guest-disk", "title A\nroot (fd0)\nkernel /vmlinuz-a\n",
         Expect(kernels=["(hd0,msdos1)/vmlinuz-a"], notes_contain={0: ["is a floppy device"]})),
    Case("relative-kernel-path-fails", "title A\nkernel vmlinuz-a\n",
         Expect(kinds=["none"], notes_contain={0: ["needs an absolute path or a blocklist"]})),
    Case("kernel-dotdot-normalised", "title A\nkernel /boot/../vmlinuz-a\n", Expect(kernels=["(hd0,msdos1)/vmlinuz-a"])),
    Case("missing-kernel-warned", "title A\nkernel /nope\n",
         Expect(kinds=["linux"], warnings_contain=["kernel (hd0,msdos1)/nope does not exist"])),
    Case("uuid-sets-root", "title A\nuuid 1234-abcd\nkernel /vmlinuz-b\n",
         Expect(kernels=["(hd0,msdos2)/vmlinuz-b"]), more={"hd0,msdos2": {"/vmlinuz-b": b""}}),
    # -- kernel, initrd, module, chainloader ------------------------------------------------------
    Case("kernel-options-skipped", "title A\nkernel --type=linux --no-mem-option /vmlinuz-a ro\n",
         Expect(kinds=["linux"], kernels=["(hd0,msdos1)/vmlinuz-a"], cmdlines=["ro"])),
    Case("kernel-type-netbsd-other", "title A\nkernel --type=netbsd /vmlinuz-a\n", Expect(kinds=["other"])),
    Case("second-initrd-replaces-first", "title A\nkernel /vmlinuz-a\ninitrd /initrd-a\ninitrd /initrd-b\n",
         Expect(initrds=[["(hd0,msdos1)/initrd-b"]])),
    Case("initrd-args-ignored", "title A\nkernel /vmlinuz-a\ninitrd /initrd-a extra\n",
         Expect(initrds=[["(hd0,msdos1)/initrd-a"]])),
    Case("initrd-before-kernel-fails", "title A\ninitrd /initrd-a\nkernel /vmlinuz-a\n",
         Expect(kinds=["none"], notes_contain={0: ["`initrd` before a Linux `kernel`"]})),
    Case("new-kernel-drops-initrd", "title A\nkernel /vmlinuz-a\ninitrd /initrd-a\nkernel /vmlinuz-b\n",
         Expect(kernels=["(hd0,msdos1)/vmlinuz-b"], initrds=[[]])),
    Case("xen-entry", "title Xen\nkernel /xen.gz dom0_mem=512M\nmodule /vmlinuz-a ro root=/dev/sda1\nmodule /initrd-a\n",
         Expect(kinds=["xen"], kernels=["(hd0,msdos1)/xen.gz"], cmdlines=["dom0_mem=512M"],
                notes_contain={0: ["Xen hypervisor entry", "module 1: (hd0,msdos1)/vmlinuz-a ro root=/dev/sda1 (the dom0",
                                   "module 2: (hd0,msdos1)/initrd-a"]})),
    Case("multiboot-not-xen-is-other", "title M\nkernel /boot/mb.elf\nmodule /initrd-a\n",
         Expect(kinds=["other"], notes_contain={0: ["multiboot kernel"]})),
    Case("module-before-kernel-fails", "title M\nmodule /initrd-a\n",
         Expect(kinds=["none"], notes_contain={0: ["`module` before `kernel`"]})),
    Case("chainloader", "title Windows\nrootnoverify (hd0,1)\nchainloader +1\nmakeactive\n",
         Expect(kinds=["chainload"], notes_contain={0: ["chainloader +1", "`makeactive` changes partition tables"]}),
         more={"hd0,msdos2": {}}),
    Case("chainloader-force", "title W\nchainloader --force +1\n", Expect(kinds=["chainload"])),
    Case("configfile-entry-other", "title More\nconfigfile /grub/other.lst\n", Expect(kinds=["other"])),
    Case("lock-noted", "title A\nlock\nkernel /vmlinuz-a\n",
         Expect(kinds=["linux"], notes_contain={0: ["asks for the menu password"]})),
    Case("findroot-unsupported", "title S\nfindroot (pool_rpool,0,a)\nkernel /vmlinuz-a\n", Expect(kinds=["none"])),
    # -- savedefault ----------------------------------------------------------------------------
    Case("savedefault-recorded", "default 1\ntitle A\nkernel /vmlinuz-a\ntitle B\nkernel /vmlinuz-b\nsavedefault\n",
         Expect(env_writes={"(hd0,msdos1)/grub/default": "1"})),
    Case("savedefault-explicit-number", "title A\nkernel /vmlinuz-a\nsavedefault 1\n" + TWO,
         Expect(env_writes={"(hd0,msdos1)/grub/default": "1"})),
    Case("savedefault-only-for-default", "title A\nkernel /vmlinuz-a\ntitle B\nkernel /vmlinuz-b\nsavedefault\n",
         Expect(env_writes={})),
    Case("no-entries", "default 0\ntimeout 5\n",
         Expect(default=None, titles=[], trail_contain=["the menu has no entries"])),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_grub_legacy(case: Case) -> None:
    tree = {**K, case.cfg_path: case.cfg.encode(), **case.files}
    files = guest({P1: tree, **case.more}, hd0_msdos1={"aliases": ("hd0,1",)}, hd0_msdos2={"aliases": ("hd0,2",),
                  "uuid": "1234-ABCD"}, hd1={})
    menu = load_grub_legacy_menu(files, P1, case.cfg_path, limits=Limits())
    assert menu.loader == "grub-legacy"
    check(menu, case.expect)


def test_gpt_partition_numbering() -> None:
    files = guest({"hd0,gpt1": {}, "hd0,gpt2": {"/grub/menu.lst": "title A\nroot (hd0,1)\nkernel /vmlinuz\n",
                                                "/vmlinuz": ""}})
    menu = load_grub_legacy_menu(files, "hd0,gpt2", "/grub/menu.lst", limits=Limits())
    check(menu, Expect(kernels=["(hd0,gpt2)/vmlinuz"], no_warnings=True))


def test_origin_points_at_title_line() -> None:
    files = guest({P1: {**K, "/grub/menu.lst": "# c\n\ntitle A\n  kernel /vmlinuz-a\n"}})
    menu = load_grub_legacy_menu(files, P1, "/grub/menu.lst", limits=Limits())
    origin = menu.items[0].origin
    assert origin is not None and (origin.line, origin.col) == (3, 1)
    assert origin.render_prefix() == "(hd0,msdos1)/grub/menu.lst:3:1"


@pytest.mark.parametrize(("text", "expected"), [
    ("12", (12, "", None)), ("0x1F", (31, "", None)), ("0X1f zz", (31, " zz", None)), ("7up", (7, "up", None)),
    ("", (None, "", "not a number")), ("-1", (None, "-1", "not a number")), ("0x", (None, "0x", "not a number")),
    ("2147483647", (2147483647, "", None)), ("2147483648", (None, "8", "number overflow")),
])
def test_parse_maxint(text: str, expected: tuple[object, str, object]) -> None:
    assert parse_maxint(text) == expected


def test_logical_lines_exact() -> None:
    lines = split_logical_lines("  a b\\\nc\n#x\\\ny\n\n\\\n  # z\nd\r\n")
    assert [(ln.lineno, ln.col, ln.text) for ln in lines] == [(1, 3, "a b c"), (8, 1, "d")]
