"""The error taxonomy and the Limits object."""

from __future__ import annotations

import pytest

from virtkit.errors import (
    CorruptStructure,
    FileNotFound,
    ImageError,
    LimitExceeded,
    ProtocolError,
    RemoteProtocolError,
    UsageError,
    VirtkitError,
)
from virtkit.limits import DEFAULT_LIMITS, Limits
from virtkit.sanitize import sanitize_text


def test_corrupt_structure_message_says_what_where_expected_got() -> None:
    e = CorruptStructure("ext4 superblock on vg0/root", "bad magic", offset=0x400, expected=0xEF53, got=0)
    assert str(e) == "ext4 superblock on vg0/root at 0x400: bad magic, expected 0xef53, got 0"
    assert isinstance(e, ImageError)


def test_file_not_found_is_both_ours_and_the_builtin() -> None:
    e = FileNotFound("x")
    assert isinstance(e, VirtkitError)
    assert isinstance(e, FileNotFoundError)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProtocolError("x")
    assert isinstance(RemoteProtocolError("x"), VirtkitError)


def test_limit_exceeded_names_the_flag() -> None:
    with pytest.raises(LimitExceeded, match=r"max_symlink_hops limit of 40 \(raise it with --limit max_symlink_hops=N\)"):
        DEFAULT_LIMITS.check("max_symlink_hops", 41, "ext4 on disk0p1")
    assert DEFAULT_LIMITS.check("max_symlink_hops", 40) == 40


def test_limits_are_frozen_and_validated() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_read = 1  # type: ignore[misc]
    assert Limits.from_mapping({"max_read": 4096}).max_read == 4096
    with pytest.raises(UsageError, match="unknown limit"):
        Limits.from_mapping({"max_nonsense": 1})
    with pytest.raises(UsageError, match="positive"):
        Limits.from_mapping({"max_read": 0})


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Debian GNU/Linux", "Debian GNU/Linux"),
        ("evil\x1b[2Jtitle", "evil\\x1b[2Jtitle"),
        ("bell\x07", "bell\\x07"),
        ("c1\x9b31m", "c1\\x9b31m"),
        ("rtl\u202eabc", "rtl\\u202eabc"),
        ("bad\udcffbyte", "bad\\xffbyte"),
        ("tab\there", "tab\\x09here"),
    ],
)
def test_sanitize_text(raw: str, shown: str) -> None:
    assert sanitize_text(raw) == shown
