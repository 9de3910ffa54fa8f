"""Peer identity (SO_PEERCRED -> pid -> QEMU -name) and QEMU command-line parsing, on real sockets and fake /proc trees."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from virtkit.entropy.identity import (
    MAX_GUEST_NAME,
    check_guest_name,
    display_name,
    guest_for_pid,
    identify_peer,
    peer_credentials,
)
from virtkit.entropy.qemuargs import (
    QemuCommandLine,
    is_qemu,
    iter_options,
    parse_cpu,
    parse_keyvals,
    parse_option_value,
)
from virtkit.errors import UsageError
from virtkit.limits import Limits

LIBVIRT_ARGV = [
    "/usr/bin/qemu-system-x86_64",
    "-name", "guest=web01,debug-threads=on",
    "-S",
    "-object", '{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/lib/libvirt/qemu/x/master-key.aes"}',
    "-machine", "pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
    "-accel", "kvm",
    "-cpu", "Haswell-noTSX,vme=on,ss=on,-rdrand",
    "-chardev", "socket,id=charrng0,path=/run/virtkit/entropy/guests/web01.sock,reconnect=1",
    "-object", '{"qom-type":"rng-egd","id":"objrng0","chardev":"charrng0"}',
    "-device", '{"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0","bus":"pci.6","addr":"0x0"}',
    "-device", "vmgenid,guid=1f0d3a44-1b2c-4d5e-8f90-123456789abc,id=vmgenid0",
    "-msg", "timestamp=on",
]


@pytest.mark.parametrize(
    ("text", "implied", "expected"),
    [
        ("a=1,b=2", None, {"a": "1", "b": "2"}),
        ("virtio-rng-pci,rng=r0", "driver", {"driver": "virtio-rng-pci", "rng": "r0"}),
        ("socket,id=c,path=/tmp/a,,b.sock,server=on,wait=off", "backend",
         {"backend": "socket", "id": "c", "path": "/tmp/a,b.sock", "server": "on", "wait": "off"}),
        ("guest=x,,y", "guest", {"guest": "x,y"}),
        ("web01", "guest", {"guest": "web01"}),
        ("a=1,,,b=2", None, {"a": "1,", "b": "2"}),
        ("a=1,server", None, {"a": "1", "server": ""}),
        ("", None, {}),
        ("a=1,a=2", None, {"a": "1"}),
    ],
)
def test_parse_keyvals(text: str, implied: str | None, expected: dict[str, str]) -> None:
    assert parse_keyvals(text, implied) == expected


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("-object", '{"qom-type":"rng-random","id":"r","filename":"/dev/random"}',
         {"qom-type": "rng-random", "id": "r", "filename": "/dev/random"}),
        ("-device", '{"driver":"virtio-rng-pci","max-bytes":1024,"period":1000,"x":true}',
         {"driver": "virtio-rng-pci", "max-bytes": "1024", "period": "1000", "x": "on"}),
        ("-object", "{not json", {}),
        ("-object", "[1,2]", {"qom-type": "[1", "2]": ""}),  # only "{" starts JSON, as in QEMU
        ("-object", "rng-builtin,id=b", {"qom-type": "rng-builtin", "id": "b"}),
    ],
)
def test_parse_option_value(option: str, value: str, expected: dict[str, str]) -> None:
    assert parse_option_value(option, value) == expected


def test_iter_options() -> None:
    argv = ["qemu-system-x86_64", "--name", "a", "-nographic", "disk.img", "-m", "256", "--cpu=max", "-S"]
    assert list(iter_options(argv)) == [("-name", "a"), ("-nographic", ""), ("-m", "256"), ("-cpu", "max"), ("-S", "")]


@pytest.mark.parametrize(
    ("value", "model", "on", "off"),
    [
        ("qemu64", "qemu64", set(), set()),
        ("qemu64,+rdrand", "qemu64", {"rdrand"}, set()),
        ("Haswell,-rdrand,rdrand=on", "Haswell", {"rdrand"}, set()),
        ("EPYC,rdrand=off,vmx", "EPYC", {"vmx"}, {"rdrand"}),
        ("", "", set(), set()),
    ],
)
def test_parse_cpu(value: str, model: str, on: set[str], off: set[str]) -> None:
    spec = parse_cpu(value)
    assert (spec.model, set(spec.enabled), set(spec.disabled)) == (model, on, off)


def test_libvirt_style_command_line() -> None:
    cmd = QemuCommandLine.parse(LIBVIRT_ARGV)
    assert cmd.name == "web01"
    assert cmd.accel == "kvm"
    assert cmd.objects["objrng0"] == {"qom-type": "rng-egd", "id": "objrng0", "chardev": "charrng0"}
    assert cmd.chardevs["charrng0"]["reconnect"] == "1"
    assert [d["driver"] for d in cmd.devices] == ["virtio-rng-pci", "vmgenid"]
    assert cmd.cpu is not None and cmd.cpu.disabled == frozenset({"rdrand"})


@pytest.mark.parametrize(
    ("argv0", "yes"),
    [("/usr/bin/qemu-system-x86_64", True), ("qemu-system-aarch64", True), ("/usr/libexec/qemu-kvm", True),
     ("kvm", True), ("/usr/bin/python3", False), ("qemu-img", False), ("", False)],
)
def test_is_qemu(argv0: str, yes: bool) -> None:
    assert is_qemu([argv0] if argv0 else []) is yes


def test_proc_bytes_with_undecodable_names() -> None:
    raw = b"qemu-system-x86_64\0-name\0guest=caf\xe9\0"
    cmd = QemuCommandLine.from_proc_bytes(raw)
    assert cmd.name == "caf\udce9"
    assert display_name(cmd.name) == "caf\\xe9"  # the raw byte, escaped


def make_proc(tmp_path: Path, pid: int, argv: list[str] | None) -> str:
    root = tmp_path / "proc"
    (root / str(pid)).mkdir(parents=True)
    if argv is not None:
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return str(root)


def test_peer_credentials_on_a_real_socketpair() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        creds = peer_credentials(a)
        assert creds is not None
        assert (creds.pid, creds.uid, creds.gid) == (os.getpid(), os.getuid(), os.getgid())


@pytest.mark.parametrize(
    ("argv", "guest", "how"),
    [
        (LIBVIRT_ARGV, "web01", "cmdline"),
        (["qemu-system-x86_64", "-name", "plain-name"], "plain-name", "cmdline"),
        (["qemu-system-x86_64", "-m", "256"], None, "pid"),  # a QEMU without -name
        (["/usr/bin/python3", "-name", "guest=fake"], None, "pid"),  # not QEMU: -name means nothing
        (None, None, "pid"),  # no cmdline file: uid account
    ],
)
def test_identify_peer_via_fake_proc(tmp_path: Path, argv: list[str] | None, guest: str | None, how: str) -> None:
    proc = make_proc(tmp_path, os.getpid(), argv)
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        ident = identify_peer(a, proc_root=proc)
    assert ident.how == how
    assert ident.pid == os.getpid()
    if guest is not None:
        assert ident.guest == guest
    elif argv is None:
        assert ident.guest == f"uid:{os.getuid()}"
    else:
        assert ident.guest == f"pid:{os.getpid()}"


def test_per_guest_socket_wins_and_a_mismatch_is_noted(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, os.getpid(), LIBVIRT_ARGV)
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        ident = identify_peer(a, socket_guest="db02", proc_root=proc)
    assert (ident.guest, ident.how) == ("db02", "socket")
    assert ident.note is not None and "calls itself 'web01'" in ident.note


def test_tcp_peers_are_accounted_by_address() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    with srv, socket.create_connection(srv.getsockname()) as c:
        conn, _ = srv.accept()
        with conn:
            ident = identify_peer(conn)
    del c
    assert (ident.guest, ident.how, ident.pid) == ("tcp:127.0.0.1", "tcp", None)


def test_cmdline_read_is_bounded(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, 4242, ["qemu-system-x86_64", "-m", "1" * 500, "-name", "guest=late"])
    assert guest_for_pid(4242, proc_root=proc) == "late"
    assert guest_for_pid(4242, proc_root=proc, limits=Limits(max_domain_xml_bytes=100)) is None
    assert guest_for_pid(999999, proc_root=proc) is None


@pytest.mark.parametrize("name", ["web01", "db-02.example", "vm with spaces", "ünïcode", "a" * MAX_GUEST_NAME])
def test_guest_names_accepted(name: str) -> None:
    assert check_guest_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "..", "a/b", "tab\there", "nul\0", "del\x7f", "a" * (MAX_GUEST_NAME + 1)])
def test_guest_names_refused(name: str) -> None:
    with pytest.raises(UsageError, match="guest name"):
        check_guest_name(name)


def test_display_name_escapes_and_truncates() -> None:
    assert display_name("evil\x1b[2J") == "evil\\x1b[2J"
    assert len(display_name("x" * 500)) == 128
