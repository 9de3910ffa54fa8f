"""The GRUB 2 parse-error gallery: each bad line of tests/errors/grub2_parse_errors.txt, rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TESTS, assert_golden, require_tool
from virtkit.boot.config.grub2 import load_grub2_menu, syntax_errors
from virtkit.boot.config.source import DeviceInfo, MemoryFiles, SourceFile
from virtkit.limits import Limits

GALLERY = TESTS / "errors" / "grub2_parse_errors.txt"


def _inputs() -> list[str]:
    out = []
    for line in GALLERY.read_text().split("\n"):
        if not line or line.startswith("# "):
            continue
        out.append(line.replace("\\n", "\n").replace("\\t", "\t"))
    return out


def test_parse_error_gallery() -> None:
    blocks: list[str] = []
    for i, text in enumerate(_inputs(), 1):
        src = SourceFile("hd0,msdos1", f"/boot/grub/case{i:02d}.cfg", text)
        errors = syntax_errors(src)
        assert errors, f"gallery line {i} parses without error: {text!r}"
        rendered = [f"{e}\n{e.location.render_excerpt()}" for e in errors]
        blocks.append(f"## {text!r}\n" + "\n".join(rendered))
    assert_golden("\n\n".join(blocks) + "\n", "grub2/parse_errors.txt")


def test_errors_name_the_include_chain() -> None:
    main = "set x=1\nsource ${prefix}/custom.cfg\nmenuentry 'a' { linux /k; }\n"
    custom = "# custom entries\nmenuentry 'c' {\n  linux /vmlinuz-6.1 root=\"UUID=0d1c ro quiet\n"
    files = MemoryFiles(
        {"hd0,msdos1": {"/boot/grub/grub.cfg": main.encode(), "/boot/grub/custom.cfg": custom.encode(), "/k": b"k"}},
        infos=[DeviceInfo("hd0,msdos1", fs_type="ext2")],
    )
    menu = load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=Limits())
    assert [i.title for i in menu.items] == ["a"]  # the unterminated quote ate the rest of custom.cfg
    (warning,) = [w for w in menu.warnings if "syntax error" in w]
    assert warning.startswith("(hd0,msdos1)/boot/grub/custom.cfg:3:")
    assert "unterminated double-quoted string" in warning


def test_included_location_renders_the_chain() -> None:
    from virtkit.boot.config.grub2.builtins import build_command_table
    from virtkit.boot.config.grub2.interp import Interpreter
    from virtkit.boot.config.grub2.tokens import ScriptText

    files = MemoryFiles({"hd0,msdos1": {"/boot/grub/custom.cfg": b"echo \"open\n"}}, infos=[DeviceInfo("hd0,msdos1", fs_type="ext2")])
    interp = Interpreter(files, limits=Limits(), fedora=False, platform="pc", commands=build_command_table("pc"))
    interp.ctx.set("root", "hd0,msdos1")
    outer = ScriptText.from_file(SourceFile("hd0,msdos1", "/boot/grub/grub.cfg", "set a=1\nsource /boot/grub/custom.cfg\n"))
    interp.run_config(outer, "/boot/grub/grub.cfg")
    warning = next(w for w in interp.warnings if "syntax error" in w)
    assert warning.startswith("(hd0,msdos1)/boot/grub/custom.cfg:1:6: syntax error: ")
    assert "syntax error: syntax error" not in warning
    # the warning names the file and line that read the sourced file, and how
    assert warning.endswith(" (included from (hd0,msdos1)/boot/grub/grub.cfg:2:1 by `source /boot/grub/custom.cfg`)")
    # a file read while running grub.cfg line 2 carries that location as its include origin
    interp.cur_script, interp.cur_pos = outer, outer.text.index("source")
    script = interp.read_config_file("/boot/grub/custom.cfg", how="source /boot/grub/custom.cfg")
    assert script is not None
    inner = script.location(5)
    assert inner.included_from is not None and inner.included_from.file.path == "/boot/grub/grub.cfg"
    assert inner.included_from.line == 2
    excerpt = inner.render_excerpt()
    assert excerpt.splitlines()[-1] == "  included from (hd0,msdos1)/boot/grub/grub.cfg:2:1 (source /boot/grub/custom.cfg)"


@pytest.mark.differential
def test_gallery_agrees_with_grub_script_check(tmp_path: Path) -> None:
    require_tool("grub-script-check")
    import re
    import subprocess

    from virtkit.boot.config.grub2.parser import iter_units
    from virtkit.boot.config.grub2.tokens import ScriptText

    for i, text in enumerate(_inputs(), 1):
        f = tmp_path / f"case{i}.cfg"
        f.write_text(text + ("\n" if not text.endswith("\n") else ""))
        r = subprocess.run(["grub-script-check", str(f)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, f"grub-script-check accepts gallery line {i}: {text!r}"
        m = re.search(r"Syntax error at line (\d+)", r.stdout + r.stderr)
        st = ScriptText.from_file(SourceFile(None, "t.cfg", text))
        unit = next(u for u in iter_units(st) if u.error is not None)
        if m:
            assert st.location(max(unit.error_end - 1, unit.error_pos)).line == int(m.group(1)), text
