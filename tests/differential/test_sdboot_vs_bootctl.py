"""Differential: our systemd-boot engine against systemd's ``bootctl list`` on the same ESP/XBOOTLDR trees.

``bootctl`` (Debian package ``systemd-boot``) implements the same Boot Loader Specification reading,
sorting, title uniquification and ``default`` glob as systemd-boot (``src/shared/bootspec.c`` mirrors
``src/boot/boot.c``).  It insists on a real mount point, so each run happens in a private mount
namespace (``unshare -m``) with the trees copied onto tmpfs mounts; that needs root.  Without EFI
variables bootctl takes the default from loader.conf, exactly what a guest image gives us.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import require_tool
from virtkit.boot.config.model import iter_entries
from virtkit.boot.config.sdboot import load_sdboot_menu
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.limits import Limits

pytestmark = pytest.mark.differential

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs" / "systemd-boot"


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tool("bootctl", "unshare", "mount")
    if os.geteuid() != 0:
        pytest.skip("bootctl needs real mount points: the test mounts tmpfs in a private mount namespace (root)")


def bootctl_list(esp: dict[str, bytes], xbootldr: dict[str, bytes] | None, work: Path) -> tuple[list[dict], str | None]:
    """Entries (JSON, in bootctl's order) and the id bootctl marks "(default)"."""
    trees = {"esp": esp, **({"boot": xbootldr} if xbootldr is not None else {})}
    script = []
    for name, tree in trees.items():
        src, mnt = work / f"{name}-src", work / f"{name}-mnt"
        mnt.mkdir()
        for rel, data in tree.items():
            p = src / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        src.mkdir(exist_ok=True)
        script.append(f"mount -t tmpfs none {shlex.quote(str(mnt))} && cp -a {shlex.quote(str(src))}/. {shlex.quote(str(mnt))}/")
    args = f"--esp-path={shlex.quote(str(work / 'esp-mnt'))}"
    if xbootldr is not None:
        args += f" --boot-path={shlex.quote(str(work / 'boot-mnt'))}"
    cmd = " && ".join(script) + f" && bootctl {args} list --json=short --no-pager && echo '#####' && bootctl {args} list --no-pager"
    env = {**os.environ, "SYSTEMD_RELAX_ESP_CHECKS": "1", "SYSTEMD_RELAX_XBOOTLDR_CHECKS": "1", "SYSTEMD_PAGER": "cat"}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True, env=env, check=False,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    js, _sep, text = proc.stdout.partition("#####\n")
    entries = [json.loads(line) for line in js.splitlines() if line.strip()]
    default = None
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            block.append(line.strip())
            continue
        if any(b.startswith("title:") and "(default)" in b for b in block):
            default = next(b.split(":", 1)[1].strip() for b in block if b.startswith("id:"))
        block = []
    return entries, default


def ours(esp: dict[str, bytes], xbootldr: dict[str, bytes] | None) -> tuple[list[dict], str | None]:
    trees = {"hd0,gpt1": esp, **({"hd0,gpt2": xbootldr} if xbootldr is not None else {})}
    infos = [DeviceInfo(name, fs_type="vfat") for name in trees]
    menu = load_sdboot_menu(MemoryFiles(trees, infos=infos), "hd0,gpt1", "/loader/loader.conf", limits=Limits())
    out = []
    for _p, e in iter_entries(menu.items):
        d: dict[str, object] = {"id": e.id, "showTitle": e.title}
        # The kernel's command line starts with systemd-boot's `initrd=\\PATH` words (boot.c
        # initrd_prepare); bootctl shows the entry's `options` alone.
        prefix = " ".join("initrd=" + r.written.replace("/", "\\") for r in e.initrds)
        options = e.cmdline[len(prefix):].lstrip(" ") if prefix and e.cmdline.startswith(prefix) else e.cmdline
        if options:
            d["options"] = options
        if e.kernel is not None:
            d["linux"] = e.kernel.written
        if e.initrds:
            d["initrd"] = [r.written for r in e.initrds]
        out.append(d)
    default = menu.default_entry()
    return out, default.id if default is not None else None


def _unquote(v: object) -> object:
    # Deliberate difference: systemd-boot's line_get_key_value() drops quotes around a whole value
    # (`options "a b"` boots with `a b`); bootctl's bootspec.c keeps them.  We follow the boot loader.
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def comparable(entries: list[dict]) -> list[dict]:
    keys = ("id", "showTitle", "options", "linux", "initrd")
    return [{k: _unquote(e[k]) for k in keys if k in e} for e in entries]


def tree_of(case: str, device: str) -> dict[str, bytes]:
    root = CONFIGS / case / "devices" / device
    return {"/" + p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_xbootldr_config(tmp_path: Path) -> None:
    esp, boot = tree_of("xbootldr", "hd0,gpt1"), tree_of("xbootldr", "hd0,gpt2")
    theirs, their_default = bootctl_list(esp, boot, tmp_path)
    mine, my_default = ours(esp, boot)
    assert comparable(mine) == comparable(theirs)
    assert my_default == their_default


def test_arch_config(tmp_path: Path) -> None:
    esp = {k: v for k, v in tree_of("arch", "hd0,gpt1").items()
           if not k.endswith(("zz-missing.conf", "notes.conf"))}  # bootctl lists what systemd-boot hides
    theirs, their_default = bootctl_list(esp, None, tmp_path)
    mine, my_default = ours(esp, None)
    assert comparable(mine) == comparable(theirs)
    assert my_default == their_default


NAME = st.text(alphabet="abcxyz019-._", min_size=1, max_size=8)
VERSION = st.text(alphabet="0123456789.-~^abc", min_size=1, max_size=8)
WORD = st.text(alphabet="abcdefXYZ0123 ", min_size=1, max_size=10).map(str.strip).filter(bool)


@st.composite
def entry_sets(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    tree: dict[str, bytes] = {"/k": b"kernel", "/i": b"initrd"}
    n = draw(st.integers(1, 6))
    names = draw(st.lists(NAME, min_size=n, max_size=n, unique_by=str.lower))
    for name in names:
        counter = draw(st.sampled_from(["", "", "+3", "+0-2", "+1-1"]))
        lines = []
        if draw(st.booleans()):
            lines.append(f"title {draw(WORD)}")
        for key in ("version", "sort-key", "machine-id"):
            if draw(st.booleans()):
                value = draw(VERSION) if key == "version" else draw(st.sampled_from(["aaaa1111", "bbbb2222", "fedora"]))
                lines.append(f"{key} {value}")
        lines.append("linux /k")
        for _ in range(draw(st.integers(0, 2))):
            lines.append("initrd /i")
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"options {draw(WORD)}")
        tree[f"/loader/entries/{name}{counter}.conf"] = ("\n".join(lines) + "\n").encode()
    pattern = draw(st.sampled_from(["", "*", f"{names[0][:2]}*", f"{names[-1]}.conf", "z*", "?" + names[0][1:] + "*"]))
    conf = f"default {pattern}\n" if pattern else ""
    tree["/loader/loader.conf"] = conf.encode()
    return tree, pattern


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry_sets())
def test_random_entry_sets(tmp_path_factory: pytest.TempPathFactory, data: tuple[dict[str, bytes], str]) -> None:
    tree, _pattern = data
    work = tmp_path_factory.mktemp("bootctl")
    try:
        theirs, their_default = bootctl_list(tree, None, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mine, my_default = ours(tree, None)
    assert comparable(mine) == comparable(theirs)
    assert my_default == their_default
