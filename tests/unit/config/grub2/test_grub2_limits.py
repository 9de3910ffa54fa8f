"""One hostile configuration per Limits field the GRUB 2 interpreter uses, and a fuzz property."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtkit.boot.config.grub2 import load_grub2_menu
from virtkit.boot.config.grubenv import render_grubenv
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.errors import LimitExceeded, VirtkitError
from virtkit.limits import Limits


def run(cfg: str | bytes, limits: Limits, extra: dict[str, bytes] | None = None) -> object:
    tree = {"/boot/grub/grub.cfg": cfg.encode() if isinstance(cfg, str) else cfg, "/vmlinuz": b"k"}
    tree.update(extra or {})
    files = MemoryFiles({"hd0,msdos1": tree}, infos=[DeviceInfo("hd0,msdos1", fs_type="ext2")])
    return load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=limits)


HOSTILE = [
    ("max_script_steps", "while true; do true; done\n", {}, Limits(max_script_steps=10_000)),
    ("max_script_steps", "menuentry a { while true; do echo; done }\n", {}, Limits(max_script_steps=10_000)),
    ("max_script_steps", "for a in 1 2 3 4 5 6 7 8 9 10; do for b in 1 2 3 4 5 6 7 8 9 10; do for c in 1 2 3 4 5 6 7 8 9 10; do true; done; done; done\n", {}, Limits(max_script_steps=500)),
    ("max_call_depth", "function f { f; }\nf\n", {}, Limits()),
    ("max_call_depth", "function f { eval f; }\nf\n", {}, Limits()),
    ("max_include_depth", "source /boot/grub/grub.cfg\n", {}, Limits()),
    ("max_include_depth", "configfile /boot/grub/a.cfg\n", {"/boot/grub/a.cfg": b"configfile /boot/grub/grub.cfg\n"}, Limits()),
    ("max_string_bytes", "set a=x\nwhile true; do set a=$a$a; done\n", {}, Limits(max_string_bytes=1 << 16)),
    ("max_string_bytes", "set a=xxxxxxxxxxxxxxxx\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do set a=\"$a$a\"; done\necho $a$a$a\n", {}, Limits(max_string_bytes=1 << 16)),
    ("max_menu_entries", "while true; do menuentry x { linux /vmlinuz; }; done\n", {}, Limits(max_menu_entries=500)),
    ("max_config_bytes", b"# " + b"x" * 200_000 + b"\n", {}, Limits(max_config_bytes=100_000)),
    ("max_config_bytes", "source /boot/grub/big.cfg\n", {"/boot/grub/big.cfg": b"echo x\n" * 30_000}, Limits(max_config_bytes=100_000)),
    ("max_grubenv_bytes", "load_env\n", {"/boot/grub/grubenv": render_grubenv({}, size=100_000)}, Limits(max_grubenv_bytes=65_536)),
]


@pytest.mark.parametrize(("limit", "cfg", "extra", "limits"), HOSTILE, ids=[f"{h[0]}-{i}" for i, h in enumerate(HOSTILE)])
def test_hostile_config_ends_cleanly(limit: str, cfg: str | bytes, extra: dict[str, bytes], limits: Limits) -> None:
    with pytest.raises(LimitExceeded) as info:
        run(cfg, limits, extra)
    assert info.value.name == limit
    assert limit in str(info.value)


def test_a_100_megabyte_config_is_refused_before_reading() -> None:
    big = b"#" * (100 << 20)
    with pytest.raises(LimitExceeded, match="max_config_bytes"):
        run(big, Limits())


def test_regexp_blowup_is_bounded() -> None:
    with pytest.raises(LimitExceeded, match="max_script_steps"):
        run("regexp '(a|a)*(b|b)*(a|a)*c' " + "a" * 3000 + "\n", Limits(max_script_steps=100_000))


_WORDS = st.sampled_from(
    ["menuentry", "submenu", "'t'", '"$x"', "{", "}", ";", "\n", "if", "then", "fi", "for", "in", "do", "done", "while",
     "function", "f", "set", "x=1", "$x", "${x}", "linux", "/vmlinuz", "initrd", "echo", "source", "/boot/grub/grub.cfg",
     "configfile", "eval", "[", "]", "-z", "!", "default=1>0", "search", "-u", "--set=root", "load_env", "save_env",
     "blscfg", "regexp", "'(a*)*b'", "shift", "return", "break", "continue", "\\", "'", '"', "#", "$", "export", "x"]
)
_SCRIPTS = st.one_of(st.lists(_WORDS, max_size=60).map(" ".join), st.text(max_size=300))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SCRIPTS)
def test_any_text_gives_a_menu_or_a_virtkit_error(text: str) -> None:
    try:
        run(text, Limits(max_script_steps=5_000, max_call_depth=20, max_include_depth=4, max_menu_entries=200, max_string_bytes=1 << 14))
    except VirtkitError:
        pass
