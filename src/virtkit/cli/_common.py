"""Arguments and helpers shared by the ``virtkit`` subcommands that read guest images.

* :func:`add_image_arguments` adds ``IMAGE...`` plus ``--image-format``,
  ``--sector-size``, ``--backing`` and ``--limit NAME=VALUE``;
* :func:`limits_from_args` builds the :class:`~virtkit.limits.Limits`;
* :func:`image_paths` returns the images to open - with no IMAGE the bundled
  sample guest is used (and stderr says so), so every command has a
  no-argument demo.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from importlib import resources

from virtkit.errors import UsageError
from virtkit.limits import Limits

__all__ = [
    "SAMPLE_IMAGE",
    "add_image_arguments",
    "image_paths",
    "limits_from_args",
    "sample_image_fd",
]

SAMPLE_IMAGE = "sample-guest.img.gz"  # in virtkit/data; built by tools/make-sample-image


def add_image_arguments(parser: argparse.ArgumentParser, *, nargs: str = "*") -> None:
    parser.add_argument(
        "images",
        nargs=nargs,
        metavar="IMAGE",
        help="guest disk image(s), block device(s) or a directory, in disk order "
        "(default: the bundled sample guest)",
    )
    parser.add_argument("--image-format", dest="image_format", choices=("raw", "qcow2"), help="image format (default: detect by content)")
    parser.add_argument("--sector-size", type=int, choices=(512, 4096), help="logical sector size (default: detect)")
    parser.add_argument(
        "--backing",
        metavar="FILE",
        help="allow a qcow2 overlay to read this backing file (the path stored in the image is never followed)",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="raise or lower a safety limit, e.g. --limit max_kernel_bytes=536870912 (see docs/security.md)",
    )


def limits_from_args(args: argparse.Namespace) -> Limits:
    values: dict[str, int | float] = {}
    for item in getattr(args, "limit", []) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--limit wants NAME=VALUE, got {item!r}")
        name = name.strip().replace("-", "_")
        try:
            values[name] = float(value) if "." in value else int(value, 0)
        except ValueError:
            raise UsageError(f"--limit {name}: {value!r} is not a number") from None
    return Limits.from_mapping(values) if values else Limits()


def sample_image_fd() -> int:
    """A read-only descriptor holding the bundled sample guest image (a memfd: no temp files)."""
    data = resources.files("virtkit").joinpath("data", SAMPLE_IMAGE).read_bytes()
    raw = gzip.decompress(data)
    fd = os.memfd_create("virtkit-sample-guest", os.MFD_CLOEXEC | getattr(os, "MFD_ALLOW_SEALING", 0))
    os.write(fd, raw)
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    return ro


def image_paths(args: argparse.Namespace) -> list[str]:
    """The IMAGE arguments, or ``[]`` meaning "use the sample" (announced on stderr)."""
    paths = list(getattr(args, "images", []) or [])
    if not paths:
        sys.stderr.write("virtkit: no IMAGE given: using the bundled sample guest image\n")
    return paths
