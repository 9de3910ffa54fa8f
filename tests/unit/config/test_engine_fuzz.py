"""Property: any text as a GRUB legacy / extlinux / lilo / systemd-boot configuration gives a BootMenu or a
VirtkitError - never another exception, never a hang - and the menu stage can always render it.
"""

from __future__ import annotations

import json

from enginekit import guest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtkit.boot.config import discover_menu
from virtkit.boot.config.model import BootMenu
from virtkit.boot.menu import menu_to_json, render_explain, render_tree, resolve_boot_target
from virtkit.errors import SelectionError, VirtkitError
from virtkit.limits import Limits

LIMITS = Limits(max_config_bytes=64 * 1024, max_script_steps=20_000, max_menu_entries=500, max_include_depth=4)

LEGACY_WORDS = ["title", "kernel", "initrd", "module", "root", "rootnoverify", "default", "fallback", "timeout",
                "hiddenmenu", "savedefault", "chainloader", "password", "uuid", "configfile", "saved", "(hd0,0)",
                "(hd9,3)", "/vmlinuz", "+1", "=", "#", "\\", "0x1f", "-1", "--type=multiboot", "xen.gz"]
EXT_WORDS = ["LABEL", "KERNEL", "LINUX", "INITRD", "APPEND", "DEFAULT", "UI", "MENU", "LABEL", "DEFAULT", "HIDE",
             "BEGIN", "END", "INCLUDE", "TIMEOUT", "ONTIMEOUT", "PROMPT", "IMPLICIT", "mboot.c32", "menu.c32",
             "vesamenu.c32", "---", "initrd=a,b,", "-", "LOCALBOOT", "TEXT", "HELP", "ENDTEXT", "GOTO", "EXIT",
             "SEPARATOR", "DISABLE", "START", "../k", ".com32", "x.cfg", "0"]
LILO_WORDS = ["image", "other", "label", "alias", "append", "literal", "root", "read-only", "read-write", "initrd",
              "default", "prompt", "timeout", "delay", "=", '"', "\\", "#", "/boot/vmlinuz", "current", "LABEL=x"]
SD_WORDS = ["title", "linux", "initrd", "options", "efi", "uki", "sort-key", "version", "machine-id", "architecture",
            "default", "timeout", "@saved", "menu-force", "*", "[a-", "\\", '"', "x64", "aa64", "/k", "1.2~rc"]


def lines_from(words: list[str]) -> st.SearchStrategy[str]:
    word = st.one_of(st.sampled_from(words), st.text(max_size=8))
    line = st.lists(word, max_size=6).map(lambda ws: " ".join(ws))
    return st.lists(line, max_size=30).map(lambda ls: "\n".join(ls))


def any_text(words: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(lines_from(words), st.text(max_size=400))


def exercise(tree: dict[str, str | bytes], **infos: dict[str, object]) -> None:
    files = guest({"hd0": tree, "hd0,msdos1": {"/k": b"", "/vmlinuz": b""}}, **infos)
    try:
        gm = discover_menu(files, limits=LIMITS)
    except VirtkitError:
        return
    menu = gm.menu
    assert isinstance(menu, BootMenu)
    render_tree(menu)
    render_explain(menu, candidates=gm.candidates, used=gm.used)
    json.dumps(menu_to_json(menu, candidates=gm.candidates, used=gm.used))
    try:
        path, entry = resolve_boot_target(menu)
        assert entry.bootable and menu.item_at(path) is entry
    except SelectionError:
        pass


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(any_text(LEGACY_WORDS), st.binary(max_size=12))
def test_any_text_as_menu_lst(text: str, default_file: bytes) -> None:
    exercise({"/boot/grub/menu.lst": text, "/boot/grub/default": default_file, "/k": b""})


@FUZZ
@given(any_text(EXT_WORDS), any_text(EXT_WORDS))
def test_any_text_as_extlinux_conf(text: str, included: str) -> None:
    exercise({"/boot/extlinux/extlinux.conf": text, "/boot/extlinux/x.cfg": included, "/boot/extlinux/k": b""})


@FUZZ
@given(any_text(LILO_WORDS))
def test_any_text_as_lilo_conf(text: str) -> None:
    exercise({"/etc/lilo.conf": text, "/boot/vmlinuz": b""})


@FUZZ
@given(any_text(SD_WORDS), st.lists(st.tuples(st.text(min_size=1, max_size=12), any_text(SD_WORDS)), max_size=5))
def test_any_text_as_systemd_boot(conf: str, entries: list[tuple[str, str]]) -> None:
    tree: dict[str, str | bytes] = {"/loader/loader.conf": conf, "/k": b""}
    for name, text in entries:
        safe = name.replace("/", "_").replace("\0", "_")
        tree[f"/loader/entries/{safe}.conf"] = text
    exercise(tree, hd0={"fs_type": "vfat"})


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_as_every_config(data: bytes) -> None:
    exercise({"/boot/grub/menu.lst": data, "/extlinux.conf": data, "/etc/lilo.conf": data,
              "/loader/loader.conf": data, "/loader/entries/x.conf": data})
