"""lilo engine: one row per option and quoting rule, exact expectations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from enginekit import Expect, check, guest

from virtkit.boot.config.lilo import load_lilo_menu
from virtkit.errors import ConfigSyntaxError
from virtkit.limits import Limits

R = "hd0,msdos1"
K = {"/boot/vmlinuz": b"", "/boot/vmlinuz-old": b"", "/boot/initrd.gz": b""}


@dataclass(frozen=True)
class Case:
    id: str
    cfg: str
    expect: Expect
    more: dict[str, dict[str, bytes]] = field(default_factory=dict)


CASES = [
    Case("label-defaults-to-file-name", "image=/boot/vmlinuz\n",
         Expect(titles=["vmlinuz"], ids=["vmlinuz"], kernels=[f"({R})/boot/vmlinuz"], default=(0,),
                trail_contain=["no `default=` -> the first image"])),
    Case("default-label", "default=old\nimage=/boot/vmlinuz\n label=new\nimage=/boot/vmlinuz-old\n label=old\n",
         Expect(default=(1,), trail_contain=["`default=old` -> entry [1] 'old'"])),
    Case("default-alias", "default=lts\nimage=/boot/vmlinuz\nimage=/boot/vmlinuz-old\n label=old\n alias=lts\n",
         Expect(default=(1,))),
    Case("default-ignoring-case", "default=OLD\nimage=/boot/vmlinuz\nimage=/boot/vmlinuz-old\n label=old\n",
         Expect(default=(1,), trail_contain=["matches a label only ignoring case"])),
    Case("default-unknown-label", "default=gone\nimage=/boot/vmlinuz\n",
         Expect(default=(0,), warnings_contain=["default=gone names no image label"])),
    Case("read-only-root-append-order", "image=/boot/vmlinuz\n root=/dev/xvda1\n read-only\n append=\"quiet\"\n",
         Expect(cmdlines=["ro root=/dev/xvda1 quiet"], notes_contain={0: ["passes root=/dev/xvda1 as a device number"]})),
    Case("global-defaults", "read-only\nroot=/dev/xvda2\nappend=\"console=hvc0\"\nimage=/boot/vmlinuz\n",
         Expect(cmdlines=["ro root=/dev/xvda2 console=hvc0"])),
    Case("image-overrides-global", "read-only\nappend=\"console=hvc0\"\nimage=/boot/vmlinuz\n read-write\n append=x\n",
         Expect(cmdlines=["rw x"])),
    Case("addappend-after-append", "append=a\nimage=/boot/vmlinuz\n addappend=b\n", Expect(cmdlines=["a b"])),
    Case("literal-replaces-all", "read-only\nroot=/dev/x\nimage=/boot/vmlinuz\n literal=\"init=/bin/sh\"\n",
         Expect(cmdlines=["init=/bin/sh"])),
    Case("root-label-quoted", "image=/boot/vmlinuz\n root=\"LABEL=root fs\"\n", Expect(cmdlines=["root=LABEL=root fs"])),
    Case("initrd", "image=/boot/vmlinuz\n initrd=/boot/initrd.gz\n", Expect(initrds=[[f"({R})/boot/initrd.gz"]])),
    Case("other-chainloads", "image=/boot/vmlinuz\nother=/dev/xvda3\n label=dos\n", Expect(kinds=["linux", "chainload"])),
    Case("blanks-around-equals", "image = /boot/vmlinuz\n  label = x\n", Expect(titles=["x"])),
    Case("several-options-on-a-line", "image=/boot/vmlinuz label=x read-only root=/dev/a\n",
         Expect(titles=["x"], cmdlines=["ro root=/dev/a"])),
    Case("comments", "# a comment\nimage=/boot/vmlinuz # trailing\n label=x#y\n", Expect(titles=["x"])),
    Case("quoted-escapes", 'image=/boot/vmlinuz\n append="a \\"b\\" c\\\\d"\n', Expect(cmdlines=['a "b" c\\d'])),
    Case("quoted-continuation", 'image=/boot/vmlinuz\n append="a \\\n     b"\n', Expect(cmdlines=["a  b"])),
    Case("backslash-escape-outside-quotes", "image=/boot/vmlinuz\n label=a\\ b\n", Expect(titles=["a b"])),
    Case("option-names-any-case", "IMAGE=/boot/vmlinuz\n LABEL=x\n Read-Only\n", Expect(titles=["x"], cmdlines=["ro"])),
    Case("prompt-timeout-tenths", "prompt\ntimeout=150\nimage=/boot/vmlinuz\n",
         Expect(timeout=15.0, trail_contain=["LILO waits at boot: 15 s (timeout= is in tenths of a second)"])),
    Case("prompt-without-timeout-waits", "prompt\nimage=/boot/vmlinuz\n", Expect(timeout=None)),
    Case("delay-without-prompt", "delay=30\nimage=/boot/vmlinuz\n",
         Expect(timeout=3.0, trail_contain=["no `prompt`: boots after delay=3 s"])),
    Case("no-delay-boots-at-once", "image=/boot/vmlinuz\n", Expect(timeout=0.0)),
    Case("bad-timeout", "prompt\ntimeout=soon\nimage=/boot/vmlinuz\n",
         Expect(timeout=None, warnings_contain=["'soon' is not a number of tenths of a second"])),
    Case("separate-boot-partition", "image=/boot/vmlinuz-sep\n initrd=/boot/initrd-sep\n",
         Expect(kernels=["(hd0,msdos2)/vmlinuz-sep"], initrds=[["(hd0,msdos2)/initrd-sep"]],
                notes_contain={0: ["/boot/vmlinuz-sep found as /vmlinuz-sep on (hd0,msdos2)"]}),
         more={"hd0,msdos2": {"/vmlinuz-sep": b"", "/initrd-sep": b""}}),
    Case("missing-image-warned", "image=/boot/nope\n", Expect(warnings_contain=["image (hd0,msdos1)/boot/nope does not exist"])),
    Case("no-images", "prompt\n", Expect(default=None, titles=[], trail_contain=["no image= or other= sections"])),
    Case("vga-noted", "vga=normal\nimage=/boot/vmlinuz\n", Expect(notes_contain={0: ["vga= sets the video mode"]})),
    Case("password-noted", "image=/boot/vmlinuz\n password=secret\n",
         Expect(notes_contain={0: ["LILO asks for a password"]},
                extra=lambda m: _no_secret(m))),
]


def _no_secret(menu: object) -> None:
    notes = " ".join(menu.items[0].notes)  # type: ignore[attr-defined]
    assert "secret" not in notes


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lilo(case: Case) -> None:
    files = guest({R: {**K, "/etc/lilo.conf": case.cfg.encode()}, **case.more})
    menu = load_lilo_menu(files, R, "/etc/lilo.conf", limits=Limits())
    assert menu.loader == "lilo"
    check(menu, case.expect)


@pytest.mark.parametrize(("cfg", "message", "where"), [
    ('image=/boot/vmlinuz\n append="open\n', "newline in a quoted string", "2:14"),
    ('image=/boot/vmlinuz\n append="open', "unterminated quoted string", "2:14"),
    ('image=/boot/vmlinuz\n append="a\\qb"', "bad use of \\ in a quoted string", "2:11"),
    ("image=/boot/vmlinuz\n root=LABEL=x\n", "'=' without an option name before it", "2:12"),
    ("= x\n", "'=' without an option name before it", "1:1"),
    ("image=\n", "'image=' without a value", "1:1"),
    ("image\n", "`image` needs a value", "1:1"),
])
def test_syntax_errors(cfg: str, message: str, where: str) -> None:
    files = guest({R: {"/etc/lilo.conf": cfg}})
    with pytest.raises(ConfigSyntaxError) as exc:
        load_lilo_menu(files, R, "/etc/lilo.conf", limits=Limits())
    assert exc.value.bare_message.startswith(message)
    assert exc.value.location.render_prefix() == f"({R})/etc/lilo.conf:{where}"
