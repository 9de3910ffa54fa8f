"""grubenv parsing (against grub-editenv), BLS snippet rules, rpm version comparison, the ERE engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import require_tool
from virtkit.boot.config.bls import (
    BlsEntry,
    bls_menu_item,
    expand_bls_value,
    parse_bls_snippet,
    rpmvercmp,
    sort_bls_entries,
    split_nvr,
)
from virtkit.boot.config.grub2.regexp import RegexError, compile_ere, search_ere
from virtkit.boot.config.grubenv import GRUBENV_SIZE, parse_grubenv, render_grubenv
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

SIG = b"# GRUB Environment Block\n"

GRUBENV_CASES = [
    (SIG + b"a=1\nb=two words\n" + b"#" * 20, {"a": "1", "b": "two words"}),
    (SIG + b"# WARNING: Do not edit\nx=\n", {"x": ""}),
    (SIG + b"v=a\\\\b\\\nc\n", {"v": "a\\b\nc"}),
    (SIG + b"odd\nname=val\n", {"odd\nname": "val"}),
    (SIG + b"a=1\nb=no newline", {"a": "1"}),
    (SIG + b"a=1\na=2\n", {"a": "2"}),
    (SIG + b"=empty name\n", {"": "empty name"}),
    (SIG + b"nul=a\0b\n", {"nul": "a"}),
    (SIG, {}),
]


@pytest.mark.parametrize(("data", "want"), GRUBENV_CASES)
def test_parse_grubenv(data: bytes, want: dict[str, str]) -> None:
    assert parse_grubenv(data, limits=Limits()).variables == want


def test_grubenv_size_and_signature() -> None:
    env = parse_grubenv(render_grubenv({"saved_entry": "x"}), limits=Limits())
    assert env.size == GRUBENV_SIZE and not env.notes
    assert parse_grubenv(SIG + b"a=1\n", limits=Limits()).notes  # not 1024 bytes: read anyway, noted
    with pytest.raises(CorruptStructure, match="invalid environment block"):
        parse_grubenv(b"# GRUB Environment Blok\nx=1\n", limits=Limits())
    with pytest.raises(LimitExceeded, match="max_grubenv_bytes"):
        parse_grubenv(SIG + b"#" * 5000, limits=Limits(max_grubenv_bytes=4096))


def test_render_refuses_an_overfull_block() -> None:
    with pytest.raises(ValueError, match="too small"):
        render_grubenv({"k": "v" * 2000})


@pytest.mark.differential
def test_grubenv_agrees_with_grub_editenv(tmp_path: Path) -> None:
    require_tool("grub-editenv")
    f = tmp_path / "grubenv"
    subprocess.run(["grub-editenv", str(f), "create"], check=True)
    values = {"saved_entry": "Advanced options for Debian>Debian, with Linux 6.1", "next_entry": "", "odd": "back\\slash", "multi": "line1\nline2"}
    subprocess.run(["grub-editenv", str(f), "set", *[f"{k}={v}" for k, v in values.items()]], check=True)
    data = f.read_bytes()
    assert len(data) == GRUBENV_SIZE
    assert parse_grubenv(data, limits=Limits()).variables == values
    assert render_grubenv(values) == data  # we write what grub-editenv writes
    listed = subprocess.run(["grub-editenv", str(f), "list"], check=True, capture_output=True, text=True).stdout
    assert "saved_entry=Advanced options for Debian>Debian, with Linux 6.1" in listed


VERCMP = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0", 1), ("1.0a", "1.0", 1),
    ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1), ("1.0", "1.0~rc1", 1), ("010", "10", 0), ("1.01", "1.1", 0),
    ("a", "1", -1), ("1", "a", 1), ("5.14.0-362.el9", "5.14.0-70.el9", 1), ("6.5.12-300.fc39", "6.6.2-201.fc39", -1),
    ("1.0.", "1.0", 0), ("1_0", "1.0", 0), ("abc", "abd", -1), ("", "1", -1), ("1", "", 1),
    ("1.0^", "1.0", 0),  # blscfg's copy of rpmvercmp predates the caret: a separator
    ("2.0.0", "2.0.0.0", -1),
]


@pytest.mark.parametrize(("a", "b", "want"), VERCMP)
def test_rpmvercmp(a: str, b: str, want: int) -> None:
    assert rpmvercmp(a, b) == want
    assert rpmvercmp(b, a) == -want


def test_split_nvr() -> None:
    assert split_nvr("3b8f-5.14.0-70.13.1.el9_0.x86_64") == ("3b8f", "5.14.0", "70.13.1.el9_0.x86_64")
    assert split_nvr("a-1") == ("a", "1", "")
    assert split_nvr("plain") == ("plain", "", "")


def test_snippet_line_rules() -> None:
    e = parse_bls_snippet("  # comment\ntitle\tTabbed Title\n\tlinux /vmlinuz  \ninitrd /a\ninitrd /b\noptions\nversion never\n", "id1")
    assert e.keys == (("title\tTabbed", "Title"), ("linux", "/vmlinuz  "), ("initrd", "/a"), ("initrd", "/b"))
    assert e.truncated_at == 6
    assert e.get_all("initrd") == ["/a", "/b"]


def test_fedora_sort_drops_equal_versions() -> None:
    a = BlsEntry("m-1-2", "a", (("linux", "/k"),))
    b = BlsEntry("m-1-02", "b", (("linux", "/k"),))
    c = BlsEntry("m-2-1", "c", (("linux", "/k"),))
    ordered, dropped = sort_bls_entries([a, b, c])
    assert [e.id for e in ordered] == ["m-2-1", "m-1-2"] and [e.id for e in dropped] == ["m-1-02"]


def test_rhel8_sort_uses_version_key() -> None:
    a = BlsEntry("z-old", "a", (("version", "4.18.0-100"),))
    b = BlsEntry("a-new", "b", (("version", "4.18.0-500"),))
    ordered, dropped = sort_bls_entries([a, b], "version")
    assert [e.id for e in ordered] == ["a-new", "z-old"] and not dropped


def test_expand_bls_value_quirks() -> None:
    env = {"kernelopts": "root=/dev/sda ro", "tuned_params": "", "x": "X"}
    assert expand_bls_value("$kernelopts $tuned_params", env.get) == "root=/dev/sda ro   "
    assert expand_bls_value("$unset_a $unset_b", env.get) == " "
    assert expand_bls_value("$unset", env.get) is None
    assert expand_bls_value("a $x", env.get) == "a X "
    assert expand_bls_value("a \\$x $", env.get) == "a \\$x $"
    assert expand_bls_value("$tuned_params", env.get) == " "  # set but empty: still something (restricted users)
    assert expand_bls_value(None, env.get) is None


def test_bls_menu_item_body() -> None:
    e = parse_bls_snippet("title T\nlinux /vmlinuz-1\ninitrd /initramfs-1.img\noptions $kernelopts\ngrub_users $u\ngrub_class c\ngrub_arg --unrestricted\ndevicetree /dtb\n", "m-1-1")
    env = {"kernelopts": "root=x", "early_initrd": "ucode.img"}
    item = bls_menu_item(e, env.get)
    assert item is not None
    assert item.body == (
        "load_video\nset gfxpayload=keep\ninsmod gzio\nlinux ($root)/vmlinuz-1 root=x \n"
        "initrd ($root)/ucode.img ($root)/initramfs-1.img\ndevicetree ($root)/dtb\n"
    )
    assert (item.title, item.id, item.args, item.users, item.classes) == ("T", "m-1-1", ("T", "--unrestricted"), None, ("c",))
    assert bls_menu_item(parse_bls_snippet("title no linux\n", "x"), env.get) is None


ERE = [
    ("a|ab", "xab", ["ab"]),
    ("^([a-z]+)-([0-9]+)$", "vmlinuz-123", ["vmlinuz-123", "vmlinuz", "123"]),
    ("x{2,3}", "axxxxb", ["xxx"]),
    ("[[:digit:]]+", "ab12c", ["12"]),
    ("[^a-c]+", "abcxyz", ["xyz"]),
    ("a?", "", [""]),
    ("(a*)*b", "a" * 40, None),
    ("\\.cfg$", "grub.cfg", [".cfg"]),
    ("\\w+", "  ab_1 ", ["ab_1"]),
]


@pytest.mark.parametrize(("pat", "subject", "want"), ERE)
def test_ere(pat: str, subject: str, want: list[str] | None) -> None:
    prog, n = compile_ere(pat)
    steps = [0]

    def step() -> None:
        steps[0] += 1
        assert steps[0] < 100_000

    spans = search_ere(prog, n, subject, step)
    got = None if spans is None else [subject[a:b] if a >= 0 else None for a, b in spans]
    assert got == want


@pytest.mark.parametrize("pat", ["a(", "*a", "[a", "a{2,1}", "\\1", "x{300}", "a\\"])
def test_ere_rejects(pat: str) -> None:
    with pytest.raises(RegexError):
        compile_ere(pat)
