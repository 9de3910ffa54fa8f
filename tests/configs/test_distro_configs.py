"""Realistic configurations in the shape each distribution writes, through discovery and the engines.

Each case is a directory ``tests/configs/<loader>/<case>/`` with ``case.json`` (``about``,
``infos``: the guest's devices in GRUB order with their DeviceInfo fields, optional ``platform``)
and ``devices/<device>/...``: the files of each filesystem.  The expected menu (JSON, the
``list`` tree and the ``explain`` text) is in ``tests/golden/configs/<loader>/<case>.*``;
``pytest --regenerate-golden`` rewrites them (review the diff).

GRUB 2 cases live in ``tests/configs/grub2/`` and have their own runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_golden
from virtkit.boot.config import MenuOptions, discover_menu
from virtkit.boot.config.model import BootEntry, iter_entries
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.boot.menu import menu_to_json, render_explain, render_tree
from virtkit.limits import Limits

HERE = Path(__file__).resolve().parent
LOADERS = ("grub-legacy", "extlinux", "lilo", "systemd-boot")
CASES = sorted(p for loader in LOADERS for p in (HERE / loader).iterdir() if (p / "case.json").exists())


def load_case(case: Path) -> tuple[MemoryFiles, dict[str, object]]:
    """The case's devices as a MemoryFiles, and its case.json."""
    meta = json.loads((case / "case.json").read_text())
    infos = meta["infos"]
    trees: dict[str, dict[str, bytes]] = {}
    dev_infos = []
    for name, fields in infos.items():
        root = case / "devices" / name
        tree: dict[str, bytes] = {}
        if root.exists():
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    tree["/" + f.relative_to(root).as_posix()] = f.read_bytes()
        trees[name] = tree
        dev_infos.append(DeviceInfo(name=name, aliases=tuple(fields.get("aliases", ())), fs_type=fields.get("fs_type"),
                                    uuid=fields.get("uuid"), label=fields.get("label")))
    return MemoryFiles(trees, infos=dev_infos), meta


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_distro_config(case: Path) -> None:
    files, meta = load_case(case)
    opts = MenuOptions(platform=meta.get("platform"))  # type: ignore[arg-type]
    gm = discover_menu(files, limits=Limits(), options=opts)
    assert gm.used.loader == case.parent.name
    doc = menu_to_json(gm.menu, candidates=gm.candidates, used=gm.used)
    text = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    name = f"configs/{case.parent.name}/{case.name}"
    assert_golden(text, f"{name}.json")
    assert_golden(render_tree(gm.menu), f"{name}.list.txt")
    assert_golden(render_explain(gm.menu, candidates=gm.candidates, used=gm.used), f"{name}.explain.txt")
    # The golden must also be *valid*: it parses back, and every bootable entry's files exist.
    assert json.loads(text)["schema_version"] == 1
    for _path, entry in iter_entries(gm.menu.items):
        if isinstance(entry, BootEntry) and entry.bootable:
            assert entry.kernel is not None
            for ref in (entry.kernel, *entry.initrds):
                st = files.stat(ref.device or "", ref.path)
                assert st is not None and not st.is_dir, f"{ref.display()} of '{entry.title}' missing in {case}"
