"""Every bound virtkit applies to guest-controlled input, in one frozen object.

Guest images are hostile (STYLE.md, idea 3).  Each pointer-following loop,
each length read from disk and each interpreter loop is bounded by a field of
:class:`Limits`; breaking one raises :class:`~virtkit.errors.LimitExceeded`
naming the field, so the operator knows which flag raises it.

The defaults are generous for real guests and small enough that a hostile
image is refused in well under a second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from virtkit.errors import LimitExceeded, UsageError

__all__ = ["DEFAULT_LIMITS", "Limits"]

_MiB = 1 << 20
_GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything virtkit reads from a guest.

    Storage layers (image, volume, fs):

    Attributes:
        max_image_bytes: largest virtual disk size accepted (qcow2 header, LV sizes).
        max_read: largest single length taken from an on-disk field and read at once
            (a metadata table, a directory block, a decompressed extent).
        max_partitions: partition-table entries, EBR chain links included, per disk.
        max_volumes: volumes discovered in total (partitions + LVs + arrays).
        max_disks: images given for one guest.
        max_lvm_metadata_bytes: size of one LVM text metadata copy.
        max_lvm_tokens: tokens in one LVM metadata text.
        max_tree_depth: levels of any on-disk tree (extent trees, bmbt, btrfs, htree).
        max_tree_nodes: nodes visited in one tree walk (cycle guard besides visited sets).
        max_extents: extents (or block-map runs) in one file.
        max_chain_length: links in any other chain (FAT clusters, ISO continuation areas).
        max_dir_entries: entries in one directory listing.
        max_symlink_hops: symlinks followed while resolving one path (Linux ELOOP is 40).
        max_path_components: components in one path.
        max_name_bytes: bytes in one file name.
        max_file_bytes: size of a file the readers will open as a stream at all.

    Configuration layer:

    Attributes:
        max_config_bytes: size of one boot-loader configuration file.
        max_include_depth: nesting of source/configfile/INCLUDE.
        max_script_steps: GRUB commands executed for one configuration.
        max_call_depth: nested GRUB function calls / entry evaluations.
        max_menu_entries: menu items in one configuration.
        max_string_bytes: bytes in one GRUB variable value or word.
        max_grubenv_bytes: size of a grubenv file read.

    Extraction and isolation:

    Attributes:
        max_kernel_bytes: size of an extracted kernel.
        max_initrd_bytes: size of an extracted initrd (all parts together).
        worker_timeout: wall-clock seconds the deprivileged worker may run.
        worker_cpu_seconds: CPU seconds for the worker (RLIMIT_CPU).
        worker_address_space: bytes of address space for the worker (RLIMIT_AS).

    Services:

    Attributes:
        max_line_bytes: receive buffer for line protocols.
        max_pending_bytes: bytes owed to one EGD client before it is paused.
        max_egd_receive_buffer: unparsed bytes buffered from one EGD client.
        max_egd_connections: EGD client connections open at once, all listeners together.
        max_domain_xml_bytes: size of one libvirt domain XML (or QEMU command line) the audit reads.
        max_handover_state_bytes: size of the state a running entropy service hands to its successor.
    """

    # storage
    max_image_bytes: int = 1 << 50
    max_read: int = 64 * _MiB
    max_partitions: int = 256
    max_volumes: int = 1024
    max_disks: int = 16
    max_lvm_metadata_bytes: int = 4 * _MiB
    max_lvm_tokens: int = 1_000_000
    max_tree_depth: int = 16
    max_tree_nodes: int = 1_000_000
    max_extents: int = 1_000_000
    max_chain_length: int = 4_000_000
    max_dir_entries: int = 1_000_000
    max_symlink_hops: int = 40
    max_path_components: int = 256
    max_name_bytes: int = 1024
    max_file_bytes: int = 16 * _GiB
    # configuration
    max_config_bytes: int = 16 * _MiB
    max_include_depth: int = 16
    max_script_steps: int = 5_000_000
    max_call_depth: int = 128
    max_menu_entries: int = 100_000
    max_string_bytes: int = 1 * _MiB
    max_grubenv_bytes: int = 64 * 1024
    # extraction and isolation
    max_kernel_bytes: int = 256 * _MiB
    max_initrd_bytes: int = 1 * _GiB
    worker_timeout: float = 120.0
    worker_cpu_seconds: int = 300
    worker_address_space: int = 2 * _GiB
    # services
    max_line_bytes: int = 64 * 1024
    max_pending_bytes: int = 1 * _MiB
    max_egd_receive_buffer: int = 1 * _MiB
    max_egd_connections: int = 4096
    max_domain_xml_bytes: int = 4 * _MiB
    max_handover_state_bytes: int = 64 * _MiB

    def check(self, name: str, value: int, where: str = "") -> int:
        """Return ``value`` if it is within limit ``name``, else raise.

        Args:
            name: a field name of this class.
            value: the value reached or requested.
            where: context for the error message.

        Returns:
            ``value`` unchanged.

        Raises:
            LimitExceeded: ``value`` is greater than the limit.
        """
        maximum = getattr(self, name)
        if value > maximum:
            raise LimitExceeded(name, value, maximum, where)
        return value

    def replace(self, **changes: int | float) -> Limits:
        """Return a copy with some fields changed (validated like :meth:`from_mapping`)."""
        return Limits.from_mapping(changes, base=self)

    @classmethod
    def from_mapping(cls, values: dict[str, int | float], *, base: Limits | None = None) -> Limits:
        """Build Limits from ``{"max_read": 1024, ...}`` (CLI ``--limit name=value``).

        Raises:
            UsageError: unknown field or a non-positive value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in names:
                raise UsageError(f"unknown limit {key!r}; known limits: {', '.join(sorted(names))}")
            if not isinstance(value, (int, float)) or value <= 0:
                raise UsageError(f"limit {key} must be a positive number, got {value!r}")
        return dataclasses.replace(base or cls(), **values)  # type: ignore[arg-type]


DEFAULT_LIMITS = Limits()
