"""Oils-style spec files for the GRUB 2 interpreter: parsing the files and running a case.

A ``tests/spec/grub2/*.test`` file is a list of cases::

    #### titles are expanded when the entry is defined
    for v in 6.1 5.10; do
      menuentry "Linux $v" { linux /vmlinuz root=/dev/vda1; }
    done
    ## stdout:
    @@END
    ## END
    ## boot:
    Booting `Linux 6.1'
    @@linux n=2 root=[hd0,msdos1] chosen=[Linux 6.1] /vmlinuz root=/dev/vda1
    Failed to boot both default and fallback entries.
    ## END
    ## menu: ["Linux 6.1", "Linux 5.10"]
    ## default: 0

The script is everything up to the first ``## `` line.  Annotations:

``## stdout:`` ... ``## END``
    what GRUB prints while reading the config (syntax-error messages collapsed, see
    ``oracle.grub_emu.normalize_transcript``), ending with the harness's ``@@END``.
``## boot:`` ... ``## END``
    what it prints while autobooting the default (and fallbacks): ``Booting `T'``
    lines, the harness's ``@@linux ...`` markers, entry output, the final failure.
``## menu: JSON``, ``## default: 1>0|none``, ``## entry 1>0: JSON``, ``## trail: text``,
``## warning: text``, ``## env_writes: JSON``
    assertions on our ``BootMenu`` (entry keys: kind, kernel, cmdline, initrds, id, users, classes).
``## file: PATH`` ... ``## end-file``
    an extra file on the boot filesystem.  ``## grubenv: JSON`` writes ``/boot/grub/grubenv``.
``## flavour: fedora``, ``## platform: efi``, ``## table: gpt``
    run options.
``## N-I grub-2.06 REASON``
    the oracle cannot settle this case (Fedora-only behaviour, an emu limitation); the
    expectations come from grub2-semantics.md and are checked against us only.
``## OK grub-2.06 REASON`` with ``## grub-2.06 stdout:``/``## grub-2.06 boot:`` blocks
    a deliberate difference: we print the plain expectations, grub-emu prints these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from oracle.grub_emu import DEFAULT_LABEL, DEFAULT_UUID, OracleCase, OraclePartition, minimal_pf2, normalize_transcript
from virtkit.boot.config.grub2 import Grub2Options, load_grub2_menu
from virtkit.boot.config.grub2.autoboot import autoboot_transcript
from virtkit.boot.config.grubenv import render_grubenv
from virtkit.boot.config.model import BootEntry, BootMenu, MenuItem, Submenu, iter_entries
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.limits import Limits

SPEC_DIR = Path(__file__).parent / "grub2"
CONFIG_PATH = "/boot/grub/grub.cfg"

# Every case's boot filesystem holds these besides its own files.
STANDARD_FILES: dict[str, bytes] = {
    "/boot/vmlinuz-6.1.0-13-amd64": b"linux kernel 6.1.0-13\n",
    "/boot/initrd.img-6.1.0-13-amd64": b"initrd 6.1.0-13\n",
    "/boot/vmlinuz-5.10.0-26-amd64": b"linux kernel 5.10.0-26\n",
    "/boot/initrd.img-5.10.0-26-amd64": b"initrd 5.10.0-26\n",
    "/boot/xen.gz": b"xen hypervisor\n",
    "/boot/intel-ucode.img": b"microcode\n",
    "/vmlinuz": b"linux kernel\n",
    "/initrd.img": b"initrd\n",
    "/k": b"k\n",
    "/i": b"i\n",
    "/empty": b"",
    "/boot/grub/fonts/unicode.pf2": b"",  # replaced by minimal_pf2() below
}


STANDARD_FILES["/boot/grub/fonts/unicode.pf2"] = minimal_pf2()


@dataclass
class SpecCase:
    """One ``####`` case of a spec file."""

    file: str
    name: str
    line: int
    script: str
    files: dict[str, bytes] = field(default_factory=dict)
    stdout: list[str] | None = None
    boot: list[str] | None = None
    oracle_stdout: list[str] | None = None
    oracle_boot: list[str] | None = None
    asserts: list[tuple[str, str]] = field(default_factory=list)
    flavour: str = "auto"
    platform: str = "pc"
    table: str = "dos"
    not_oracle: str | None = None
    ok_oracle: str | None = None
    script_end: int = 0  # 0-based index of the first line after the script

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}:{self.name}"

    @property
    def device(self) -> str:
        return "hd0,msdos1" if self.table == "dos" else "hd0,gpt1"

    def all_files(self) -> dict[str, bytes]:
        out = dict(STANDARD_FILES)
        out.update(self.files)
        out[CONFIG_PATH] = self.script.encode()
        return out

    def memory_files(self) -> MemoryFiles:
        dev = self.device
        infos = [
            DeviceInfo("hd0", fs_type=None),
            DeviceInfo(dev, aliases=("hd0,1",), fs_type="ext2", uuid=DEFAULT_UUID, label=DEFAULT_LABEL),
        ]
        return MemoryFiles({"hd0": {}, dev: self.all_files()}, infos=infos)

    def options(self) -> Grub2Options:
        return Grub2Options(platform=self.platform, flavour=self.flavour)

    def oracle_case(self, default_override: str | None = None) -> OracleCase:
        return OracleCase(
            (OraclePartition(tuple(sorted(self.all_files().items())), uuid=DEFAULT_UUID, label=DEFAULT_LABEL),),
            config_path=CONFIG_PATH,
            table=self.table,
            platform=self.platform,
            cpu="i386" if self.platform == "pc" else "x86_64",
            default_override=default_override,
        )


_BLOCK_KEYS = ("stdout", "boot", "grub-2.06 stdout", "grub-2.06 boot")


def _header(case: SpecCase, body: str) -> bool:
    """A one-line annotation allowed before the script; False if ``body`` is not one."""
    key, _, value = body.partition(":")
    key = key.strip()
    value = value.strip()
    if key == "flavour":
        case.flavour = value
    elif key == "platform":
        case.platform = value
    elif key == "table":
        case.table = value
    elif body.startswith("N-I grub-2.06"):
        case.not_oracle = body[len("N-I grub-2.06") :].strip() or "not settled by the oracle"
    elif body.startswith("OK grub-2.06"):
        case.ok_oracle = body[len("OK grub-2.06") :].strip() or "deliberate difference"
    else:
        return False
    return True


def parse_spec_file(path: Path) -> list[SpecCase]:
    """Parse one ``.test`` file."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    cases: list[SpecCase] = []
    i = 0
    while i < len(lines) and not lines[i].startswith("#### "):
        i += 1
    while i < len(lines):
        case = SpecCase(str(path), lines[i][5:].strip(), i + 1, "")
        i += 1
        while i < len(lines) and lines[i].startswith("## ") and _header(case, lines[i][3:]):
            i += 1
        script: list[str] = []
        while i < len(lines) and not lines[i].startswith("## ") and not lines[i].startswith("#### "):
            script.append(lines[i])
            i += 1
        case.script_end = i
        while script and script[-1] == "":
            script.pop()
            case.script_end -= 1
        case.script = "\n".join(script) + "\n"
        while i < len(lines) and not lines[i].startswith("#### "):
            line = lines[i]
            i += 1
            if not line.startswith("## "):
                continue
            body = line[3:]
            key, _, value = body.partition(":")
            key = key.strip()
            value = value.strip()
            if key in _BLOCK_KEYS and value == "":
                block: list[str] = []
                while i < len(lines) and lines[i] != "## END":
                    block.append(lines[i])
                    i += 1
                i += 1
                attr = key.replace("grub-2.06 ", "oracle_")
                setattr(case, attr, block)
            elif key == "file":
                content: list[str] = []
                while i < len(lines) and lines[i] != "## end-file":
                    content.append(lines[i])
                    i += 1
                i += 1
                case.files[value] = ("\n".join(content) + "\n").encode()
            elif key == "grubenv":
                case.files["/boot/grub/grubenv"] = render_grubenv(json.loads(value))
            elif key == "flavour":
                case.flavour = value
            elif key == "platform":
                case.platform = value
            elif key == "table":
                case.table = value
            elif body.startswith("N-I grub-2.06"):
                case.not_oracle = body[len("N-I grub-2.06") :].strip() or "not settled by the oracle"
            elif body.startswith("OK grub-2.06"):
                case.ok_oracle = body[len("OK grub-2.06") :].strip() or "deliberate difference"
            else:
                case.asserts.append((key, value))
        cases.append(case)
    return cases


def all_cases() -> list[SpecCase]:
    out: list[SpecCase] = []
    for p in sorted(SPEC_DIR.glob("*.test")):
        out.extend(parse_spec_file(p))
    return out


def split_phases(lines: list[str]) -> tuple[list[str], list[str]]:
    """(config phase up to and including @@END, boot phase)."""
    if "@@END" in lines:
        k = lines.index("@@END")
        return lines[: k + 1], lines[k + 1 :]
    return lines, []


def limits() -> Limits:
    return Limits(max_script_steps=200_000)


def our_transcript(case: SpecCase, default_override: str | None = None) -> list[str]:
    text = autoboot_transcript(
        case.memory_files(), case.device, CONFIG_PATH, limits=limits(), options=case.options(), default_override=default_override
    )
    return normalize_transcript(text)


def our_menu(case: SpecCase) -> BootMenu:
    return load_grub2_menu(case.memory_files(), case.device, CONFIG_PATH, limits=limits(), options=case.options())


def menu_shape(items: tuple[MenuItem, ...]) -> list[object]:
    return [{it.title: menu_shape(it.items)} if isinstance(it, Submenu) else it.title for it in items]


def fmt_path(path: tuple[int, ...] | None) -> str:
    return "none" if path is None else ">".join(str(p) for p in path)


def entry_facts(e: BootEntry) -> dict[str, object]:
    return {
        "kind": e.kind.value,
        "kernel": e.kernel.path if e.kernel else None,
        "kernel_device": e.kernel.device if e.kernel else None,
        "cmdline": e.cmdline,
        "initrds": [r.path for r in e.initrds],
        "id": e.id,
        "users": e.users,
        "classes": list(e.classes),
        "args": list(e.args),
    }


def entry_override_paths(menu: BootMenu, limit: int = 8) -> list[str]:
    """``default`` values that make GRUB boot each entry (plus one past each level's end)."""
    out: list[str] = []
    for path, _e in list(iter_entries(menu.items))[:limit]:
        out.append(">".join(str(p) for p in path))

    def levels(items: tuple[MenuItem, ...], prefix: tuple[int, ...]) -> None:
        out.append(">".join(str(p) for p in (*prefix, len(items))))
        for k, it in enumerate(items):
            if isinstance(it, Submenu) and it.items:
                levels(it.items, (*prefix, k))

    if menu.items:
        levels(menu.items, ())
    return out


_ASSERT_ENTRY = re.compile(r"entry ([0-9>]+)")


def _strip_blocks(path: Path) -> None:
    """Remove the ``## stdout:``/``## boot:`` blocks of every oracle-settled case."""
    cases = {c.line: c for c in parse_spec_file(path)}
    lines = path.read_bytes().decode("utf-8").split("\n")
    out: list[str] = []
    current: SpecCase | None = None
    i = 0
    while i < len(lines):
        if lines[i].startswith("#### "):
            current = cases.get(i + 1)
        if lines[i] in ("## stdout:", "## boot:") and current is not None and current.not_oracle is None and current.ok_oracle is None:
            while i < len(lines) and lines[i] != "## END":
                i += 1
            i += 1
            continue
        out.append(lines[i])
        i += 1
    path.write_bytes("\n".join(out).encode("utf-8"))


def fill_expectations(refill: bool = False) -> None:
    """Give every oracle case without ``## stdout:`` the blocks grub-emu prints (run as root)."""
    from oracle.grub_emu import run_grub_emu

    for path in sorted(SPEC_DIR.glob("*.test")):
        if refill:
            _strip_blocks(path)
        lines = path.read_bytes().decode("utf-8").split("\n")
        todo = [c for c in parse_spec_file(path) if c.stdout is None and c.not_oracle is None and c.ok_oracle is None]
        for case in reversed(todo):
            live = normalize_transcript(run_grub_emu(case.oracle_case()))
            cfg, boot = split_phases(live)
            block = ["## stdout:", *cfg, "## END"]
            if boot:
                block += ["## boot:", *boot, "## END"]
            lines[case.script_end : case.script_end] = block
            print(f"filled {case.id}")
        path.write_bytes("\n".join(lines).encode("utf-8"))


if __name__ == "__main__":  # pragma: no cover - a maintenance tool
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if sys.argv[1:2] == ["fill"]:
        fill_expectations(refill=sys.argv[2:] == ["--all"])
