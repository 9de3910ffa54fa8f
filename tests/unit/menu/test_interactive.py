"""The interactive menu state machine: navigation, countdown, editing, appending, command line."""

from __future__ import annotations

import pytest

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, Submenu
from virtkit.boot.menu.interactive import BootChoice, Key, MenuSession, Mode

K = FileRef("hd0,msdos1", "/vmlinuz")


def entry(title: str, body: str = "linux /vmlinuz ro\n", kind: EntryKind = EntryKind.LINUX) -> BootEntry:
    return BootEntry(title=title, kind=kind, kernel=K if kind is EntryKind.LINUX else None, body=body, cmdline="ro")


MENU = BootMenu(
    loader="grub2",
    config=FileRef("hd0,msdos1", "/grub/grub.cfg"),
    items=(
        entry("Debian"),
        Submenu("Advanced", (entry("Debian 6.1"), entry("Debian 5.10"), entry("Debian 5.10 (recovery)"))),
        entry("Xen hypervisor", kind=EntryKind.XEN),
        entry("evil \x1b[2J title"),
    ),
    default=(1, 1),
    timeout=5,
)


def s(**kw) -> MenuSession:
    return MenuSession(MENU, **kw)


def press(sess: MenuSession, *keys) -> BootChoice | None:
    result = None
    for k in keys:
        result = sess.key(k)
    return result


def test_default_is_highlighted_inside_its_submenu() -> None:
    sess = s()
    assert [lv.title for lv in sess.stack] == ["", "Advanced"]
    screen = sess.render()
    assert screen.highlight is not None
    assert "Debian 5.10" in screen.lines[screen.highlight]
    assert "*" in screen.lines[screen.highlight]


def test_countdown_boots_default() -> None:
    sess = s()
    assert sess.tick(4.0) is None
    assert "boot automatically in 1s" in "\n".join(sess.render().lines)
    assert sess.tick(1.5) == BootChoice((1, 1))


def test_any_key_stops_countdown() -> None:
    sess = s()
    sess.key(Key.DOWN)
    assert sess.tick(100) is None


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([Key.ENTER], BootChoice((1, 1))),
        (["k", Key.ENTER], BootChoice((1, 0))),
        (["j", "j", "j", Key.ENTER], BootChoice((1, 2))),
        ([Key.ESC, "k", Key.ENTER], BootChoice((0,))),  # back at the top, cursor on the submenu
        ([Key.ESC, Key.ENTER, Key.END, Key.ENTER], BootChoice((1, 2))),
        ([Key.ESC, Key.DOWN, Key.ENTER], None),  # the Xen entry is not bootable as a guest
        ([Key.LEFT, Key.END, Key.ENTER], BootChoice((3,))),
        ([Key.ESC, Key.ESC, Key.ESC, Key.HOME, Key.ENTER], BootChoice((0,))),
    ],
)
def test_navigation(keys: list, expected: BootChoice | None) -> None:
    assert press(s(), *keys) == expected


def test_edit_and_boot_the_edited_body() -> None:
    sess = s()
    press(sess, "e")
    assert sess.mode is Mode.EDIT
    press(sess, Key.END, *" single")
    choice = press(sess, Key.BOOT)
    assert choice == BootChoice((1, 1), body="linux /vmlinuz ro single\n")


def test_edit_escape_discards() -> None:
    sess = s()
    assert press(sess, "e", "x", Key.ESC) is None
    assert sess.mode is Mode.MENU
    assert press(sess, Key.ENTER) == BootChoice((1, 1))


def test_edit_line_operations() -> None:
    sess = s()
    press(sess, "e", Key.END, Key.ENTER, *"initrd /i", Key.UP, Key.HOME, Key.DELETE)
    assert sess.edit_lines[:2] == ["inux /vmlinuz ro", "initrd /i"]
    press(sess, Key.DOWN, Key.HOME, Key.BACKSPACE)
    assert sess.edit_lines[0] == "inux /vmlinuz roinitrd /i"


def test_append_arguments() -> None:
    sess = s()
    choice = press(sess, "a", *"console=hvc0", Key.ENTER)
    assert choice == BootChoice((1, 1), extra_args="console=hvc0")


def test_command_line() -> None:
    seen = []

    def run(cmd: str) -> list[str]:
        seen.append(cmd)
        return [f"ran {cmd}"]

    sess = s(run_command=run)
    press(sess, "c", *"ls /", Key.ENTER)
    assert seen == ["ls /"]
    assert "ran ls /" in sess.render().lines
    assert press(sess, *"boot", Key.ENTER) == BootChoice((1, 1))


def test_guest_text_is_sanitised_and_fits() -> None:
    sess = s(width=40)
    press(sess, Key.ESC, Key.END)
    for line in sess.render().lines:
        assert "\x1b" not in line
        assert len(line) <= 39
    assert any("\\x1b[2J" in line for line in sess.render().lines)


def test_non_bootable_entries_are_marked_and_refused() -> None:
    sess = s()
    press(sess, Key.ESC)
    assert any("[xen: not bootable]" in line for line in sess.render().lines)
    assert press(sess, Key.DOWN, Key.ENTER) is None
    assert "not bootable" in sess.render().lines[-1]


def test_hidden_timeout_style() -> None:
    m = BootMenu(loader="grub2", config=MENU.config, items=MENU.items, default=(0,), timeout=3, timeout_style="hidden")
    sess = MenuSession(m)
    assert sess.mode is Mode.HIDDEN
    assert sess.render().lines == ["Press Esc for the boot menu, Enter to boot now."]
    sess.key(Key.ESC)
    assert sess.mode is Mode.MENU


def test_no_timeout_waits_forever() -> None:
    m = BootMenu(loader="grub2", config=MENU.config, items=MENU.items, default=(0,), timeout=None)
    assert MenuSession(m).tick(1e9) is None


def _type(sess: MenuSession, text: str) -> None:
    for ch in text:
        sess.key(ch)


def test_set_at_the_command_line_reaches_the_booted_entry() -> None:
    """`c`, `set NAME=VALUE`: the entry then booted runs with it, re-evaluated by the real interpreter."""
    from virtkit.boot.config.grub2 import evaluate_entry_body, load_grub2_menu
    from virtkit.boot.config.source import MemoryFiles
    from virtkit.limits import Limits

    cfg = b"menuentry 'Linux' { linux /vmlinuz root=$myroot quiet; }\nmenuentry 'Other' { linux /vmlinuz other; }\n"
    files = MemoryFiles({"hd0,msdos1": {"/boot/grub/grub.cfg": cfg, "/vmlinuz": b"k"}})
    menu = load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=Limits())
    assert menu.items[0].cmdline == "root= quiet"  # type: ignore[union-attr]
    sess = MenuSession(menu, run_command=lambda line: ["(no environment)"])
    press(sess, "c")
    _type(sess, "set myroot=/dev/xvda9 it's")
    press(sess, Key.ENTER)
    assert sess.output[-1] == "myroot=/dev/xvda9 it's  (set for the entry booted from this menu)"
    _type(sess, "set")
    press(sess, Key.ENTER)
    assert sess.output[-2:] == ["(no environment)", "myroot=/dev/xvda9 it's  (set here)"]
    _type(sess, "set 9bad=x")
    press(sess, Key.ENTER)
    assert sess.output[-1].startswith("error: usage: set NAME=VALUE")
    choice = press(sess, Key.ESC, Key.ENTER)  # back to the menu; boot the highlighted (first) entry
    assert choice is not None and choice.path == (0,) and choice.body is not None
    booted = evaluate_entry_body(files, menu, choice.path, choice.body, limits=Limits())
    # $myroot is unquoted in the entry, so GRUB splits it into two arguments and re-quotes the `'`
    assert booted.cmdline == "root=/dev/xvda9 it\\'s quiet"


def test_without_set_the_choice_carries_no_commands() -> None:
    assert press(s(), Key.ENTER) == BootChoice((1, 1))  # no body: the worker boots the entry as loaded
