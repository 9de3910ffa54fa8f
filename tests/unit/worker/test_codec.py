"""The menu codec: round trips, and every kind of malformed worker reply is refused."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, Submenu
from virtkit.boot.config.source import Location, SourceFile
from virtkit.boot.worker.codec import menu_from_wire, menu_to_wire
from virtkit.errors import WorkerError
from virtkit.limits import Limits

LIM = Limits()
SRC = SourceFile("hd0,msdos1", "/grub/grub.cfg", "")


def sample_menu() -> BootMenu:
    e1 = BootEntry(
        title="Debian", id="deb", kind=EntryKind.LINUX, kernel=FileRef("hd0,msdos1", "/vmlinuz", "/vmlinuz"),
        initrds=(FileRef("hd0,msdos1", "/ucode.img", "/ucode.img"), FileRef("hd0,msdos1", "/initrd", "/initrd")),
        cmdline="root=/dev/xvda1 ro", classes=("debian",), origin=Location(SRC, 3, 1), body="linux /vmlinuz\n",
        notes=("n",),
    )
    xen = BootEntry(title="Xen", kind=EntryKind.XEN, notes=("boots the Xen hypervisor",))
    sub = Submenu(title="Advanced", items=(e1, xen), id="adv")
    return BootMenu(
        loader="grub2", config=FileRef("hd0,msdos1", "/grub/grub.cfg"), items=(e1, sub), default=(1, 0),
        default_trail=("a", "b"), fallback=((0,),), timeout=5.0, timeout_style="menu", flavour="upstream",
        env={"saved_entry": "x"}, env_writes={"next_entry": None}, warnings=("w",), output=("echo",),
    )


def test_round_trip() -> None:
    m = sample_menu()
    wire = json.loads(json.dumps(menu_to_wire(m)))
    back = menu_from_wire(wire, limits=LIM)
    assert menu_to_wire(back) == menu_to_wire(m)
    assert back.default_entry() is not None and back.default_entry().title == "Debian"


def _mutate(path: list, value: object) -> dict:
    w = copy.deepcopy(menu_to_wire(sample_menu()))
    cur = w
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return w


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["items"], "x", "expected a list"),
        (["items", 0, "title"], 5, "expected a string"),
        (["items", 0, "kind"], "exploit", "unknown entry kind"),
        (["items", 0, "kernel"], {"path": 1, "written": "", "device": None}, "expected a string"),
        (["items", 0, "initrds"], [None], "null initrd"),
        (["items", 1, "type"], "folder", "expected 'entry' or 'submenu'"),
        (["default"], [7], "not in the tree"),
        (["default"], [-1], "integer in range"),
        (["default"], [True], "integer in range"),
        (["timeout"], "5", "number or null"),
        (["env"], {"a": 1}, "expected a string"),
        (["config"], None, "missing"),
        (["items", 0, "title"], "x" * (2 << 20), "too long"),
    ],
)
def test_malformed_replies_are_refused(path: list, value: object, message: str) -> None:
    with pytest.raises(WorkerError, match=message):
        menu_from_wire(_mutate(path, value), limits=LIM)


def test_depth_and_count_limits() -> None:
    item: dict = menu_to_wire(sample_menu())["items"][0]
    for _ in range(200):
        item = {"type": "submenu", "title": "s", "id": None, "classes": [], "origin": None, "notes": [], "items": [item]}
    w = menu_to_wire(sample_menu())
    w["items"] = [item]
    w["default"] = None
    with pytest.raises(WorkerError, match="nested too deeply"):
        menu_from_wire(w, limits=LIM)
    w["items"] = [menu_to_wire(sample_menu())["items"][0]] * 20
    with pytest.raises(WorkerError, match="too many"):
        menu_from_wire(w, limits=Limits(max_menu_entries=10))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_gives_a_menu_or_remote_protocol_error(v: object) -> None:
    try:
        menu_from_wire(v, limits=LIM)
    except WorkerError:
        pass
