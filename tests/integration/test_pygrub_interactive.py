"""The interactive menu of virtkit-pygrub, driven in a real terminal.

The real program (no ``-q``) runs as libxl runs a bootloader - on a pty, ``TERM=vt100``, 80x24,
with ``--output``/``--output-format=simple0``/``--output-directory`` - under ``pexpect``; its output
is fed to ``pyte``, a VT100 emulator, and the tests assert on the rendered screen (text and
reverse video) and on the record written to ``--output``.  Keys are sent as the terminal sends
them (vt100 application-mode cursor keys ``ESC O A``/``ESC O B``, Ctrl-X as 0x18).

Each test is a few seconds at most; every wait has a deadline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pygrub_support import VIRTKIT_PYGRUB, Guest, ImageCache, payload

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

UP, DOWN, RIGHT = "\x1bOA", "\x1bOB", "\x1bOC"  # vt100 kcuu1/kcud1/kcuf1 (curses enables keypad mode)
ESC, CTRL_X, ENTER = "\x1b", "\x18", "\r"

K1 = payload("KERNEL-1", 40_001)
K2 = payload("KERNEL-2", 30_002)
I1 = payload("INITRD-1", 20_003)

EVIL = "evil\x1b[2J\x1b]0;PWNED\x07title"  # a title that would clear the screen and set the window title
CFG = f"""\
set timeout={{timeout}}
{{style}}set default=0
menuentry 'Debian GNU/Linux' --id debian {{{{
	linux /boot/vmlinuz-1 root=/dev/xvda1 ro quiet
	initrd /boot/initrd-1
}}}}
submenu 'Advanced options' --id adv {{{{
	menuentry 'Debian, recovery mode' --id rec {{{{
		linux /boot/vmlinuz-1 root=/dev/xvda1 ro single
		initrd /boot/initrd-1
	}}}}
	menuentry 'Debian, old kernel' --id old {{{{
		linux /boot/vmlinuz-2 root=/dev/xvda1 ro
	}}}}
}}}}
menuentry "{EVIL}" {{{{
	linux /boot/vmlinuz-2 root=/dev/xvda1 "red=\x1b[31mRED"
}}}}
"""
HELLO = "hello from the guest\n"


def guest(timeout: int = 30, style: str = "") -> Guest:
    return Guest.make({"/boot/grub/grub.cfg": CFG.format(timeout=timeout, style=style), "/boot/vmlinuz-1": K1,
                       "/boot/vmlinuz-2": K2, "/boot/initrd-1": I1, "/boot/hello.txt": HELLO})


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    return ImageCache(tmp_path_factory.mktemp("pygrub-interactive"))


class Terminal:
    """virtkit-pygrub on an 80x24 vt100 pty, its output rendered by pyte."""

    def __init__(self, image: Path, work: Path, *extra: str) -> None:
        self.out = work / "bootloader.out"
        self.dir = work / "bootloader.d"
        self.dir.mkdir(parents=True)
        self.out.write_bytes(b"")
        env = dict(os.environ, TERM="vt100")
        env.pop("LINES", None)
        env.pop("COLUMNS", None)
        argv = [*VIRTKIT_PYGRUB[1:], *extra, f"--output={self.out}", "--output-format=simple0",
                f"--output-directory={self.dir}", str(image)]
        self.child = pexpect.spawn(VIRTKIT_PYGRUB[0], argv, dimensions=(24, 80), env=env)
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.eof = False

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.eof and time.monotonic() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                self.eof = True
                break
            self.raw.extend(data)
            self.stream.feed(data)

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            if self.eof:
                break
            self.pump(0.05)
        if not cond():
            raise AssertionError(f"timed out waiting for {what}; screen:\n{self.text}")

    def wait_text(self, text: str, timeout: float = 15) -> None:
        self.wait(lambda: text in self.text, repr(text), timeout)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def row(self, text: str) -> int:
        for y, line in enumerate(self.screen.display):
            if text in line:
                return y
        raise AssertionError(f"{text!r} is not on the screen:\n{self.text}")

    def reverse_rows(self) -> list[int]:
        """Rows drawn in reverse video (the highlight: no colour on the PV console)."""
        return [y for y in range(24) if all(self.screen.buffer[y][x].reverse for x in range(1, 40))]

    def highlighted(self) -> str:
        rows = self.reverse_rows()
        assert len(rows) == 1, f"highlighted rows {rows}:\n{self.text}"
        return self.screen.display[rows[0]]

    def finish(self, timeout: float = 20) -> tuple[int, dict[str, str], dict[str, bytes]]:
        """Wait for exit; return (status, records of --output, files in the output directory)."""
        self.wait(lambda: self.eof, "the program to exit", timeout)
        self.child.close()
        status = self.child.exitstatus if self.child.exitstatus is not None else 128 + (self.child.signalstatus or 0)
        raw = self.out.read_bytes()
        records = {}
        for rec in raw.split(b"\0"):
            if rec:
                key, _, value = rec.decode().partition(" ")
                records[key] = value
        files = {name: (self.dir / name).read_bytes() for name in sorted(os.listdir(self.dir))}
        return status, records, files

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def term(images: ImageCache, tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(g: Guest | None = None, *extra: str) -> Terminal:
        t = Terminal(images.get(g or guest()), tmp_path / f"run{len(started)}", *extra)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def booted(t: Terminal, kernel: bytes, ramdisk: bytes | None, args: str) -> None:
    status, records, files = t.finish()
    assert status == 0, t.text
    assert records.get("args", "") == args
    assert files[os.path.basename(records["kernel"])] == kernel
    if ramdisk is None:
        assert "ramdisk" not in records and len(files) == 1
    else:
        assert files[os.path.basename(records["ramdisk"])] == ramdisk


# ----------------------------------------------------------------------------- the tests


def test_menu_tree_highlight_countdown_and_navigation(term: Callable[..., Terminal]) -> None:
    t = term()
    t.wait_text("will boot automatically in")
    assert t.row("|*Debian GNU/Linux") == 4  # '*' marks the default
    assert t.row("| Advanced options >") == 5  # the submenu is one item, as in GRUB
    assert "Debian, recovery mode" not in t.text  # its entries are inside it
    assert t.highlighted().startswith("|*Debian GNU/Linux")
    assert "Up/Down (j/k) select, Enter boots." in t.text  # the help fits the 80-column console
    assert "'e' edits the entry, 'a' appends kernel arguments, 'c' opens a command line." in t.text
    secs = int(t.screen.display[t.row("will boot automatically in")].split(" in ")[1].rstrip().rstrip("s."))
    assert 25 <= secs <= 30
    t.send("j")  # any key stops the countdown
    t.wait(lambda: t.highlighted().startswith("| Advanced options >"), "j to move down")
    assert "automatically" not in t.text
    t.pump(1.2)
    assert "automatically" not in t.text  # stopped, not paused
    t.send(DOWN)
    t.wait(lambda: t.highlighted().startswith("| evil"), "Down")
    t.send("k")
    t.wait(lambda: t.highlighted().startswith("| Advanced options >"), "k")
    t.send(UP)
    t.wait(lambda: t.highlighted().startswith("|*Debian"), "Up")
    t.send("j")
    t.wait(lambda: t.highlighted().startswith("| Advanced"), "j")
    t.send(ENTER)  # enter the submenu
    t.wait_text("Esc goes back")
    assert t.screen.display[2].strip() == "Advanced options"  # where we are
    assert t.highlighted().startswith("| Debian, recovery mode")
    t.send(ESC)  # leave it
    t.wait(lambda: "Esc goes back" not in t.text, "Esc to leave the submenu")
    assert t.highlighted().startswith("| Advanced options >")
    t.send(ENTER)
    t.wait_text("Esc goes back")
    t.send(DOWN)
    t.wait(lambda: t.highlighted().startswith("| Debian, old kernel"), "Down in the submenu")
    t.send(ENTER)  # boot it
    booted(t, K2, None, "root=/dev/xvda1 ro")


def test_countdown_boots_the_default(term: Callable[..., Terminal]) -> None:
    t = term(guest(timeout=1))
    t.wait_text("will boot automatically in 1s")
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet")


def test_timeout_zero_boots_at_once(term: Callable[..., Terminal]) -> None:
    t = term(guest(timeout=0))
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet")
    assert b"virtkit boot menu" not in t.raw  # no menu was drawn (GRUB: timeout=0 boots at once)


def test_timeout_style_hidden(term: Callable[..., Terminal]) -> None:
    t = term(guest(timeout=30, style="set timeout_style=hidden\n"))
    t.wait_text("Press Esc for the boot menu, Enter to boot now.")
    assert "virtkit boot menu" not in t.text and "Debian" not in t.text
    t.send(ESC)
    t.wait_text("virtkit boot menu")
    assert t.highlighted().startswith("|*Debian GNU/Linux")
    assert "automatically" not in t.text  # the key stopped the countdown
    t.send(ENTER)
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet")


def test_edit_and_boot_with_ctrl_x(term: Callable[..., Terminal]) -> None:
    """``e`` edits the entry's commands; Ctrl-X boots the edited text, which the worker's interpreter
    evaluates again: ``${root}`` in the new argument is expanded (a literal copy would keep it)."""
    t = term()
    t.wait_text("virtkit boot menu")
    t.send("e")
    t.wait_text("Ctrl-X or F10 boots them")
    y = t.row("linux /boot/vmlinuz-1 root=/dev/xvda1 ro quiet")
    assert t.row("initrd /boot/initrd-1") == y + 1
    cursor = t.screen.cursor.y
    t.send(DOWN * (y - cursor) + RIGHT * 80)  # to the end of the linux line (vt100 has no End key)
    t.send(" edited=${root}")
    t.wait_text("ro quiet edited=${root}")
    t.send(CTRL_X)
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet edited=hd0")


def test_append_arguments(term: Callable[..., Terminal]) -> None:
    t = term()
    t.wait_text("virtkit boot menu")
    t.send("a")
    t.wait_text("Append kernel arguments")
    assert "root=/dev/xvda1 ro quiet" in t.text  # the entry's command line is shown
    t.send("single x=1")
    t.wait_text("append> single x=1")
    t.send(ENTER)
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet single x=1")


def test_command_line_ls_cat_boot(term: Callable[..., Terminal]) -> None:
    t = term()
    t.wait_text("virtkit boot menu")
    t.send("c")
    t.wait_text("grub> ")
    assert "ls [PATH], cat PATH, set [VAR=VALUE], boot, help. Esc leaves." in t.text
    t.send("ls /boot\r")
    t.wait_text("vmlinuz-2")
    assert "initrd-1" in t.text and "hello.txt" in t.text
    t.send("cat /boot/hello.txt\r")
    t.wait_text(HELLO.strip())
    t.send("boot\r")
    booted(t, K1, I1, "root=/dev/xvda1 ro quiet")


def test_hostile_title_and_arguments_are_sanitised(term: Callable[..., Terminal]) -> None:
    """The guest's escape sequences are shown as text; the emulator never receives them."""
    t = term()
    t.wait_text("virtkit boot menu")
    assert t.row("| evil\\x1b[2J\\x1b]0;PWNED\\x07title") == 6
    t.send(DOWN * 2)
    t.wait(lambda: t.highlighted().startswith("| evil"), "the hostile entry")
    t.send("a")
    t.wait_text("Append kernel arguments")
    assert "red=\\x1b[31mRED" in t.text  # its arguments, sanitised too
    assert b"PWNED" not in t.raw.replace(b"evil\\x1b[2J\\x1b]0;PWNED", b"")
    assert b"\x1b]" not in t.raw and b"\x07" not in t.raw and b"\x1b[31m" not in t.raw
    assert t.screen.title == ""  # nothing set the window title
    t.send(ESC)
    t.wait(lambda: "Append kernel arguments" not in t.text, "Esc to cancel")
    t.send(ENTER)
    booted(t, K2, None, "root=/dev/xvda1 red=\x1b[31mRED")  # the record carries the guest's bytes
