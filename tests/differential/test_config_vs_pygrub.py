"""Our GRUB legacy / extlinux / lilo engines against Xen's pygrub parsers (Debian xen-utils-4.17).

Two tables:

* **what pygrub gets wrong** (pygrub.md §3.2, §4): each row states the correct answer - settled by
  the boot loader's own documented behaviour - and asserts ours; when pygrub is installed the
  differential half also asserts pygrub's (wrong) answer, so the table stays honest about the peer;
* **where pygrub is right**: simple, well-formed configurations (hypothesis-generated) on which
  both must agree exactly - titles, kernel, arguments, initrd, default.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.boot.config.extlinux import load_extlinux_menu
from virtkit.boot.config.grub_legacy import load_grub_legacy_menu
from virtkit.boot.config.lilo import load_lilo_menu
from virtkit.boot.config.model import BootMenu
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.limits import Limits

PYGRUB_LIB = Path("/usr/lib/xen-4.17/lib/python")
D = "hd0,msdos1"


def pygrub_module(name: str) -> Any:
    if not (PYGRUB_LIB / "grub" / f"{name}.py").exists():
        pytest.skip(f"pygrub's {name}.py is not installed (Debian package xen-utils-4.17)")
    if str(PYGRUB_LIB) not in sys.path:
        sys.path.insert(0, str(PYGRUB_LIB))
    logging.getLogger().setLevel(logging.ERROR)  # pygrub warns through the root logger
    return __import__(f"grub.{name}", fromlist=[name])


def pygrub_parse(kind: str, text: str, filename: str) -> Any:
    mod_name, cls = {"legacy": ("GrubConf", "GrubConfigFile"), "extlinux": ("ExtLinuxConf", "ExtLinuxConfigFile"),
                     "lilo": ("LiloConf", "LiloConfigFile")}[kind]
    conf = getattr(pygrub_module(mod_name), cls)()
    conf.filename = filename
    with redirect_stderr(io.StringIO()):
        conf.parse(text)
    return conf


LOADERS: dict[str, Callable[..., BootMenu]] = {
    "legacy": load_grub_legacy_menu, "extlinux": load_extlinux_menu, "lilo": load_lilo_menu,
}


def ours(kind: str, text: str, path: str, extra: dict[str, bytes] | None = None) -> BootMenu:
    files = MemoryFiles({D: {path: text.encode(), **(extra or {})}}, infos=[DeviceInfo(D, aliases=("hd0,1",))])
    return LOADERS[kind](files, D, path, limits=Limits())


@dataclass(frozen=True)
class Wrong:
    id: str
    kind: str
    path: str
    cfg: str
    ours: Callable[[BootMenu], object]
    ours_expected: object
    pygrub: Callable[[Any], object]
    pygrub_got: object
    files: dict[str, bytes] | None = None


WRONG = [
    Wrong("extlinux-relative-paths", "extlinux", "/boot/extlinux/extlinux.conf",
          "DEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND ro\n",
          lambda m: m.items[0].kernel.path, "/boot/extlinux/vmlinuz",
          lambda c: c.images[0].kernel[1], "vmlinuz"),  # pygrub opens it from the filesystem root: /vmlinuz
    Wrong("extlinux-timeout-tenths", "extlinux", "/extlinux.conf", "PROMPT 1\nTIMEOUT 30\nDEFAULT a\nLABEL a\n KERNEL k\n",
          lambda m: m.timeout, 3.0,
          lambda c: int(c.timeout), 30),  # seconds in pygrub: ten times too long
    Wrong("extlinux-menu-default", "extlinux", "/extlinux.conf",
          "DEFAULT vesamenu.c32\nLABEL a\n KERNEL k\nLABEL b\n MENU DEFAULT\n KERNEL k2\n",
          lambda m: m.default, (1,),
          lambda c: c.default, 0),
    Wrong("extlinux-comma-initrds", "extlinux", "/extlinux.conf", "DEFAULT a\nLABEL a\n KERNEL k\n APPEND initrd=u.img,i.img\n",
          lambda m: [r.path for r in m.items[0].initrds], ["/u.img", "/i.img"],
          lambda c: c.images[0].initrd[1], "u.img,i.img"),
    Wrong("extlinux-linux-initrd-keywords", "extlinux", "/extlinux.conf", "DEFAULT a\nLABEL a\n LINUX k\n INITRD i\n",
          lambda m: (m.items[0].kernel.path, [r.path for r in m.items[0].initrds]), ("/k", ["/i"]),
          lambda c: (c.images[0].kernel, c.images[0].initrd), (None, None)),
    Wrong("extlinux-mboot-xen-not-bootable", "extlinux", "/extlinux.conf",
          "DEFAULT x\nLABEL x\n KERNEL mboot.c32\n APPEND xen.gz --- vmlinuz ro --- initrd\n",
          lambda m: m.items[0].kind.value, "xen",
          lambda c: c.images[0].kernel[1], "vmlinuz"),  # pygrub boots the dom0 kernel out of a Xen entry
    Wrong("legacy-default-saved", "legacy", "/grub/menu.lst", "default saved\ntitle A\nkernel /a\ntitle B\nkernel /b\n",
          lambda m: m.default, (1,),
          lambda c: c.default, 0, files={"/grub/default": b"1\n"}),
    Wrong("legacy-xen-hypervisor", "legacy", "/grub/menu.lst", "title Xen\nkernel /xen.gz\nmodule /vmlinuz ro\n",
          lambda m: (m.items[0].kind.value, m.items[0].bootable), ("xen", False),
          lambda c: c.images[0].kernel[1], "/xen.gz"),  # pygrub would hand xen.gz to the domain builder
    Wrong("legacy-default-past-end-uses-fallback", "legacy", "/grub/menu.lst",
          "default 5\nfallback 1\ntitle A\nkernel /a\ntitle B\nkernel /b\n",
          lambda m: m.default, (1,),
          lambda c: c.default, 5),  # pygrub keeps 5; its run_grub later falls back to 0
    Wrong("lilo-absolute-image-paths", "lilo", "/etc/lilo.conf", "image=/boot/vmlinuz\n label=l\n",
          lambda m: m.items[0].kernel.path, "/boot/vmlinuz",
          lambda c: c.images[0].kernel[1], "/etc//boot/vmlinuz"),
]


@pytest.mark.parametrize("case", WRONG, ids=[w.id for w in WRONG])
def test_what_pygrub_gets_wrong_ours(case: Wrong) -> None:
    assert case.ours(ours(case.kind, case.cfg, case.path, case.files)) == case.ours_expected


@pytest.mark.differential
@pytest.mark.parametrize("case", WRONG, ids=[w.id for w in WRONG])
def test_what_pygrub_gets_wrong_pygrub(case: Wrong) -> None:
    assert case.pygrub(pygrub_parse(case.kind, case.cfg, case.path)) == case.pygrub_got


# ----------------------------------------------------------------------------- agreement

TOKEN = st.text(alphabet="abcxyz0123456789/=.-_", min_size=1, max_size=10).filter(lambda s: not s.startswith(("=", "/")))
TITLE = st.text(alphabet="ABCabc 0123456789().-", min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def legacy_configs(draw: st.DrawFn) -> tuple[str, int]:
    n = draw(st.integers(1, 5))
    default = draw(st.integers(0, n - 1))
    lines = [f"default {default}", f"timeout {draw(st.integers(0, 30))}"]
    for i in range(n):
        lines.append(f"title {draw(TITLE)}")
        lines.append("\troot (hd0,0)")
        args = " ".join(draw(st.lists(TOKEN, max_size=4)))
        lines.append(f"\tkernel /vmlinuz-{i}" + (f" {args}" if args else ""))
        if draw(st.booleans()):
            lines.append(f"\tinitrd /initrd-{i}.img")
    return "\n".join(lines) + "\n", n


@pytest.mark.differential
@settings(max_examples=100, deadline=None)
@given(legacy_configs())
def test_legacy_agrees_where_pygrub_is_right(data: tuple[str, int]) -> None:
    text, n = data
    theirs = pygrub_parse("legacy", text, "/grub/menu.lst")
    menu = ours("legacy", text, "/grub/menu.lst")
    assert menu.default == (theirs.default,)
    assert menu.timeout == float(theirs.timeout)
    assert len(menu.items) == len(theirs.images) == n
    for mine, img in zip(menu.items, theirs.images):
        assert mine.title == img.title
        assert mine.kernel.path == img.kernel[1]  # type: ignore[union-attr]
        assert mine.cmdline == (img.args or "")
        assert [r.path for r in mine.initrds] == ([img.initrd[1]] if img.initrd else [])


@st.composite
def extlinux_configs(draw: st.DrawFn) -> tuple[str, int]:
    n = draw(st.integers(1, 5))
    labels = draw(st.lists(st.text(alphabet="abcxyz0123", min_size=1, max_size=6), min_size=n, max_size=n, unique=True))
    default = draw(st.sampled_from(labels))
    lines = [f"DEFAULT {default}"]
    for lab in labels:
        lines += [f"LABEL {lab}", f"  KERNEL /vmlinuz-{lab}"]
        args = " ".join(draw(st.lists(TOKEN.filter(lambda t: "initrd" not in t), max_size=3)))
        initrd = draw(st.booleans())
        append = " ".join(x for x in (f"initrd=/initrd-{lab}" if initrd else "", args) if x)
        if append:
            lines.append(f"  APPEND {append}")
    return "\n".join(lines) + "\n", labels.index(default)


@pytest.mark.differential
@settings(max_examples=100, deadline=None)
@given(extlinux_configs())
def test_extlinux_agrees_where_pygrub_is_right(data: tuple[str, int]) -> None:
    text, default = data
    theirs = pygrub_parse("extlinux", text, "/extlinux.conf")
    menu = ours("extlinux", text, "/extlinux.conf")
    assert menu.default == (default,) and theirs.default == default
    for mine, img in zip(menu.items, theirs.images):
        assert (mine.id, mine.kernel.path) == (img.title, img.kernel[1])  # type: ignore[union-attr]
        assert [r.path for r in mine.initrds] == ([img.initrd[1]] if img.initrd else [])
        # pygrub removes initrd= from the arguments (leaving the blanks around it); syslinux passes the whole
        # line to the kernel.  Compare the words that are not initrd=.
        assert [w for w in mine.cmdline.split() if not w.startswith("initrd=")] == (img.args or "").split()
