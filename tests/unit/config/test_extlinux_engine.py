"""extlinux/syslinux engine: one row per keyword and default rule of syslinux 6, exact expectations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from enginekit import Expect, check, guest

from virtkit.boot.config.extlinux import load_extlinux_menu, looking_at
from virtkit.boot.config.model import Submenu
from virtkit.errors import ConfigRuntimeError, LimitExceeded
from virtkit.limits import Limits

D = "hd0,msdos1"
K = {f"/boot/extlinux/{n}": b"" for n in ("vmlinuz", "vmlinuz-lts", "initrd", "initramfs-lts", "ucode.img")}
K["/vmlinuz-top"] = b""
TWO = "LABEL a\n KERNEL vmlinuz\nLABEL lts\n LINUX vmlinuz-lts\n"


@dataclass(frozen=True)
class Case:
    id: str
    cfg: str
    expect: Expect
    files: dict[str, bytes] = field(default_factory=dict)


CASES = [
    # -- keywords, case, paths ------------------------------------------------------------------
    Case("keywords-any-case", "default A\nlAbEl A\n  kErNeL vmlinuz\n  aPpEnD ro\n",
         Expect(default=(0,), ids=["A"], kernels=[f"({D})/boot/extlinux/vmlinuz"], cmdlines=["ro"])),
    Case("relative-to-config-dir", "DEFAULT a\n" + TWO,
         Expect(kernels=[f"({D})/boot/extlinux/vmlinuz", f"({D})/boot/extlinux/vmlinuz-lts"], no_warnings=True)),
    Case("absolute-from-fs-root", "DEFAULT a\nLABEL a\n KERNEL /vmlinuz-top\n", Expect(kernels=[f"({D})/vmlinuz-top"])),
    Case("label-without-kernel-boots-label-name", "DEFAULT vmlinuz\nLABEL vmlinuz\n APPEND x\n",
         Expect(kernels=[f"({D})/boot/extlinux/vmlinuz"], cmdlines=["x"])),
    Case("kernel-inline-args-before-append", "DEFAULT a\nLABEL a\n KERNEL vmlinuz ro\n APPEND quiet\n",
         Expect(cmdlines=["ro quiet"])),
    Case("global-append", "APPEND console=hvc0\nDEFAULT a\n" + TWO, Expect(cmdlines=["console=hvc0", "console=hvc0"])),
    Case("label-append-replaces-global", "APPEND console=hvc0\nDEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND ro\n",
         Expect(cmdlines=["ro"])),
    Case("append-dash-means-none", "APPEND console=hvc0\nDEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND -\n",
         Expect(cmdlines=[""])),
    Case("initrd-keyword", "DEFAULT a\nLABEL a\n LINUX vmlinuz\n INITRD initrd\n APPEND ro\n",
         Expect(initrds=[[f"({D})/boot/extlinux/initrd"]], cmdlines=["ro initrd=initrd"])),
    Case("initrd-comma-list", "DEFAULT a\nLABEL a\n LINUX vmlinuz\n INITRD ucode.img,initrd\n",
         Expect(initrds=[[f"({D})/boot/extlinux/ucode.img", f"({D})/boot/extlinux/initrd"]])),
    Case("initrd-in-append", "DEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND initrd=initrd root=/dev/xvda1\n",
         Expect(initrds=[[f"({D})/boot/extlinux/initrd"]], cmdlines=["initrd=initrd root=/dev/xvda1"])),
    Case("first-initrd-option-wins", "DEFAULT a\nLABEL a\n LINUX vmlinuz\n INITRD ucode.img\n APPEND initrd=initrd\n",
         Expect(initrds=[[f"({D})/boot/extlinux/initrd"]], cmdlines=["initrd=initrd initrd=ucode.img"])),
    Case("initrd-outside-label-ignored", "INITRD initrd\nDEFAULT a\nLABEL a\n KERNEL vmlinuz\n",
         Expect(initrds=[[]], warnings_contain=["INITRD outside a LABEL is ignored"])),
    Case("kernel-outside-label-ignored", "KERNEL vmlinuz\nDEFAULT a\n" + TWO,
         Expect(warnings_contain=["KERNEL outside a LABEL is ignored"])),
    Case("dotted-relative-path-is-linux", "DEFAULT a\nLABEL a\n KERNEL ../vmlinuz-top\n",
         Expect(kinds=["linux"], kernels=[f"({D})/boot/vmlinuz-top"]), files={"/boot/vmlinuz-top": b""}),
    Case("keyword-needs-a-blank-after-it", "DEFAULT a\nLABEL a\n KERNELvmlinuz\n",
         Expect(kernels=[f"({D})/boot/extlinux/a"], warnings_contain=["unknown keyword `KERNELvmlinuz`"])),
    Case("long-line-split-at-4095", "DEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND " + "x" * 5000 + "\n",
         Expect(extra=lambda m: _len_is(m, 4095 - len(" APPEND ")))),
    Case("cr-cuts-the-line", "DEFAULT a\nLABEL a\n KERNEL vmlinuz\r ignored\n", Expect(cmdlines=[""])),
    # -- entry kinds ---------------------------------------------------------------------------
    Case("localboot", "DEFAULT hd\nLABEL hd\n LOCALBOOT 0\n", Expect(kinds=["chainload"], kernels=[None])),
    Case("chain-c32", "DEFAULT w\nLABEL w\n COM32 chain.c32\n APPEND hd0 1\n", Expect(kinds=["chainload"])),
    Case("kernel-extension-c32-is-com32", "DEFAULT h\nLABEL h\n KERNEL hdt.c32\n", Expect(kinds=["other"])),
    Case("kernel-extension-bss-boot-sector", "DEFAULT h\nLABEL h\n KERNEL dos.bss\n", Expect(kinds=["chainload"])),
    Case("config-keyword", "DEFAULT h\nLABEL h\n CONFIG other.cfg\n",
         Expect(kinds=["other"], notes_contain={0: ["loads another configuration file"]})),
    Case("linux-c32", "DEFAULT l\nLABEL l\n KERNEL linux.c32\n APPEND vmlinuz ro initrd=initrd\n",
         Expect(kinds=["linux"], kernels=[f"({D})/boot/extlinux/vmlinuz"], cmdlines=["ro initrd=initrd"],
                initrds=[[f"({D})/boot/extlinux/initrd"]])),
    Case("mboot-xen", "DEFAULT x\nLABEL x\n KERNEL mboot.c32\n APPEND xen.gz dom0_mem=1G --- vmlinuz ro --- initrd\n",
         Expect(kinds=["xen"], kernels=[f"({D})/boot/extlinux/xen.gz"], cmdlines=["dom0_mem=1G"],
                notes_contain={0: ["module 1: (hd0,msdos1)/boot/extlinux/vmlinuz ro (the dom0 kernel)",
                                   "module 2: (hd0,msdos1)/boot/extlinux/initrd"]})),
    Case("fdt-noted", "DEFAULT a\nLABEL a\n LINUX vmlinuz\n FDT board.dtb\n",
         Expect(kinds=["linux"], notes_contain={0: ["FDT board.dtb: a U-Boot device-tree keyword"]})),
    Case("ipappend-noted", "DEFAULT a\nLABEL a\n KERNEL vmlinuz\n IPAPPEND 2\n",
         Expect(notes_contain={0: ["IPAPPEND/SYSAPPEND 2"]})),
    Case("say-is-output", "SAY Hello there\nDEFAULT a\n" + TWO, Expect(output=["Hello there"])),
    # -- defaults: no menu ---------------------------------------------------------------------
    Case("default-label-boots-at-once", "DEFAULT lts\n" + TWO,
         Expect(default=(1,), timeout=0.0, trail_contain=["DEFAULT lts", "no PROMPT 1 and no UI: syslinux boots it at once",
                                                         "-> entry [1] 'lts'"])),
    Case("default-extra-words-ignored", "DEFAULT lts single\n" + TWO,
         Expect(default=(1,), trail_contain=["the extra words 'single' are ignored"])),
    Case("default-is-case-sensitive", "DEFAULT LTS\n" + TWO,
         Expect(default=(2,), titles=["a", "lts", "DEFAULT LTS"], trail_contain=["names no label"])),
    Case("default-implicit-kernel", "DEFAULT /vmlinuz-top root=/dev/xvda1\n" + TWO,
         Expect(default=(2,), kernels=[f"({D})/boot/extlinux/vmlinuz", f"({D})/boot/extlinux/vmlinuz-lts",
                                       f"({D})/vmlinuz-top"], trail_contain=["an implicit entry, listed last as [2]"])),
    Case("implicit-0-forbids", "IMPLICIT 0\nDEFAULT /vmlinuz-top\n" + TWO,
         Expect(default=None, trail_contain=["IMPLICIT 0 forbids"])),
    Case("no-default-no-ui-prompt", TWO, Expect(default=None, trail_contain=["neither DEFAULT nor UI"])),
    Case("prompt-timeout-tenths", "PROMPT 1\nTIMEOUT 25\nDEFAULT a\n" + TWO,
         Expect(default=(0,), timeout=2.5, trail_contain=["waits 2.5 s (TIMEOUT in tenths of a second)"])),
    Case("prompt-without-timeout-waits", "PROMPT 1\nDEFAULT a\n" + TWO, Expect(default=(0,), timeout=None)),
    Case("ontimeout-used-after-timeout", "PROMPT 1\nTIMEOUT 30\nDEFAULT a\nONTIMEOUT lts\n" + TWO,
         Expect(default=(1,), timeout=3.0, trail_contain=["syslinux runs ONTIMEOUT instead of DEFAULT"])),
    Case("ontimeout-ignored-without-prompt", "TIMEOUT 30\nDEFAULT a\nONTIMEOUT lts\n" + TWO,
         Expect(default=(0,), timeout=0.0)),
    Case("ontimeout-extra-words-appended", "PROMPT 1\nTIMEOUT 30\nDEFAULT a\nONTIMEOUT lts single\n" + TWO,
         Expect(default=(2,), cmdlines=["", "", "single"], trail_contain=["syslinux appends the extra words"])),
    Case("hidden-label-bootable-by-default", "DEFAULT h\nLABEL a\n KERNEL vmlinuz\nLABEL h\n MENU HIDE\n KERNEL vmlinuz-lts\n",
         Expect(default=(1,), titles=["a", "h"], notes_contain={1: ["MENU HIDE"]})),
    # -- defaults: menu -------------------------------------------------------------------------
    Case("default-menu-c32-ignores-label", "DEFAULT menu.c32\nTIMEOUT 50\nLABEL a\n KERNEL vmlinuz\n",
         Expect(default=(0,), timeout=5.0, trail_contain=["starts the menu module, so DEFAULT names no label",
                                                         "no MENU DEFAULT in the menu -> its first entry"])),
    Case("menu-default", "DEFAULT vesamenu.c32\nLABEL a\n KERNEL vmlinuz\nLABEL lts\n MENU DEFAULT\n LINUX vmlinuz-lts\n",
         Expect(default=(1,), timeout=None, trail_contain=["MENU DEFAULT on label 'lts'", "the menu waits for a key"])),
    Case("last-menu-default-wins", "UI menu.c32\nLABEL a\n MENU DEFAULT\n KERNEL vmlinuz\nLABEL lts\n MENU DEFAULT\n"
         " LINUX vmlinuz-lts\n", Expect(default=(1,))),
    Case("ui-default-label-beats-menu-default", "UI menu.c32\nDEFAULT a\nLABEL a\n KERNEL vmlinuz\nLABEL lts\n"
         " MENU DEFAULT\n LINUX vmlinuz-lts\n", Expect(default=(0,), trail_contain=["DEFAULT a (extlinux.conf:2) names label 'a'"])),
    Case("ui-default-hidden-label-ignored", "UI menu.c32\nDEFAULT h\nLABEL a\n KERNEL vmlinuz\nLABEL h\n MENU HIDE\n"
         " KERNEL vmlinuz-lts\n", Expect(default=(0,), trail_contain=["names a hidden label; the menu ignores it"])),
    Case("ui-ontimeout", "UI menu.c32\nTIMEOUT 100\nONTIMEOUT lts\n" + TWO,
         Expect(default=(1,), timeout=10.0, trail_contain=["syslinux runs ONTIMEOUT, not the highlighted entry"])),
    Case("totaltimeout", "UI menu.c32\nTOTALTIMEOUT 600\n" + TWO, Expect(timeout=60.0, trail_contain=["TOTALTIMEOUT 600"])),
    Case("menu-hidden", "UI menu.c32\nMENU HIDDEN\nTIMEOUT 30\n" + TWO, Expect(timeout_style="hidden")),
    Case("menu-label-title-and-hotkey", "UI menu.c32\nLABEL a\n MENU LABEL ^Install now\n KERNEL vmlinuz\n",
         Expect(titles=["Install now"], ids=["a"], extra=lambda m: _hotkey(m, "I"))),
    Case("separator-skipped-disabled-kept", "UI menu.c32\nLABEL a\n KERNEL vmlinuz\nMENU SEPARATOR\nLABEL d\n"
         " MENU DISABLE\n KERNEL vmlinuz\n", Expect(titles=["a", "d"], kinds=["linux", "none"])),
    Case("disabled-default-skipped", "UI menu.c32\nLABEL d\n MENU DISABLE\n MENU DEFAULT\n KERNEL vmlinuz\nLABEL a\n"
         " KERNEL vmlinuz\n", Expect(default=(1,), trail_contain=["no MENU DEFAULT in the menu -> its first entry"])),
    Case("submenu-default", "UI menu.c32\nLABEL a\n KERNEL vmlinuz\nMENU BEGIN adv\n MENU TITLE Advanced\n MENU DEFAULT\n"
         " LABEL x\n  KERNEL vmlinuz-lts\n LABEL y\n  MENU DEFAULT\n  KERNEL vmlinuz\nMENU END\n",
         Expect(default=(1, 1), trail_contain=["it is submenu 'Advanced'", "MENU DEFAULT on label 'y'"],
                extra=lambda m: _submenu(m, 1, "Advanced", "adv"))),
    Case("timed-submenu-default-boots-nothing", "UI menu.c32\nTIMEOUT 10\nLABEL a\n KERNEL vmlinuz\nMENU BEGIN adv\n MENU DEFAULT\n"
         " LABEL x\n  KERNEL vmlinuz-lts\nMENU END\n",
         Expect(default=None, trail_contain=["on timeout menu.c32 has no command line for it and exits"])),
    Case("timed-disabled-first-entry-boots-nothing", "UI menu.c32\nTIMEOUT 10\nLABEL d\n MENU DISABLE\n KERNEL vmlinuz\n"
         "LABEL a\n KERNEL vmlinuz\n", Expect(default=None, trail_contain=["which cancels the timeout"])),
    Case("timed-ontimeout-beats-submenu-default", "UI menu.c32\nTIMEOUT 10\nONTIMEOUT a\nLABEL a\n KERNEL vmlinuz\n"
         "MENU BEGIN adv\n MENU DEFAULT\n LABEL x\n  KERNEL vmlinuz-lts\nMENU END\n", Expect(default=(0,))),
    Case("default-label-inside-submenu", "UI menu.c32\nDEFAULT x\nLABEL a\n KERNEL vmlinuz\nMENU BEGIN adv\n LABEL x\n"
         "  KERNEL vmlinuz-lts\nMENU END\n", Expect(default=(1, 0))),
    Case("menu-start", "UI menu.c32\nLABEL a\n KERNEL vmlinuz\nMENU BEGIN adv\n MENU START\n LABEL x\n  KERNEL vmlinuz-lts\n"
         "MENU END\n", Expect(default=(1, 0), trail_contain=["MENU START"])),
    Case("menu-goto-and-exit-not-bootable", "UI menu.c32\nMENU BEGIN m\n LABEL back\n  MENU EXIT\nMENU END\nLABEL g\n"
         " MENU GOTO m\n", Expect(kinds=["none", "none"], notes_contain={0: ["MENU EXIT"], 1: ["MENU GOTO m"]})),
    Case("text-help-skipped", "UI menu.c32\nLABEL a\n KERNEL vmlinuz\n TEXT HELP\n  LABEL fake\n  KERNEL nope\n ENDTEXT\n"
         " APPEND ro\n", Expect(titles=["a"], cmdlines=["ro"])),
    Case("menu-save-noted", "UI menu.c32\nMENU SAVE\n" + TWO, Expect(trail_contain=["MENU SAVE"])),
    Case("include-relative-to-config-dir", "INCLUDE more.cfg\nDEFAULT a\n",
         Expect(titles=["a"], kernels=[f"({D})/boot/extlinux/vmlinuz"]),
         files={"/boot/extlinux/more.cfg": b"LABEL a\n KERNEL vmlinuz\n"}),
    Case("include-missing-warned", "INCLUDE nope.cfg\nDEFAULT a\n" + TWO,
         Expect(warnings_contain=["INCLUDE nope.cfg: (hd0,msdos1)/boot/extlinux/nope.cfg does not exist"])),
    Case("menu-include-with-tag-is-submenu", "UI menu.c32\nMENU INCLUDE more.cfg Tools\n",
         Expect(titles=["a"], extra=lambda m: _submenu(m, 0, "Tools", "Tools")),
         files={"/boot/extlinux/more.cfg": b"LABEL a\n KERNEL vmlinuz\n"}),
]


def _len_is(menu: object, n: int) -> None:
    from virtkit.boot.config.model import BootMenu

    assert isinstance(menu, BootMenu)
    entry = menu.items[0]
    assert len(entry.cmdline) == n and set(entry.cmdline) == {"x"}  # type: ignore[union-attr]


def _hotkey(menu: object, key: str) -> None:
    assert menu.items[0].hotkey == key  # type: ignore[attr-defined]


def _submenu(menu: object, idx: int, title: str, ident: str) -> None:
    sub = menu.items[idx]  # type: ignore[attr-defined]
    assert isinstance(sub, Submenu) and (sub.title, sub.id) == (title, ident)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_extlinux(case: Case) -> None:
    files = guest({D: {**K, "/boot/extlinux/extlinux.conf": case.cfg.encode(), **case.files}})
    menu = load_extlinux_menu(files, D, "/boot/extlinux/extlinux.conf", limits=Limits())
    assert menu.loader == "extlinux"
    check(menu, case.expect)


def test_include_loop_is_refused() -> None:
    files = guest({D: {"/a.cfg": "INCLUDE b.cfg\n", "/b.cfg": "INCLUDE a.cfg\n"}})
    with pytest.raises(ConfigRuntimeError, match=r"INCLUDE loop: /a.cfg -> /b.cfg -> /a.cfg") as exc:
        load_extlinux_menu(files, D, "/a.cfg", limits=Limits())
    assert exc.value.location.render_prefix() == "(hd0,msdos1)/b.cfg:1:1"
    assert "included from (hd0,msdos1)/a.cfg:1:1 (INCLUDE b.cfg)" in exc.value.location.render_excerpt()


def test_include_depth_limit() -> None:
    tree = {f"/c{i}.cfg": f"INCLUDE c{i + 1}.cfg\n" for i in range(10)}
    files = guest({D: tree})
    with pytest.raises(LimitExceeded, match="max_include_depth"):
        load_extlinux_menu(files, D, "/c0.cfg", limits=Limits(max_include_depth=4))


@pytest.mark.parametrize(("line", "kwd", "rest"), [
    ("LABEL x", "label", " x"), ("label\tx", "label", "\tx"), ("LABEL", "label", ""), ("LABELX", "label", None),
    ("LAB", "label", None), ("`abel x", "label", None), ("LABEL\x01x", "label", "\x01x"),
])
def test_looking_at(line: str, kwd: str, rest: str | None) -> None:
    assert looking_at(line, kwd) == rest
