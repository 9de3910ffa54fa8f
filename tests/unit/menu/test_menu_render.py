"""Rendering: the tree, the explanation and the JSON form (schema_version 1), with hostile guest text."""

from __future__ import annotations

import json

from helpers import assert_golden
from virtkit.boot.config import ConfigCandidate
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, Submenu
from virtkit.boot.config.source import Location, SourceFile
from virtkit.boot.menu import SCHEMA_VERSION, menu_to_json, render_explain, render_tree

MAIN = SourceFile("hd0,msdos1", "/boot/extlinux/extlinux.conf", "INCLUDE sub.cfg\n")
SUB = SourceFile("hd0,msdos1", "/boot/extlinux/sub.cfg", "LABEL x\n")
INC = Location(MAIN, 1, 1)

EVIL = "\x1b]0;pwned\x07Evil\u202etitle"
MENU = BootMenu(
    loader="extlinux",
    config=FileRef("hd0,msdos1", "/boot/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf"),
    items=(
        BootEntry(title="Linux", id="linux", kind=EntryKind.LINUX,
                  kernel=FileRef("hd0,msdos1", "/boot/vmlinuz", "vmlinuz"),
                  initrds=(FileRef("hd0,msdos1", "/boot/ucode.img", "ucode.img"),
                           FileRef("hd0,msdos1", "/boot/initrd", "initrd")),
                  cmdline="root=/dev/xvda1 ro initrd=ucode.img,initrd", origin=Location(SUB, 1, 1, INC, "INCLUDE sub.cfg"),
                  body="vmlinuz root=/dev/xvda1 ro initrd=ucode.img,initrd", hotkey="L"),
        Submenu("More", (
            BootEntry(title=EVIL, id="evil", kind=EntryKind.LINUX, kernel=FileRef("hd0,msdos1", "/k\x1b[31m"),
                      cmdline="quiet \x1b[2J", notes=("note with \x07 bell",)),
            BootEntry(title="Xen", kind=EntryKind.XEN, kernel=FileRef("hd0,msdos1", "/xen.gz"), cmdline="dom0_mem=1G",
                      notes=("Xen hypervisor entry", "module 1: (hd0,msdos1)/vmlinuz ro")),
        ), id="more"),
        BootEntry(title="Broken", kind=EntryKind.NONE, notes=("the entry loads no kernel",)),
    ),
    default=(1, 0),
    default_trail=("DEFAULT evil", f"-> entry [1>0] '{EVIL}'"),
    fallback=((0,),),
    timeout=2.5,
    timeout_style="hidden",
    env={"saved_entry": "x\x1b"},
    env_writes={"next_entry": None, "(hd0)/grub/default": "1"},
    warnings=("(hd0,msdos1)/boot/extlinux/extlinux.conf:3:1: unknown keyword `FOO\x1b` ignored",),
    output=("Hello \x1b[1mthere",),
)
USED = ConfigCandidate("extlinux", "hd0,msdos1", "/boot/extlinux/extlinux.conf", "syslinux-family configuration", 30)
OTHER = ConfigCandidate("grub-legacy", "hd0,msdos1", "/boot/grub/menu.lst", "GRUB legacy menu", 40)


def test_tree_golden_and_sanitised() -> None:
    text = render_tree(MENU)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert_golden(text, "menu/render-tree.txt")


def test_explain_golden_and_sanitised() -> None:
    text = render_explain(MENU, candidates=(USED, OTHER), used=USED, selection="linux")
    assert "\x1b" not in text and "\u202e" not in text
    assert "--entry 'linux' -> [0] 'Linux'" in text
    assert_golden(text, "menu/render-explain.txt")


def test_json_schema() -> None:
    doc = menu_to_json(MENU, candidates=(USED, OTHER), used=USED)
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert set(doc) == {"schema_version", "loader", "config", "flavour", "default", "default_path_str", "default_title",
                        "default_bootable", "default_trail", "fallback", "timeout", "timeout_style", "env", "env_writes",
                        "warnings", "output", "items", "used", "candidates"}
    entry = doc["items"][0]
    assert set(entry) == {"type", "path", "path_str", "is_default", "title", "id", "kind", "bootable",
                          "not_bootable_reason", "kernel", "initrds", "cmdline", "classes", "origin", "body", "args",
                          "users", "hotkey", "notes"}
    assert entry["origin"] == {"device": "hd0,msdos1", "path": "/boot/extlinux/sub.cfg", "line": 1, "col": 1,
                               "included_from": [{"device": "hd0,msdos1", "path": "/boot/extlinux/extlinux.conf",
                                                  "line": 1, "col": 1, "how": "INCLUDE sub.cfg"}]}
    sub = doc["items"][1]
    assert (sub["type"], sub["path"], sub["items"][0]["path_str"], sub["items"][0]["is_default"]) == (
        "submenu", [1], "1>0", True)
    assert sub["items"][1]["not_bootable_reason"] == "it boots the Xen hypervisor (a multiboot entry), not a Linux kernel"
    assert (doc["default"], doc["default_path_str"], doc["default_title"], doc["default_bootable"]) == (
        [1, 0], "1>0", EVIL, True)
    assert doc["candidates"][1] == {"loader": "grub-legacy", "device": "hd0,msdos1", "path": "/boot/grub/menu.lst",
                                    "why": "GRUB legacy menu", "rank": 40, "platform": None, "stub": False}
    text = json.dumps(doc, indent=2, ensure_ascii=True)
    assert json.loads(text)["items"][1]["items"][0]["title"] == EVIL  # raw guest text survives, escaped
    assert_golden(text + "\n", "menu/render.json")


def test_empty_menu() -> None:
    menu = BootMenu("lilo", FileRef("hd0", "/etc/lilo.conf"), (), default=None,
                    default_trail=("no image= or other= sections: nothing to boot",))
    assert render_tree(menu) == ("lilo menu from (hd0)/etc/lilo.conf\ndefault: none    timeout: waits for a key\n"
                                 "  (no entries)\n")
    assert "how the default was chosen:\n  1. no image= or other= sections: nothing to boot\n" in render_explain(menu)
    assert menu_to_json(menu)["default"] is None
