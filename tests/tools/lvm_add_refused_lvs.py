#!/usr/bin/env python3
"""Add LVs that virtkit must refuse (raid1, snapshot, thin) to a ``vgcfgbackup`` file.

LVM cannot create raid1, thin or snapshot LVs without the kernel's
device-mapper (the fixture machine has none), but it writes whatever
metadata ``vgcfgrestore`` accepts.  This script appends those LVs, in the
exact shape lvcreate gives them (see lvmraid(7), lvmthin(7), lvm(8)
"snapshot"), to the ``logical_volumes`` section of a backup; the fixture
script then restores it with ``vgcfgrestore --force`` so LVM itself validates
and writes the metadata.

Usage: lvm_add_refused_lvs.py BACKUP_IN BACKUP_OUT FIRST_FREE_EXTENT ORIGIN_LV

Extents FIRST_FREE_EXTENT .. +8 on pv0 are used.  UUIDs are deterministic.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_rng = random.Random(20240501)


def _uuid() -> str:
    s = "".join(_rng.choice(_ALPHABET) for _ in range(32))
    return "-".join([s[:6], s[6:10], s[10:14], s[14:18], s[18:22], s[22:26], s[26:]])


def _lv(name: str, segment: str, status: str) -> str:
    return f"""
		{name} {{
			id = "{_uuid()}"
			status = {status}
			flags = []
			creation_time = 1700000000
			creation_host = "fixture"
			segment_count = 1

			segment1 {{
				start_extent = 0
{segment}
			}}
		}}
"""


VISIBLE = '["READ", "WRITE", "VISIBLE"]'
HIDDEN = '["READ", "WRITE"]'


def _linear(name: str, extent: int, status: str = HIDDEN) -> str:
    seg = f"""				extent_count = 1

				type = "striped"
				stripe_count = 1

				stripes = [
					"pv0", {extent}
				]"""
    return _lv(name, seg, status)


def refused_lvs(first: int, origin: str) -> str:
    raid1 = _lv(
        "mirror-r1",
        """				extent_count = 1

				type = "raid1"
				device_count = 2
				region_size = 1024

				raids = [
					"mirror-r1_rmeta_0", "mirror-r1_rimage_0",
					"mirror-r1_rmeta_1", "mirror-r1_rimage_1"
				]""",
        VISIBLE,
    )
    out = raid1
    for i, leg in enumerate(("mirror-r1_rmeta_0", "mirror-r1_rimage_0", "mirror-r1_rmeta_1", "mirror-r1_rimage_1")):
        out += _linear(leg, first + i)
    out += _linear("snap", first + 4, VISIBLE)
    out += _lv(
        "snapshot0",
        f"""				extent_count = 1

				type = "snapshot"
				chunk_size = 8
				origin = "{origin}"
				cow_store = "snap\"""",
        '["READ"]',
    )
    out += _lv(
        "pool",
        """				extent_count = 1

				type = "thin-pool"
				metadata = "pool_tmeta"
				pool = "pool_tdata"
				transaction_id = 1
				chunk_size = 128
				discards = "passdown"
				zero_new_blocks = 1""",
        VISIBLE,
    )
    out += _lv(
        "thin1",
        """				extent_count = 2

				type = "thin"
				thin_pool = "pool"
				transaction_id = 0
				device_id = 1""",
        VISIBLE,
    )
    out += _linear("pool_tmeta", first + 5)
    out += _linear("pool_tdata", first + 6)
    out += _linear("lvol0_pmspare", first + 7)
    return out


def main() -> None:
    src, dst, first, origin = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    text = Path(src).read_text(encoding="utf-8")
    end = text.index("\t}\n\n}")  # the end of logical_volumes, then of the VG section
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text[:end] + refused_lvs(first, origin) + text[end:])


if __name__ == "__main__":
    main()
