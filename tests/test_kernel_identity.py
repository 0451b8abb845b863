"""The virtual kernel: uname, hostname and the PID namespace, compared with runc."""
from __future__ import annotations

from conftest import probe_lines

GVISOR_VERSION = "#1 SMP Sun Jan 10 15:06:54 PST 2016"


def test_uname_is_the_sentrys(runsc, make_bundle):
    r = runsc.run(make_bundle("sh", "-c", "uname -r; uname -v; uname -s; uname -m"))
    assert r.stdout.splitlines() == ["4.4.0", GVISOR_VERSION, "Linux", "x86_64"], r.stderr


def test_proc_version_agrees_with_uname(runsc, make_bundle):
    r = runsc.run(make_bundle("cat", "/proc/version"))
    assert r.stdout.startswith(f"Linux version 4.4.0 {GVISOR_VERSION}"), r.stdout + r.stderr


def test_hostname_is_the_specs(runsc, make_bundle):
    bundle = make_bundle("hostname", hostname="sandbox-host")
    assert runsc.run(bundle).stdout.strip() == "sandbox-host"


def test_hostname_matches_runc(runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", "hostname; uname -n", hostname="same-name")
    assert runsc.run(bundle).stdout == runc(bundle).stdout == "same-name\nsame-name\n"


def _ps(out: str) -> list[tuple[str, str]]:
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    return [(row[0], row[-1]) for row in rows]


def test_ps_lists_only_the_container(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "sleep 30 & sleep 30 & ps; kill %1 %2")
    rows = _ps(runsc.run(bundle).stdout)
    pids = [int(pid) for pid, _ in rows]
    assert 1 in pids
    assert len(rows) == 4, rows  # sh, two sleeps, ps
    assert all(pid < 10 for pid in pids), rows
    assert rows[0][1].startswith("sh -c")


def test_ps_with_the_host_pid_namespace_is_still_private(runsc, make_bundle):
    bundle = make_bundle("ps")
    bundle.spec["linux"]["namespaces"] = [
        ns for ns in bundle.spec["linux"]["namespaces"] if ns["type"] != "pid"]
    bundle.write()
    rows = _ps(runsc.run(bundle).stdout)
    assert rows == [("1", "ps")], rows


def test_getpid_matches_runc(runsc, runc, make_bundle):
    bundle = make_bundle("probe", "getpid", "getppid")
    assert probe_lines(runsc.run(bundle).stdout) == probe_lines(runc(bundle).stdout) == {
        "getpid": ["1"], "getppid": ["0"]}


def test_sethostname_needs_cap_sys_admin(runsc, runc, make_bundle):
    bundle = make_bundle("probe", "sethostname", "x", "uname")
    got = probe_lines(runsc.run(bundle).stdout)
    assert got["sethostname"] == probe_lines(runc(bundle).stdout)["sethostname"] == ["EPERM"]
    bundle.spec["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    bundle.spec["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    bundle.spec["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    bundle.write()
    got = probe_lines(runsc.run(bundle).stdout)
    assert got["sethostname"] == ["0"]
    assert got["uname"][0].split()[1] == "x"


def test_kernel_version_from_the_flag_or_the_annotation(runsc, make_bundle):
    """--kernel-version (and, per container, the annotation, which wins) is what uname,
    /proc/version and /proc/sys/kernel/osrelease say, in agreement."""
    script = "uname -r; cat /proc/sys/kernel/osrelease; cut -d' ' -f3 /proc/version"
    bundle = make_bundle("sh", "-c", script)
    r = runsc("--kernel-version", "5.15.0-91-generic", "run", "--bundle", str(bundle.path),
              "kv1")
    assert r.stdout.split() == ["5.15.0-91-generic"] * 3, r
    bundle.spec["annotations"] = {"dev.runsc-py.kernel-version": "6.1.0"}
    bundle.write()
    r = runsc("--kernel-version", "5.15.0", "run", "--bundle", str(bundle.path), "kv2")
    assert r.stdout.split() == ["6.1.0"] * 3, r
    for bad in ("latest", "5", "1.0 2", ""):
        r = runsc("--kernel-version", bad, "list")
        assert (r.returncode, r.stderr.count("\n")) == (1, 1), r
        assert "is not a kernel release" in r.stderr


def test_version_is_printed_as_runc_prints_it(runsc):
    for flag in ("--version", "-v"):
        r = runsc(flag)
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and lines[0].startswith("runsc-py version "), r
        assert [line.split(":")[0] for line in lines[1:]] == ["spec", "python", "libseccomp"]
