#!/usr/bin/env bash
# Build the qcow2 fixtures of tests/data/image/ with the real qemu-img and qemu-io.
#
#   tests/tools/make_image_fixtures.sh [OUTDIR]     (default: tests/data/image)
#
# Needs: qemu-utils (qemu-img, qemu-io), python3, gzip.  No root, no mounting.
# Every image is made from one small raw disk with recognisable content
# (disk.raw: 2 MiB, see make_raw below), so a test can check exact bytes.
# Written files: *.qcow2.gz and disk.raw.gz, plus SHA256SUMS listing the sha256
# of each image's virtual disk as `qemu-img convert -O raw` produced it here.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tests/data/image}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# disk.raw, 2 MiB = 32 clusters of 64 KiB:
#   cluster 0      text "virtkit image fixture: cluster 0000" lines (the first 4 KiB)
#   clusters 1-3   text markers "cluster NNNN" in every 512-byte sector
#   clusters 4-7   hole (zeros)
#   clusters 8-9   16 KiB of pseudo-random bytes (seeded; incompressible) at the
#                  start of 8 and 4 KiB at the end of 9, zeros between
#   cluster 10     one 4 KiB text block at +12 KiB, rest zeros
#   clusters 11-15 hole
#   clusters 16-31 markers again, except cluster 20 (hole) and 30 (0xff bytes)
make_raw() {
    python3 - "$1" <<'EOF'
import random, sys
C = 64 * 1024
disk = bytearray(32 * C)
def marker(cluster, sector):
    line = f"virtkit image fixture: cluster {cluster:04d} sector {sector:03d}\n".encode()
    return (line * (512 // len(line) + 1))[:512]
disk[0:4096] = b"".join(marker(0, s) for s in range(8))
for c in list(range(1, 4)) + [c for c in range(16, 32) if c not in (20, 30)]:
    disk[c * C:(c + 1) * C] = b"".join(marker(c, s) for s in range(C // 512))
rnd = random.Random(20240601)
disk[8 * C:8 * C + 16384] = rnd.randbytes(16384)
disk[10 * C - 4096:10 * C] = rnd.randbytes(4096)
disk[10 * C + 12288:10 * C + 16384] = b"".join(marker(10, s) for s in range(8))
disk[30 * C:31 * C] = b"\xff" * C
open(sys.argv[1], "wb").write(disk)
EOF
}
make_raw disk.raw

q() { qemu-img "$@"; }
io() { qemu-io -f qcow2 "$@" >/dev/null; }

# Plain conversions.
q convert -O qcow2 -o compat=0.10 disk.raw v2.qcow2
q convert -O qcow2 -o compat=1.1 disk.raw v3.qcow2
q convert -O qcow2 -o cluster_size=4096 disk.raw v3-4k.qcow2
q convert -O qcow2 -o cluster_size=512 disk.raw v3-512.qcow2
q convert -O qcow2 -c disk.raw zlib.qcow2
q convert -O qcow2 -c -o compression_type=zstd disk.raw zstd.qcow2
q convert -O qcow2 -o extended_l2=on disk.raw extl2.qcow2

# Zero clusters (v3 flag) and subclusters (extended L2), written with qemu-io.
q convert -O qcow2 disk.raw zeroes.qcow2
io -c "write -z 64k 64k" -c "write -z 1M 128k" zeroes.qcow2
q create -q -f qcow2 -o extended_l2=on,cluster_size=64k subclusters.qcow2 2M
io -c "write -P 0x11 0 4k" -c "write -P 0x22 8k 2k" -c "write -P 0x33 64k 64k" \
   -c "write -z 68k 8k" -c "write -P 0x44 1M 6k" -c "write -z 1040k 24k" subclusters.qcow2

# Overlays: on a raw backing file and on a qcow2 one (the names are stored relative).
q create -q -f qcow2 -b disk.raw -F raw overlay-raw.qcow2 2M
io -c "write -P 0xa1 0 512" -c "write -P 0xa2 128k 64k" -c "write -z 1M 64k" overlay-raw.qcow2
q create -q -f qcow2 -o extended_l2=on -b v3.qcow2 -F qcow2 overlay-qcow2.qcow2 2M
io -c "write -P 0xb1 4k 4k" -c "write -P 0xb2 200k 10k" -c "write -z 1088k 16k" overlay-qcow2.qcow2

# Lazy refcounts with a simulated crash: the dirty bit stays set.
q convert -O qcow2 -o lazy_refcounts=on disk.raw dirty.qcow2
sh -c 'qemu-io -f qcow2 -c "write -P 0xd1 256k 64k" -c abort dirty.qcow2' >/dev/null 2>&1 || true

: >SHA256SUMS
for f in *.qcow2; do
    q convert -O raw "$f" "$f.out"
    echo "$(sha256sum <"$f.out" | cut -d' ' -f1)  $f" >>SHA256SUMS
    rm "$f.out"
done
echo "$(sha256sum <disk.raw | cut -d' ' -f1)  disk.raw" >>SHA256SUMS

cd - >/dev/null
for f in "$work"/*.qcow2 "$work"/disk.raw; do
    gzip -9n <"$f" >"$out/$(basename "$f").gz"
done
cp "$work/SHA256SUMS" "$out/SHA256SUMS"
ls -l "$out"
