#!/usr/bin/env python3
"""Replace the random VG and LV UUIDs of a ``vgcfgbackup`` file with deterministic ones.

lvcreate/vgcreate pick random UUIDs and have no option to set them, so the
fixture script backs the VG up, pins the ids with this script and restores it
(``vgcfgrestore``): a rebuild then gives the same ``lvmid/VGUUID/LVUUID``
names.  PV ids are set at pvcreate time (``--uuid``) and left alone.

Usage: lvm_pin_ids.py BACKUP_IN BACKUP_OUT
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def pinned(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    s = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:32])
    return "-".join([s[:6], s[6:10], s[10:14], s[14:18], s[18:22], s[22:26], s[26:]])


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    path: list[str] = []
    out = []
    for line in Path(src).read_text(encoding="utf-8").splitlines(keepends=True):
        stripped = line.strip()
        m = re.fullmatch(r"(\S+) \{", stripped)
        if m:
            path.append(m.group(1))
        elif stripped == "}":
            path.pop()
        elif stripped.startswith('id = "'):
            vg = len(path) == 1
            lv = len(path) == 3 and path[1] == "logical_volumes"
            if vg or lv:
                line = re.sub(r'id = "[^"]*"', f'id = "{pinned("/".join(path))}"', line)
        out.append(line)
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(out)


if __name__ == "__main__":
    main()
