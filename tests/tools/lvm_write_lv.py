#!/usr/bin/env python3
"""Write a file into an LV without device-mapper, using LVM's own segment report.

The fixture machine has no device-mapper, so LVs cannot be activated and
written through ``/dev/VG/LV``.  This helper asks LVM where an LV's segments
live (``lvs --segments ... --reportformat json``, ``pvs -o pe_start``) and
copies the data to those places in the PV images, using device-mapper's
striped layout (chunk k in stripe k mod N, row k div N).  It never uses
virtkit's own LVM code, so the fixtures check virtkit rather than repeat it;
the differential tests also read every LV through GRUB (grub-fstest).

Usage: lvm_write_lv.py --devices DEV1,DEV2 --map DEV=IMAGE[,DEV=IMAGE] VG/LV DATAFILE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from pathlib import Path


def lvm_json(args: list[str]) -> dict:
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", required=True)
    ap.add_argument("--map", required=True, help="DEV=IMAGE[@OFFSET] pairs: the image (and byte offset) behind each PV")
    ap.add_argument("lv")
    ap.add_argument("data")
    a = ap.parse_args()
    images: dict[str, tuple[str, int]] = {}
    for pair in a.map.split(","):
        dev, _, target = pair.partition("=")
        path, _, off = target.partition("@")
        images[dev] = (path, int(off or 0))
    common = ["--devices", a.devices, "--driverloaded", "n", "--reportformat", "json", "--units", "b", "--nosuffix"]
    pvs = lvm_json(["pvs", *common, "-o", "pv_name,pe_start,vg_extent_size"])["report"][0]["pv"]
    pe_start = {p["pv_name"]: int(p["pe_start"]) for p in pvs}
    extent = int(pvs[0]["vg_extent_size"])
    segs = lvm_json(["lvs", *common, "--segments", "-o", "seg_start_pe,seg_size_pe,stripes,stripe_size,devices", a.lv])[
        "report"
    ][0]["seg"]
    data = Path(a.data).read_bytes()
    for seg in segs:
        start = int(seg["seg_start_pe"]) * extent
        size = int(seg["seg_size_pe"]) * extent
        areas = []
        for dev in seg["devices"].split(","):
            m = re.fullmatch(r"(.+)\((\d+)\)", dev)
            assert m, dev
            path, base = images[m.group(1)]
            areas.append((path, base + pe_start[m.group(1)] + int(m.group(2)) * extent))
        n = len(areas)
        chunk = int(seg["stripe_size"]) if n > 1 else size
        pos = 0
        while pos < size and start + pos < len(data):
            k, within = divmod(pos, chunk)
            row, stripe = divmod(k, n)
            take = min(chunk - within, size - pos, len(data) - start - pos)
            path, area_off = areas[stripe]
            with open(path, "r+b") as f:
                f.seek(area_off + row * chunk + within)
                f.write(data[start + pos : start + pos + take])
            pos += take


if __name__ == "__main__":
    main()
