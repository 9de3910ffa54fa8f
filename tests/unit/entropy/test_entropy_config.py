"""``virtkit entropy config`` (entropy.md F2): the generated RNG set-up is what the audit recommends,
and real QEMU accepts it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import require_tool, run_cli
from virtkit.entropy.audit import AuditOptions, audit_guest, generate_config
from virtkit.entropy.domains import from_domain_xml, from_qemu_cmdline
from virtkit.entropy.qemuargs import QemuCommandLine

GUEST_DIR = "/run/virtkit/entropy/guests"
VARIANTS = [
    {"accounting": False},
    {"accounting": True},
    {"accounting": False, "rate": (4096, 500)},
    {"accounting": True, "rate": (2048, 1000)},
    {"accounting": False, "builtin": False},
]


def _domain(generated: str) -> str:
    rng = "\n".join(x for x in generated.splitlines() if not x.startswith("<genid"))
    genid = "<genid/>" if "<genid/>" in generated else ""
    return (f"<domain type='kvm'><name>vm1</name>{genid}<cpu mode='host-passthrough'/>"
            f"<devices>{rng}</devices></domain>")


@pytest.mark.parametrize("kw", VARIANTS, ids=[str(v) for v in VARIANTS])
def test_generated_libvirt_xml_passes_the_audit(kw: dict[str, object]) -> None:
    text = generate_config("vm1", kind="libvirt", guest_dir=GUEST_DIR, **kw)  # type: ignore[arg-type]
    guest = from_domain_xml(_domain(text), "generated")
    findings = {f.code: f.severity for f in audit_guest(guest, AuditOptions(host_rdrand=True,
                                                                            accounting=bool(kw["accounting"]))).findings}
    assert findings == {}, (text, findings)
    (rng,) = guest.rngs
    if kw["accounting"]:
        assert rng.backend == "egd" and rng.path == f"{GUEST_DIR}/vm1.sock"
    else:
        assert rng.backend == ("builtin" if kw.get("builtin", True) else "random")
    if "rate" in kw:
        assert (rng.rate_bytes, rng.rate_period_ms) == kw["rate"]


@pytest.mark.parametrize("kw", VARIANTS, ids=[str(v) for v in VARIANTS])
def test_generated_qemu_arguments_pass_the_audit(kw: dict[str, object]) -> None:
    text = generate_config("vm1", kind="qemu", guest_dir=GUEST_DIR, **kw)  # type: ignore[arg-type]
    argv = ["qemu-system-x86_64", "-name", "guest=vm1", "-cpu", "host"]
    for line in text.splitlines():
        opt, value = line.split(" ", 1)
        argv += [opt, value]
    guest = from_qemu_cmdline(QemuCommandLine.parse(argv), "generated")
    findings = {f.code: f.severity for f in audit_guest(guest, AuditOptions(host_rdrand=True,
                                                                            accounting=bool(kw["accounting"]))).findings}
    assert findings == {}, (text, findings)


def test_no_genid_and_bad_names() -> None:
    assert "genid" not in generate_config("vm1", kind="libvirt", genid=False)
    assert "vmgenid" not in generate_config("vm1", kind="qemu", genid=False)
    for bad in ("", "a/b", ".."):
        with pytest.raises(ValueError):
            generate_config(bad, kind="libvirt")


@pytest.mark.parametrize(("argv", "status", "out"), [
    (["entropy", "config", "vm1"], 0, "<rng model='virtio'>\n  <backend model='builtin'/>\n</rng>\n<genid/>"),
    (["entropy", "config", "vm1", "--qemu", "--rate", "4096/500"], 0,
     "-object rng-builtin,id=rng0\n-device virtio-rng-pci,rng=rng0,max-bytes=4096,period=500\n-device vmgenid\n"),
    (["entropy", "config", "vm1", "--accounting", "--guest-dir", "/srv/g", "--no-genid"], 0,
     "    <source mode='connect' path='/srv/g/vm1.sock'>"),
    (["entropy", "config", "vm1", "--no-builtin", "--qemu"], 0, "-object rng-random,id=rng0,filename=/dev/urandom"),
    (["entropy", "config", "vm1", "--rate", "lots"], 2, ""),
    (["entropy", "config", "a/b"], 2, ""),
])
def test_cli(argv: list[str], status: int, out: str, capfd: pytest.CaptureFixture[str]) -> None:
    got_status, got_out, got_err = run_cli(argv, capfd)
    assert got_status == status
    assert out in got_out
    if status:
        assert got_err.count("\n") == 1 and "error:" in got_err




@pytest.mark.parametrize("accounting", [False, True], ids=["builtin", "egd"])
def test_real_qemu_accepts_the_generated_arguments(accounting: bool, tmp_path: Path) -> None:
    require_tool("qemu-system-x86_64")
    listener = None
    if accounting:  # a per-guest socket like the service's, so the chardev connects at once
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(tmp_path / "vm1.sock"))
        listener.listen(1)
    text = generate_config("vm1", kind="qemu", accounting=accounting, guest_dir=str(tmp_path), rate=(1024, 1000))
    args = [w for line in text.splitlines() for w in line.split(" ", 1)]
    proc = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-S", "-nodefaults", "-display", "none",
                             "-machine", "q35", "-m", "64", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""  # still running: arguments accepted
        if listener is not None:
            listener.settimeout(5)
            conn, _ = listener.accept()  # QEMU connected to the guest's EGD socket
            conn.close()
    finally:
        proc.kill()
        proc.wait()
        if listener is not None:
            listener.close()
