"""``--entry`` selection and the boot target: index paths, title/id paths, ``>>``, ambiguity, refusals."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, Submenu
from virtkit.boot.menu.select import path_str, resolve_boot_target, resolve_selection, split_spec
from virtkit.errors import SelectionError


def linux(title: str, ident: str | None = None) -> BootEntry:
    return BootEntry(title=title, id=ident, kind=EntryKind.LINUX, kernel=FileRef("hd0", f"/vmlinuz-{title[:3]}"))


MENU = BootMenu(
    loader="grub2",
    config=FileRef("hd0,msdos1", "/boot/grub/grub.cfg"),
    items=(
        linux("Debian GNU/Linux", "gnulinux-simple"),
        Submenu("Advanced options for Debian", (
            linux("Debian, with Linux 6.1", "gnulinux-6.1"),
            linux("Debian, with Linux 6.1 (recovery)", "gnulinux-6.1-rec"),
            Submenu("Older", (linux("Debian, with Linux 5.10", "gnulinux-5.10"),), id="older"),
        ), id="gnulinux-advanced"),
        BootEntry(title="Xen hypervisor", kind=EntryKind.XEN, kernel=FileRef("hd0", "/xen.gz")),
        BootEntry(title="Windows", kind=EntryKind.CHAINLOAD, notes=("chainloader +1",)),
        linux("A > B", "arrow"),
        linux("2019"),
        linux("dup", "d1"),
        linux("dup", "d2"),
        linux("gnulinux-6.1"),  # a title equal to an id elsewhere
        BootEntry(title="empty", kind=EntryKind.NONE, notes=("the entry loads no kernel",)),
        Submenu("Nothing here", ()),
    ),
    default=(1, 0),
    default_trail=("`default` = `1>0`",),
)


@pytest.mark.parametrize(("spec", "parts"), [
    ("a>b", ["a", "b"]), ("a>>b", ["a>b"]), ("a>>>b", ["a>", "b"]), (">a", ["", "a"]), ("a>", ["a", ""]),
    ("a>>>>b", ["a>>b"]), ("", [""]),
])
def test_split_spec(spec: str, parts: list[str]) -> None:
    assert split_spec(spec) == parts


@pytest.mark.parametrize(("spec", "path"), [
    ("0", (0,)), ("1", (1,)), ("1>0", (1, 0)), ("1>2>0", (1, 2, 0)), ("Advanced options for Debian>1", (1, 1)),
    ("Advanced options for Debian>Debian, with Linux 6.1", (1, 0)), ("gnulinux-advanced>gnulinux-6.1-rec", (1, 1)),
    ("gnulinux-advanced>Older>gnulinux-5.10", (1, 2, 0)), ("1>older>0", (1, 2, 0)), ("Debian GNU/Linux", (0,)),
    ("gnulinux-simple", (0,)), ("A >> B", (4,)), ("arrow", (4,)),
    ("2019", (5,)),  # no item 2019 at the top level: matched as a title
    ("5", (5,)), ("dup", (6,)),  # first of two equal titles at one level (GRUB's first-match rule)
    ("d2", (7,)),
    ("gnulinux-6.1", (8,)),  # at the top level the title matches; the nested id is not looked at
    ("Debian, with Linux 6.1 (recovery)", (1, 1)),  # bare leaf title anywhere in the tree (pygrub users)
    ("gnulinux-5.10", (1, 2, 0)), ("Nothing here", (10,)),
])
def test_resolve_selection(spec: str, path: tuple[int, ...]) -> None:
    assert resolve_selection(MENU, spec) == path


@pytest.mark.parametrize(("spec", "message"), [
    ("99", "--entry '99' matches nothing: the top level has 11 item(s), no index 99; choose one of: "
           "[0] 'Debian GNU/Linux'  (id gnulinux-simple) [linux], [1] 'Advanced options for Debian'"),
    ("nope", "nothing at the top level has the id or title 'nope'"),
    ("0>1", "[0] 'Debian GNU/Linux'  (id gnulinux-simple) [linux] is an entry, not a submenu"),
    ("1>9", "submenu [1] has 3 item(s), no index 9"),
    ("", "--entry: empty selection; choose one of: "),
    ("Debian, with Linux 6.1>x", "nothing at the top level has the id or title 'Debian, with Linux 6.1'"),
])
def test_resolve_selection_errors(spec: str, message: str) -> None:
    with pytest.raises(SelectionError, match=re.escape(message)):
        resolve_selection(MENU, spec)


def test_bare_title_matching_twice_is_ambiguous() -> None:
    menu = BootMenu("grub2", FileRef("hd0", "/g"), (Submenu("s", (linux("same"),)), Submenu("t", (linux("same"),))))
    with pytest.raises(SelectionError, match=r"ambiguous: it names 2 items; use an index path instead: \[0>0\] 'same' "
                                             r"\[linux\], \[1>0\] 'same' \[linux\]"):
        resolve_selection(menu, "same")


def test_choices_are_sanitised_and_one_line() -> None:
    menu = BootMenu("grub2", FileRef("hd0", "/g"), (linux("evil\x1b[2Jtitle\nline2"),))
    with pytest.raises(SelectionError) as exc:
        resolve_selection(menu, "x")
    assert "\x1b" not in str(exc.value) and "\n" not in str(exc.value)
    assert "evil\\x1b[2Jtitle\\x0aline2" in str(exc.value)


def test_error_lists_are_bounded() -> None:
    menu = BootMenu("grub2", FileRef("hd0", "/g"), tuple(linux(f"e{i}") for i in range(100)))
    with pytest.raises(SelectionError, match=r"\[39\] 'e39' \[linux\], \.\.\. and 60 more$"):
        resolve_selection(menu, "x")


# ----------------------------------------------------------------------------- boot target


def test_default_target() -> None:
    path, entry = resolve_boot_target(MENU)
    assert (path, entry.title) == ((1, 0), "Debian, with Linux 6.1")
    assert resolve_boot_target(MENU, "gnulinux-5.10")[0] == (1, 2, 0)


@pytest.mark.parametrize(("spec", "message"), [
    ("2", r"--entry '2' \[2\] 'Xen hypervisor' is not bootable: it boots the Xen hypervisor \(a multiboot entry\), "
          r"not a Linux kernel; bootable entries: \[0\] 'Debian GNU/Linux'"),
    ("3", r"is not bootable: it hands over to another boot loader \(chainloader \+1\)"),
    ("empty", "is not bootable: the entry loads no kernel"),
    ("1", r"\[1\] 'Advanced options for Debian' is a submenu; choose an entry inside it: \[1>0\] 'Debian, with Linux 6.1'"),
    ("10", r"is a submenu; choose an entry inside it: \(it is empty\)"),
])
def test_refused_targets(spec: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        resolve_boot_target(MENU, spec)


def test_no_default() -> None:
    menu = BootMenu("extlinux", FileRef("hd0", "/e.conf"), (linux("a"),), default=None,
                    default_trail=("neither DEFAULT nor UI: syslinux stops at its boot: prompt",))
    with pytest.raises(SelectionError, match=r"extlinux configuration \(hd0\)/e.conf has no default entry \(neither "
                                             r"DEFAULT nor UI: syslinux stops at its boot: prompt\); choose one with "
                                             r"--entry; bootable entries: \[0\] 'a' \[linux\]"):
        resolve_boot_target(menu)


def test_default_outside_tree() -> None:
    menu = BootMenu("grub2", FileRef("hd0", "/g"), (linux("a"),), default=(4,))
    with pytest.raises(SelectionError, match=r"the default entry \[4\] is not in the menu"):
        resolve_boot_target(menu)


def test_path_str() -> None:
    assert (path_str((1, 2, 0)), path_str(())) == ("1>2>0", "")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_spec_gives_a_path_or_selection_error(spec: str) -> None:
    try:
        path = resolve_selection(MENU, spec)
    except SelectionError as exc:
        assert "\n" not in str(exc)
        return
    MENU.item_at(path)  # a real item
