"""GPT partition type GUIDs and their names.

Names are the ones ``sfdisk``/``fdisk`` print, so ``virtkit inspect`` reads
like the tools an operator already knows; a differential test checks every
entry against ``sfdisk --label gpt --list-types``.  The two LUKS/dm-crypt
types are not in sfdisk's list and carry gdisk's names.

GUIDs are written in the canonical upper-case text form.  On disk a GUID is
stored "mixed-endian": the first three fields little-endian, the last two as
bytes (UEFI 2.10 appendix A), which :func:`guid_from_bytes` undoes.

References:
    - UEFI 2.10 §5.3.3 table 5-7 (EFI System, legacy MBR) and appendix A (GUID layout).
    - UAPI Group, Discoverable Partitions Specification (Linux root, /usr, home, srv, var, tmp, verity).
    - util-linux ``sfdisk --label gpt --list-types``; gdisk ``sgdisk -L`` (8308, 8309).
"""

from __future__ import annotations

import uuid

__all__ = ["GPT_TYPE_NAMES", "gpt_type_name", "guid_from_bytes"]

GPT_TYPE_NAMES: dict[str, str] = {
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
    "024DEE41-33E7-11D3-9D69-0008C781F39F": "MBR partition scheme",
    "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
    "9E1A2D38-C612-4316-AA26-8B49521E5A8B": "PowerPC PReP boot",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
    "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3": "Microsoft LDM metadata",
    "AF9B60A0-1431-4F62-BC68-3311714A69AD": "Microsoft LDM data",
    "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery environment",
    "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D": "Microsoft Storage Spaces",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux server data",
    "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
    "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3": "Linux root (ARM)",
    "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM-64)",
    "993D8D3D-F80E-4225-855A-9DAF8ED7EA97": "Linux root (IA-64)",
    "1DE3F1EF-FA98-47B5-8DCD-4A860A654D78": "Linux root (PPC)",
    "912ADE1D-A839-4913-8964-A10EEE08FBD2": "Linux root (PPC64)",
    "C31C45E6-3F39-412E-80FB-4809C4980599": "Linux root (PPC64LE)",
    "72EC70A6-CF74-40E6-BD49-4BDA08E8F224": "Linux root (RISC-V-64)",
    "5EEAD9A9-FE09-4A1E-A1D7-520D00531306": "Linux root (S390X)",
    "8DA63339-0007-60C0-C436-083AC8230908": "Linux reserved",
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
    "4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux variable data",
    "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1": "Linux temporary data",
    "75250D76-8CC6-458E-BD66-BD47CC81A812": "Linux /usr (x86)",
    "8484680C-9521-48C6-9C11-B0720656F69E": "Linux /usr (x86-64)",
    "7D0359A3-02B3-4F0A-865C-654403E70625": "Linux /usr (ARM)",
    "B0E01050-EE5F-4390-949A-9101B17104E9": "Linux /usr (ARM-64)",
    "D13C5D3B-B5D1-422A-B29F-9454FDC89D76": "Linux root verity (x86)",
    "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5": "Linux root verity (x86-64)",
    "DF3300CE-D69F-4C92-978C-9BFB0F38D820": "Linux root verity (ARM-64)",
    "8F461B0D-14EE-4E81-9AA9-049B6FB97ABD": "Linux /usr verity (x86)",
    "77FF5F63-E7B6-4633-ACF4-1565B864C0E6": "Linux /usr verity (x86-64)",
    "6E11A4E7-FBCA-4DED-B9E9-E1A512BB664E": "Linux /usr verity (ARM-64)",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
    "773F91EF-66D4-49B5-BD83-D683BF40AD16": "Linux user's home",
    "CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",  # gdisk 8309
    "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7": "Linux dm-crypt",  # gdisk 8308
    "516E7CB4-6ECF-11D6-8FF8-00022D09712B": "FreeBSD data",
    "83BD6B9D-7F41-11DC-BE0B-001560B84F0F": "FreeBSD boot",
    "516E7CB5-6ECF-11D6-8FF8-00022D09712B": "FreeBSD swap",
    "516E7CB6-6ECF-11D6-8FF8-00022D09712B": "FreeBSD UFS",
    "516E7CBA-6ECF-11D6-8FF8-00022D09712B": "FreeBSD ZFS",
    "516E7CB8-6ECF-11D6-8FF8-00022D09712B": "FreeBSD Vinum",
    "48465300-0000-11AA-AA11-00306543ECAC": "Apple HFS/HFS+",
    "7C3457EF-0000-11AA-AA11-00306543ECAC": "Apple APFS",
    "55465300-0000-11AA-AA11-00306543ECAC": "Apple UFS",
    "52414944-0000-11AA-AA11-00306543ECAC": "Apple RAID",
    "426F6F74-0000-11AA-AA11-00306543ECAC": "Apple boot",
    "6A82CB45-1DD2-11B2-99A6-080020736631": "Solaris boot",
    "6A85CF4D-1DD2-11B2-99A6-080020736631": "Solaris root",
    "6A898CC3-1DD2-11B2-99A6-080020736631": "Solaris /usr & Apple ZFS",
    "6A87C46F-1DD2-11B2-99A6-080020736631": "Solaris swap",
    "FE3A2A5D-4F32-41A7-B725-ACCC3285A309": "ChromeOS kernel",
    "3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC": "ChromeOS root fs",
    "2E0A753D-9E48-43B0-8337-B15192CB1B5E": "ChromeOS reserved",
    "824CC7A0-36A8-11E3-890A-952519AD3F61": "OpenBSD data",
    "49F48D5A-B10E-11DC-B99B-0019D1879648": "NetBSD FFS",
    "49F48D32-B10E-11DC-B99B-0019D1879648": "NetBSD swap",
    "AA31E02A-400F-11DB-9590-000C2911D1B8": "VMware VMFS",
    "9198EFFC-31C0-11DB-8F78-000C2911D1B8": "VMware Reserved",
    "9D275380-40AD-11DB-BF97-000C2911D1B8": "VMware Diagnostic",
    "4FBD7E29-9D25-41B8-AFD0-062C0CEFF05D": "Ceph OSD",
    "45B0969E-9B03-4F30-B4C6-B4B80CEFF106": "Ceph Journal",
}


def guid_from_bytes(raw: bytes) -> str:
    """The canonical upper-case text form of a 16-byte on-disk (mixed-endian) GUID."""
    return str(uuid.UUID(bytes_le=bytes(raw))).upper()


def gpt_type_name(type_guid: str) -> str:
    """A readable name for a partition type GUID ("unknown" if we do not know it)."""
    return GPT_TYPE_NAMES.get(type_guid.upper(), "unknown")
