"""``virtkit entropy audit``: findings per domain XML and per QEMU command line, fixes, output, differential checks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import DATA, assert_golden, require_tool
from virtkit.cli.main import main
from virtkit.entropy.audit import RDRAND_FAMILIES, AuditOptions, audit_guest, cpu_has_rdrand, fix_for
from virtkit.entropy.domains import (
    GuestConfig,
    from_domain_xml,
    from_qemu_cmdline,
    iter_qemu_processes,
    load_xml_file,
)
from virtkit.entropy.qemuargs import QemuCommandLine
from virtkit.errors import UsageError
from virtkit.limits import Limits

DOMAINS = DATA / "entropy" / "domains"
BAD = DATA / "entropy" / "bad-domains"

# file -> {finding code: severity}; the host is assumed to have RDRAND
XML_CASES = {
    "no-rng": {"no-rng": "warning", "cpu-no-rdrand": "warning", "no-genid": "info"},
    "random-dev-random": {"random-dev-random": "warning", "rate-below-floor": "warning"},
    "random-hwrng": {"random-hwrng": "error", "cpu-no-rdrand": "warning"},
    "egd-no-reconnect": {"egd-no-reconnect": "error", "cpu-no-rdrand": "warning"},
    "egd-reconnect-misplaced": {"egd-reconnect-ignored": "error"},
    "egd-tcp-reconnect-off": {"egd-no-reconnect": "error"},
    "egd-accounted": {},
    "builtin-good": {},
    "unknown-cpu": {"cpu-rdrand-unknown": "info"},
    "xen-pv": {"no-rng": "info"},
    "arm64": {},
}


def codes(guest: GuestConfig, **kw: object) -> dict[str, str]:
    opts = AuditOptions(host_rdrand=True, **kw)  # type: ignore[arg-type]
    return {f.code: f.severity for f in audit_guest(guest, opts).findings}


@pytest.mark.parametrize(("name", "expected"), XML_CASES.items(), ids=list(XML_CASES))
def test_domain_xml_findings(name: str, expected: dict[str, str]) -> None:
    guest = load_xml_file(str(DOMAINS / f"{name}.xml"))
    assert guest.name == name
    assert codes(guest) == expected


def test_every_fixture_has_a_case() -> None:
    assert {p.stem for p in DOMAINS.glob("*.xml")} == set(XML_CASES)


def test_accounting_flags_sockets_that_are_not_ours() -> None:
    assert codes(load_xml_file(str(DOMAINS / "egd-accounted.xml")), accounting=True) == {}
    got = codes(load_xml_file(str(DOMAINS / "egd-no-reconnect.xml")), accounting=True)
    assert got["egd-not-accounted"] == "info"


def test_host_model_depends_on_the_host() -> None:
    guest = load_xml_file(str(DOMAINS / "random-dev-random.xml"))
    assert "cpu-no-rdrand" not in codes(guest)
    assert audit_guest(guest, AuditOptions(host_rdrand=False)).findings[0].code == "cpu-no-rdrand"
    assert any(f.code == "cpu-rdrand-unknown" for f in audit_guest(guest, AuditOptions(host_rdrand=None)).findings)


def test_rate_floor_is_configurable() -> None:
    guest = load_xml_file(str(DOMAINS / "egd-tcp-reconnect-off.xml"))  # 4096 bytes/s
    assert "rate-below-floor" not in codes(guest)
    assert codes(guest, rate_floor=8192)["rate-below-floor"] == "warning"


def test_old_libvirt_gets_urandom_instead_of_builtin() -> None:
    guest = load_xml_file(str(DOMAINS / "no-rng.xml"))
    guest.versions = {"libvirt": (5, 10, 0), "qemu": (4, 1, 0)}
    report = audit_guest(guest, AuditOptions(host_rdrand=True))
    assert "builtin-unsupported" in {f.code for f in report.findings}
    assert "<backend model='random'>/dev/urandom</backend>" in (fix_for(report) or "")


@pytest.mark.parametrize(
    ("name", "problem"),
    [("not-a-domain", "root element is <network>"), ("truncated", "not well-formed XML"),
     ("entities", "DTD or entities is not accepted")],
)
def test_bad_xml_is_refused(name: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        load_xml_file(str(BAD / f"{name}.xml"))


def test_xml_size_limit() -> None:
    with pytest.raises(UsageError, match="max_domain_xml_bytes limit of 100"):
        load_xml_file(str(DOMAINS / "no-rng.xml"), limits=Limits(max_domain_xml_bytes=100))


# -- QEMU command lines ---------------------------------------------------------------------------

QEMU_CASES = [
    ("libvirt-egd", ["/usr/bin/qemu-system-x86_64", "-name", "guest=web01,debug-threads=on", "-accel", "kvm",
                     "-cpu", "Haswell-noTSX,-rdrand",
                     "-chardev", "socket,id=charrng0,path=/run/virtkit/entropy/guests/web01.sock,reconnect=1",
                     "-object", '{"qom-type":"rng-egd","id":"objrng0","chardev":"charrng0"}',
                     "-device", '{"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0"}',
                     "-device", "vmgenid,id=vmgenid0"],
     {"cpu-no-rdrand": "warning"}),
    ("old-random", ["qemu-system-x86_64", "-name", "guest=old", "-object", "rng-random,id=r,filename=/dev/random",
                    "-device", "virtio-rng-pci,rng=r,max-bytes=64,period=1000"],
     {"random-dev-random": "warning", "rate-below-floor": "warning", "cpu-no-rdrand": "warning", "no-genid": "info"}),
    ("implicit-builtin", ["qemu-system-x86_64", "-name", "b", "-cpu", "host", "-device", "virtio-rng-pci",
                          "-device", "vmgenid"], {}),
    ("egd-no-reconnect", ["qemu-system-x86_64", "-name", "e", "-cpu", "max", "-device", "vmgenid",
                          "-chardev", "socket,id=c,host=127.0.0.1,port=8888",
                          "-object", "rng-egd,id=r,chardev=c", "-device", "virtio-rng-pci,rng=r"],
     {"egd-no-reconnect": "error"}),
    ("egd-server-mode", ["qemu-system-x86_64", "-name", "s", "-cpu", "EPYC", "-device", "vmgenid",
                         "-chardev", "socket,id=c,path=/tmp/x.sock,server=on,wait=off",
                         "-object", "rng-egd,id=r,chardev=c", "-device", "virtio-rng-pci,rng=r"], {}),
    ("hwrng-default-period", ["qemu-system-x86_64", "-name", "h", "-cpu", "qemu64,+rdrand", "-device", "vmgenid",
                              "-object", "rng-random,id=r,filename=/dev/hwrng",
                              "-device", "virtio-rng-pci,rng=r,max-bytes=1024"],
     {"random-hwrng": "error", "rate-below-floor": "warning"}),  # QEMU's default period is 65536 ms
    ("no-rng", ["qemu-system-x86_64", "-name", "n", "-cpu", "IvyBridge", "-device", "vmgenid"],
     {"no-rng": "warning"}),
]


@pytest.mark.parametrize(("label", "argv", "expected"), QEMU_CASES, ids=[c[0] for c in QEMU_CASES])
def test_qemu_command_line_findings(label: str, argv: list[str], expected: dict[str, str]) -> None:
    guest = from_qemu_cmdline(QemuCommandLine.parse(argv), f"test {label}")
    assert codes(guest) == expected


def make_proc(tmp_path: Path, processes: dict[int, list[str] | bytes]) -> str:
    root = tmp_path / "proc"
    for pid, argv in processes.items():
        (root / str(pid)).mkdir(parents=True)
        raw = argv if isinstance(argv, bytes) else b"\0".join(a.encode() for a in argv) + b"\0"
        (root / str(pid) / "cmdline").write_bytes(raw)
    (root / "self").mkdir(parents=True)
    (root / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu vme sse2 rdrand\n")
    return str(root)


def test_processes_are_found_in_a_fake_proc_tree(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {
        100: QEMU_CASES[0][1],
        200: ["/usr/sbin/sshd", "-D"],
        300: QEMU_CASES[1][1],
        400: b"",  # a kernel thread
        500: b"qemu-system-x86_64\0-m\0" + b"9" * 5000,
    })
    items = list(iter_qemu_processes(proc, limits=Limits(max_domain_xml_bytes=4096)))
    names = [getattr(i, "name", None) for i in items]
    assert names == ["web01", "old", None]
    assert items[2].origin == "pid 500"  # type: ignore[union-attr]
    assert "max_domain_xml_bytes" in items[2].problem  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mode", "model", "on", "off", "host", "expected"),
    [
        (None, None, (), (), True, False),  # QEMU default qemu64
        ("custom", "Skylake-Server-v4", (), (), False, True),
        ("custom", "Westmere-IBRS", (), (), True, False),
        ("custom", "Westmere", ("rdrand",), (), True, True),
        ("custom", "EPYC", (), ("rdrand",), True, False),
        ("host-passthrough", None, (), (), False, False),
        ("host-model", None, (), (), True, True),
        ("maximum", None, (), (), None, True),
        ("custom", "Mystery", (), (), True, None),
    ],
)
def test_cpu_rdrand_table(mode: str | None, model: str | None, on: tuple[str, ...], off: tuple[str, ...],
                          host: bool | None, expected: bool | None) -> None:
    g = GuestConfig("g", "t", "libvirt", cpu_mode=mode, cpu_model=model, cpu_on=frozenset(on), cpu_off=frozenset(off))
    assert cpu_has_rdrand(g, host) is expected


# -- the command ------------------------------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["entropy", "audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_human_output_with_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {})
    code, out, _ = run_cli([str(DOMAINS), "--fix", "--proc", proc], capsys)
    assert code == 10
    assert_golden(out.replace(str(DOMAINS), "DOMAINS"), "entropy/audit-fix.txt")


def test_cli_accounting_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {})
    code, out, _ = run_cli([str(DOMAINS / "no-rng.xml"), str(DOMAINS / "egd-no-reconnect.xml"), "--fix",
                            "--accounting", "--guest-dir", "/run/vk/g", "--proc", proc], capsys)
    assert code == 10
    assert_golden(out.replace(str(DOMAINS), "DOMAINS"), "entropy/audit-fix-accounting.txt")


def test_cli_json_and_processes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {10: QEMU_CASES[1][1], 11: QEMU_CASES[2][1]})
    code, out, _ = run_cli(["--processes", "--json", "--proc", proc], capsys)
    assert code == 10
    doc = json.loads(out)
    assert doc["summary"] == {"guests": 2, "error": 0, "warning": 3, "info": 1}
    old = doc["guests"][0]
    assert old["name"] == "old" and old["origin"] == "pid 10" and old["kind"] == "qemu"
    assert old["rng"] == [{"backend": "random", "path": "/dev/random", "reconnect": None, "rate": 64.0}]
    assert old["fix"].splitlines() == [
        "-object rng-builtin,id=rng0",
        "-device virtio-rng-pci,rng=rng0,max-bytes=1024,period=1000",
        "-device vmgenid",
        "-cpu host   (or: -cpu qemu64,+rdrand where the host has it)",
    ]
    assert doc["guests"][1]["findings"] == [] and doc["guests"][1]["fix"] is None


def test_cli_clean_guests_exit_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {})
    code, out, _ = run_cli([str(DOMAINS / "builtin-good.xml"), str(DOMAINS / "egd-accounted.xml"), "--proc", proc],
                           capsys)
    assert code == 0
    assert out.endswith("2 guests: 0 errors, 0 warnings, 0 notes\n")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "nothing to audit"),
        (["--connect", "test:///default"], None, None),  # libvirt-python present or not: see below
    ],
)
def test_cli_usage(args: list[str], code: int | None, message: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    if code is None:
        try:
            import libvirt  # noqa: F401
        except ImportError:
            got, _, err = run_cli(args, capsys)
            assert got == 9 and "--connect needs libvirt-python" in err
            return
        got, out, _ = run_cli(args, capsys)  # the test driver has one domain, "test"
        assert "test  (libvirt test:///default)" in out
        return
    got, _, err = run_cli(args, capsys)
    assert got == code and message in err


def test_cli_unreadable_inputs_are_reported_not_fatal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {})
    code, out, _ = run_cli([str(BAD), str(DOMAINS / "builtin-good.xml"), "--proc", proc], capsys)
    assert code == 10
    assert out.count("could not be read") == 3
    assert "1 guest: 0 errors, 0 warnings, 0 notes, 3 unreadable inputs" in out


# -- differential ---------------------------------------------------------------------------------

VIRT_INSTALL_CASES = [
    (["--rng", "/dev/random"], {"random-dev-random": "warning"}),
    (["--rng", "/dev/hwrng"], {"random-hwrng": "error"}),
    (["--rng", "egd,backend.type=unix,backend.source.mode=connect,backend.source.path=/run/x.sock"],
     {"egd-no-reconnect": "error"}),
    (["--rng", "egd,backend.type=tcp,backend.source.mode=connect,backend.source.host=127.0.0.1,"
               "backend.source.service=8888,rate.bytes=100,rate.period=1000"],
     {"egd-no-reconnect": "error", "rate-below-floor": "warning"}),
    (["--rng", "builtin"], {}),
    (["--rng", "none"], {"no-rng": "warning"}),
]


@pytest.mark.differential
@pytest.mark.parametrize(("extra", "expected"), VIRT_INSTALL_CASES, ids=[c[0][1][:40] for c in VIRT_INSTALL_CASES])
def test_against_virt_install_xml(extra: list[str], expected: dict[str, str]) -> None:
    """XML made by virt-install (virtinst) is read the way libvirt would read it."""
    require_tool("virt-install")
    xml = subprocess.run(
        ["virt-install", "--connect", "test:///default", "--print-xml", "--name", "vi", "--memory", "256",
         "--disk", "none", "--boot", "kernel=/vmlinuz", "--osinfo", "detect=off,require=off",
         "--cpu", "host-passthrough", *extra],
        check=True, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": "/tmp"},
    ).stdout
    guest = from_domain_xml(xml, "virt-install")
    assert guest.name == "vi"
    got = {k: v for k, v in codes(guest).items() if k != "no-genid"}  # virt-install adds <genid/> only sometimes
    assert got == expected


@pytest.mark.differential
def test_rdrand_table_against_qemu_model_definitions() -> None:
    """Every x86 model QEMU knows: does our table agree with QEMU's own expansion of the model?"""
    require_tool("qemu-system-x86_64")
    listing = subprocess.run(["qemu-system-x86_64", "-cpu", "help"], capture_output=True, text=True, check=True,
                             timeout=60).stdout
    models = [line.split()[1] for line in listing.splitlines() if line.startswith("x86 ")]
    models = [m for m in models if m not in ("host", "max", "base")]
    requests = ['{"execute":"qmp_capabilities"}']
    requests += [json.dumps({"execute": "query-cpu-model-expansion",
                             "arguments": {"type": "static", "model": {"name": m}}}) for m in models]
    requests.append('{"execute":"quit"}')
    out = subprocess.run(["qemu-system-x86_64", "-machine", "none", "-accel", "tcg", "-display", "none", "-qmp",
                          "stdio"], input="\n".join(requests) + "\n", capture_output=True, text=True, timeout=120).stdout
    answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    expansions = [a["return"]["model"]["props"] for a in answers
                  if isinstance(a.get("return"), dict) and "model" in a["return"]]
    assert len(expansions) == len(models)
    disagree = []
    for model, props in zip(models, expansions):
        ours = RDRAND_FAMILIES.get(model.split("-", 1)[0])
        if ours is not bool(props.get("rdrand")):
            disagree.append((model, ours, props.get("rdrand")))
    assert disagree == []


@pytest.mark.differential
def test_live_libvirt_through_libvirt_python(tmp_path: Path) -> None:
    """--connect against libvirt's built-in test driver, with the real libvirt-python.

    Debian's python3-libvirt (installed with virtinst) lives in the system Python, so the
    audit runs there with this source tree on its path.
    """
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import libvirt"], capture_output=True) if os.path.exists(
        system_python) else None
    if probe is None or probe.returncode != 0:
        pytest.skip("libvirt-python is not importable by /usr/bin/python3 (apt install python3-libvirt)")
    src = str(Path(__file__).resolve().parents[3] / "src")
    done = subprocess.run([system_python, "-m", "virtkit.cli.main", "entropy", "audit", "--connect", "test:///default",
                           "--json", "--proc", make_proc(tmp_path, {})],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": src})
    assert done.returncode == 10, done.stderr
    doc = json.loads(done.stdout)
    assert [g["name"] for g in doc["guests"]] == ["test"]  # the test driver's one domain
    assert {f["code"] for f in doc["guests"][0]["findings"]} == {"no-rng", "cpu-no-rdrand", "no-genid"}
    assert doc["guests"][0]["origin"] == "libvirt test:///default"


# -- arbitrary input ---------------------------------------------------------------------------------

SEED_XML = (DOMAINS / "egd-tcp-reconnect-off.xml").read_bytes()


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, len(SEED_XML)), st.binary(max_size=8)), max_size=6))
def test_mutated_domain_xml_gives_a_config_or_a_usage_error(cuts: list[tuple[int, bytes]]) -> None:
    data = bytearray(SEED_XML)
    for pos, junk in cuts:
        data[pos : pos + len(junk)] = junk
    try:
        guest = from_domain_xml(bytes(data), "fuzz")
    except UsageError:
        return
    audit_guest(guest)
    fix_for(audit_guest(guest))


@settings(max_examples=200, deadline=None)
@given(argv=st.lists(st.one_of(st.sampled_from(["-object", "-device", "-chardev", "-cpu", "-name", "-machine",
                                                "-accel", "rng-egd,id=r,chardev=c", '{"qom-type":', "virtio-rng-pci",
                                                "socket,id=c,reconnect=x", ",,", "="]), st.text(max_size=12)),
                     max_size=14))
def test_arbitrary_qemu_command_lines_never_raise(argv: list[str]) -> None:
    guest = from_qemu_cmdline(QemuCommandLine.parse(["qemu-system-x86_64", *argv]), "fuzz")
    fix_for(audit_guest(guest))
