"""Interpreter behaviour that needs a guest layout the spec files cannot express: device names
(LVM, md, gpt, aliases), btrfs subvolumes, several disks, platform switches, the editor API."""

from __future__ import annotations

import pytest

from virtkit.boot.config.grub2 import Grub2Options, load_grub2_menu, open_grub2_session
from virtkit.boot.config.model import BootEntry, EntryKind
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.errors import FileNotFound, UsageError
from virtkit.limits import Limits

LIMITS = Limits()


def guest(cfg: str, extra: dict[str, dict[str, bytes]] | None = None, infos: list[DeviceInfo] | None = None) -> MemoryFiles:
    trees: dict[str, dict[str, bytes]] = {"hd0": {}, "hd0,msdos1": {"/boot/grub/grub.cfg": cfg.encode(), "/vmlinuz": b"k", "/initrd.img": b"i"}}
    trees.update(extra or {})
    base = [
        DeviceInfo("hd0", fs_type=None),
        DeviceInfo("hd0,msdos1", aliases=("hd0,1",), fs_type="ext4", uuid="1111-aaaa", label="boot"),
    ]
    return MemoryFiles(trees, infos=base + (infos or []))


def menu(cfg: str, **kw: object):  # type: ignore[no-untyped-def]
    opts = kw.pop("options", None)
    files = guest(cfg, **kw)  # type: ignore[arg-type]
    return load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=LIMITS, options=opts)  # type: ignore[arg-type]


def entry(m, i: int = 0) -> BootEntry:  # type: ignore[no-untyped-def]
    e = m.items[i]
    assert isinstance(e, BootEntry)
    return e


LVM = {"lvm/vg--root-lv--root": {"/boot/vmlinuz-lvm": b"k"}}
LVM_INFO = [DeviceInfo("lvm/vg--root-lv--root", aliases=("lvmid/AAAA/BBBB",), fs_type="xfs", uuid="2222-bbbb", label="root")]


@pytest.mark.parametrize(
    ("written", "device", "path"),
    [
        ("(lvm/vg--root-lv--root)/boot/vmlinuz-lvm", "lvm/vg--root-lv--root", "/boot/vmlinuz-lvm"),
        ("(lvmid/AAAA/BBBB)/boot/vmlinuz-lvm", "lvm/vg--root-lv--root", "/boot/vmlinuz-lvm"),
        ("(hd0,msdos1)/vmlinuz", "hd0,msdos1", "/vmlinuz"),
        ("(hd0,1)/vmlinuz", "hd0,msdos1", "/vmlinuz"),
        ("/vmlinuz", "hd0,msdos1", "/vmlinuz"),
        ("($root)/a/../vmlinuz", "hd0,msdos1", "/vmlinuz"),
    ],
)
def test_device_paths(written: str, device: str, path: str) -> None:
    m = menu(f"menuentry x {{ linux {written} ro; }}\n", extra=LVM, infos=LVM_INFO)
    e = entry(m)
    # `written` is the argument as linux got it (after expansion): what GRUB passes as BOOT_IMAGE
    assert e.kernel is not None and (e.kernel.device, e.kernel.path) == (device, path)
    assert e.kernel.written == written.replace("($root)", "(hd0,msdos1)")
    assert not e.notes


def test_unknown_device_and_missing_kernel_are_noted() -> None:
    m = menu("menuentry a { linux (hd7,gpt3)/vmlinuz; }\nmenuentry b { linux /nope; }\n")
    a, b = entry(m, 0), entry(m, 1)
    assert a.kernel is not None and a.kernel.device is None and "disk `hd7,gpt3' not found" in a.notes[0]
    assert b.kind is EntryKind.LINUX and "GRUB would fail to boot this entry" in b.notes[0]


def test_search_across_disks_sets_root_for_the_kernel() -> None:
    cfg = "search --no-floppy --fs-uuid --set=root 2222-BBBB\nmenuentry x { linux /boot/vmlinuz-lvm; }\n"
    e = entry(menu(cfg, extra=LVM, infos=LVM_INFO))
    assert e.kernel is not None and e.kernel.device == "lvm/vg--root-lv--root"


def test_probe_and_label_search() -> None:
    cfg = 'search -l root -s r\nprobe -s fs --fs ($r)\nprobe -s u --fs-uuid $r\necho "$r $fs $u"\n'
    m = menu(cfg, extra=LVM, infos=LVM_INFO)
    assert m.output == ("lvm/vg--root-lv--root xfs 2222-bbbb",)


BTRFS = {"hd0,gpt2": {"/@/.snapshots/4/snapshot/boot/vmlinuz": b"snap", "/boot/vmlinuz": b"top"}}
BTRFS_INFO = [DeviceInfo("hd0,gpt2", aliases=("hd0,2",), fs_type="btrfs", uuid="3333", default_subvolume="@/.snapshots/4/snapshot")]


@pytest.mark.parametrize(
    ("prelude", "forced", "path"),
    [
        ("", None, "/boot/vmlinuz"),  # upstream: from the top-level subvolume
        ("set btrfs_relative_path=y\n", None, "/@/.snapshots/4/snapshot/boot/vmlinuz"),  # openSUSE
        ("set btrfs_relative_path=y\n", False, "/boot/vmlinuz"),
        ("", True, "/@/.snapshots/4/snapshot/boot/vmlinuz"),
    ],
)
def test_btrfs_relative_path(prelude: str, forced: bool | None, path: str) -> None:
    cfg = prelude + "menuentry x { linux (hd0,gpt2)/boot/vmlinuz; }\n"
    m = menu(cfg, extra=BTRFS, infos=BTRFS_INFO, options=Grub2Options(btrfs_relative_path=forced))
    e = entry(m)
    assert e.kernel is not None and e.kernel.path == path and not e.notes


@pytest.mark.parametrize(
    ("platform", "cpu", "hint_result"),
    [("pc", "i386", "hd0,msdos1"), ("efi", "x86_64", "hd0,msdos1"), ("xen", "x86_64", "hd0,msdos1")],
)
def test_platform_variables(platform: str, cpu: str, hint_result: str) -> None:
    cfg = 'echo "$grub_platform $grub_cpu $cmdpath"\nsearch -u 1111-AAAA -s r --hint-efi=hd0,1 --hint-bios=hd0,1\necho $r\n'
    m = menu(cfg, options=Grub2Options(platform=platform))
    cmdpath = "(hd0,msdos1)/boot/grub" if platform == "efi" else "(hd0)"
    assert m.output == (f"{platform} {cpu} {cmdpath}", hint_result)


def test_variable_overrides_are_exported() -> None:
    cfg = "submenu s { menuentry \"[$kernelopts]\" { linux /vmlinuz $kernelopts; } }\n"
    m = menu(cfg, options=Grub2Options(variables={"kernelopts": "root=/dev/xvda1"}))
    sub = m.items[0]
    assert sub.items[0].title == "[root=/dev/xvda1]"  # type: ignore[union-attr]


def test_flavour_auto_switches_on_blscfg() -> None:
    assert menu("menuentry a { linux /vmlinuz; }\n").flavour == "upstream"
    assert menu("blscfg\nmenuentry a { linux /vmlinuz; }\n").flavour == "fedora"
    assert menu("if false; then blscfg; fi\nmenuentry a { linux /vmlinuz; }\n").flavour == "fedora"
    assert menu("eval bls''cfg\nmenuentry a { linux /vmlinuz; }\n").flavour == "fedora"  # seen only when run
    assert menu("blscfg\n", options=Grub2Options(flavour="upstream")).flavour == "upstream"
    with pytest.raises(UsageError):
        menu("", options=Grub2Options(flavour="bogus"))


def test_missing_config() -> None:
    with pytest.raises(FileNotFound):
        load_grub2_menu(guest(""), "hd0,msdos1", "/nope.cfg", limits=LIMITS)


def test_no_entries_means_no_default() -> None:
    m = menu("set default=0\necho hi\n")
    assert m.items == () and m.default is None and "no menu entries" in m.default_trail[0]


def test_editor_reruns_in_the_entry_context() -> None:
    cfg = "set opts=from-config\nsubmenu s { set inner=1\n menuentry e { linux /vmlinuz $opts; } }\n"
    files = guest(cfg)
    sess = open_grub2_session(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=LIMITS)
    first = sess.evaluate_entry_body((0, 0), "linux /vmlinuz [$opts] [$inner] $1\n")
    assert first.cmdline == "[] [1] e"  # opts is not exported into the submenu; $1 is the title
    with pytest.raises(UsageError):
        sess.evaluate_entry_body((0,), "linux /k\n")
    again = sess.evaluate_entry_body((0, 0), "linux /initrd.img x\n")
    assert again.kernel is not None and again.kernel.path == "/initrd.img" and again.body == "linux /initrd.img x\n"


def test_entry_bodies_are_isolated_from_each_other() -> None:
    cfg = "menuentry a { set root=hd0,msdos1; set leak=1; linux /vmlinuz; }\nmenuentry b { linux /vmlinuz [$leak]; }\n"
    assert entry(menu(cfg), 1).cmdline == "[]"


def test_reboot_entry_and_configfile_entry() -> None:
    cfg = "menuentry r { reboot; }\nmenuentry c { configfile /boot/grub/other.cfg; }\n"
    extra = {"hd0,msdos1": {"/boot/grub/grub.cfg": cfg.encode(), "/boot/grub/other.cfg": b"menuentry o { linux /vmlinuz; }\n", "/vmlinuz": b"k"}}
    m = menu(cfg, extra=extra)
    assert entry(m, 0).kind is EntryKind.OTHER and "reboot" in entry(m, 0).notes[0]
    assert entry(m, 1).kind is EntryKind.OTHER and "configfile /boot/grub/other.cfg" in entry(m, 1).notes[0]


def test_warnings_name_unknown_commands_with_locations() -> None:
    m = menu("\nfrobnicate --now\nmenuentry a { linux /vmlinuz; }\n")
    assert "(hd0,msdos1)/boot/grub/grub.cfg:2:1: GRUB error: can't find command `frobnicate'" in m.warnings
    assert m.output == ("error: can't find command `frobnicate'.",)


def test_superusers_notes_restricted_entries() -> None:
    m = menu('set superusers="root"\nmenuentry a { linux /vmlinuz; }\nmenuentry b --unrestricted { linux /vmlinuz; }\n')
    assert any("password" in n for n in entry(m, 0).notes) and not any("password" in n for n in entry(m, 1).notes)


def test_glob_after_regexp_module() -> None:
    cfg = "insmod regexp\nfor k in /vmlin* /nomatch*; do echo $k; done\n"
    assert menu(cfg).output == ("/vmlinuz", "/nomatch*")
    assert menu("for k in /vmlin*; do echo $k; done\n").output == ("/vmlin*",)
