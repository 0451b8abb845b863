"""The synthesised /proc: each file parsed and checked against what the host kernel reports
for the same process (PIDs translated), and nothing of the host visible."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import probe_lines

FILES = ("status", "stat", "statm", "cmdline", "environ", "comm", "maps", "limits")


@pytest.fixture
def running(runsc, make_bundle):
    """A container whose init (sh, PID 1) printed its /proc files and now sleeps."""
    script = "; ".join(f"echo '== {f}'; cat /proc/1/{f}; echo" for f in FILES)
    script += "; for l in exe cwd root; do echo \"== $l $(readlink /proc/1/$l)\"; done"
    script += "; echo '== end'; exec sleep 1000"
    bundle = make_bundle("sh", "-c", script)
    bundle.spec["process"]["cwd"] = "/tmp"
    bundle.spec["process"]["env"].append("PROC_TEST=1")
    bundle.write()
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "procs"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sections: dict[str, bytes] = {}
    current = None
    for line in proc.stdout:
        if line.startswith(b"== "):
            name, _, rest = line[3:].rstrip(b"\n").partition(b" ")
            current = name.decode()
            sections[current] = rest
            if current == "end":
                break
        elif current:
            sections[current] += line
    state = json.loads((runsc.root / "procs" / "state.json").read_text())
    yield sections, state["init_pid"]
    runsc("kill", "procs", "KILL")
    proc.wait(timeout=30)


def _host(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def _status(raw: bytes) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in raw.decode().strip().splitlines())


def test_status_matches_the_kernel(running):
    sections, host_pid = running
    got = _status(sections["status"])
    want = _status(_host(host_pid, "status"))
    assert got["Pid"] == got["Tgid"] == got["NSpid"] == "1"
    assert got["PPid"] == "0"
    # (Signal masks are left out: the shell changes them around each command it runs.)
    for key in ("Umask", "Uid", "Gid", "Groups", "Threads", "CapInh", "CapPrm", "CapEff",
                "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        assert got[key] == want[key], key
    assert got["Name"] == "sh"


def test_stat_matches_the_kernel_with_pids_translated(running):
    sections, host_pid = running
    got = sections["stat"].decode().rstrip("\n")
    want = _host(host_pid, "stat").decode()
    g_head, _, g_tail = got.rpartition(") ")
    w_head, _, w_tail = want.rpartition(") ")
    assert g_head == "1 (sh"
    g, w = g_tail.split(), w_tail.split()
    assert g[1:4] == ["0", "1", "1"]  # ppid, pgrp, session inside the sandbox
    assert g[4:5] == w[4:5]  # tty
    assert g[6:13] == w[6:13] or g[6] == w[6]  # flags (fault counts may move on)
    assert g[16:19] == w[16:19]  # priority, nice, threads
    # Start time: in ticks of the reader's CLOCK_BOOTTIME, as Linux shifts it for a reader
    # in the sandbox's time namespace (whose offsets the host shows).
    offsets = dict(line.split()[:2] for line in _host(host_pid, "timens_offsets").decode()
                   .splitlines())
    assert int(offsets["boottime"]) < 0
    assert int(g[19]) == int(w[19]) + int(offsets["boottime"]) * os.sysconf("SC_CLK_TCK")


def test_cmdline_environ_comm(running):
    sections, _ = running
    assert sections["cmdline"].split(b"\0")[:2] == [b"sh", b"-c"]
    assert b"PROC_TEST=1" in sections["environ"].split(b"\0")
    assert sections["comm"] == b"sh\n\n"


def test_statm_maps_limits_match_the_kernel(running):
    sections, host_pid = running
    # The shell has exec'd sleep since: compare what cannot change with it.
    assert len(sections["statm"].split()) == 7
    assert sections["limits"].rstrip(b"\n") == _host(host_pid, "limits").rstrip(b"\n")
    maps = sections["maps"].decode().splitlines()
    assert any(line.endswith("/bin/busybox") for line in maps)
    assert any("[stack]" in line for line in maps)


def test_links_are_container_paths(running):
    sections, _ = running
    assert sections["exe"] == b"/bin/busybox"
    assert sections["cwd"] == b"/tmp"
    assert sections["root"] == b"/"


def test_listing_shows_only_sandbox_processes(runsc, make_bundle):
    r = runsc.run(make_bundle("sh", "-c", "sleep 5 & ls /proc; kill %1"))
    pids = [int(n) for n in r.stdout.split() if n.isdigit()]
    assert pids == sorted(pids) and 1 in pids and max(pids) < 10, r.stdout
    for name in ("self", "meminfo", "cpuinfo", "stat", "uptime", "loadavg", "version",
                 "mounts", "filesystems", "cmdline", "sys"):
        assert name in r.stdout.split(), name


def test_ps_aux_and_top_show_only_the_sandbox(runsc, make_bundle):
    r = runsc.run(make_bundle("sh", "-c", "sleep 5 & ps aux; top -bn1; kill %1"))
    lines = [line.split() for line in r.stdout.splitlines()]
    pid_rows = [cols for cols in lines if cols and cols[0].isdigit()]
    assert pid_rows, r.stdout
    assert all(int(cols[0]) < 10 for cols in pid_rows), r.stdout
    assert any("sleep" in " ".join(cols) for cols in pid_rows)


def test_fd_listing_after_dup2_and_close(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "exec 7>/dev/null 8<&7 7>&-; exec 9</bin/busybox; "
                         "ls /proc/self/fd; readlink /proc/self/fd/8; readlink /proc/self/fd/9")
    out = runsc.run(bundle).stdout.split()
    assert "7" not in out and "8" in out and "9" in out, out
    assert out[-2:] == ["/dev/null", "/bin/busybox"]


def test_kernel_files(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "cd /proc/sys/kernel; cat hostname osrelease ostype "
                         "cap_last_cap random/boot_id; cat /proc/sys/kernel/random/boot_id "
                         "/proc/sys/vm/overcommit_memory /proc/sys/fs/nr_open; "
                         "cat /proc/uptime /proc/loadavg; grep -c . /proc/filesystems",
                         hostname="kern-host")
    out = runsc.run(bundle).stdout.split()
    assert out[:4] == ["kern-host", "4.4.0", "Linux", "40"]
    assert out[4] == out[5] and len(out[4]) == 36  # boot_id is stable
    assert out[6:8] == ["0", "1048576"]
    assert float(out[8]) < 60  # the sandbox's own uptime
    assert len(out) == 16 and int(out[-1]) > 3


def test_mounts_are_the_containers(runsc, make_bundle):
    bundle = make_bundle("cat", "/proc/mounts")
    r = runsc.run(bundle)
    table = {cols[1]: cols for cols in (line.split() for line in r.stdout.splitlines())}
    # The root's source is the host filesystem's, as runc shows it (tests/test_mounts.py).
    dev = os.stat(bundle.rootfs).st_dev
    with open("/proc/self/mountinfo") as f:
        sources = {line.split(" - ")[1].split()[1] for line in f
                   if line.split()[2] == f"{os.major(dev)}:{os.minor(dev)}"}
    assert table["/"][0] in sources and table["/"][3].startswith("ro")
    assert table["/proc"][2] == "proc" and table["/dev"][2] == "tmpfs"
    assert table["/sys"][2] == "sysfs"
    assert not any("runsc-py" in line or "/tmp/pytest" in line
                   for line in r.stdout.splitlines())


def test_nothing_under_proc_leads_to_the_host(runsc, make_bundle, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    bundle = make_bundle("sh", "-c", f"cat /proc/self/root{secret} /proc/1/root{secret} "
                         f"/proc/self/cwd{secret} /proc/1/exe/../..{secret}; "
                         "ls /proc/self/root/; readlink /proc/self/root")
    r = runsc.run(bundle)
    assert "host secret" not in r.stdout
    assert "bin" in r.stdout.split() and r.stdout.split()[-1] == "/"
    assert os.path.exists(secret)


def test_sysfs_lists_the_filesystems_proc_shows(runsc, runc, make_bundle):
    """sysfs(2) agrees with /proc/filesystems inside the container, as on Linux (checked
    under runc too, against the host's list): index -> name, name -> index, the count;
    EINVAL for an unknown name, an index past the end and an unknown option."""
    ops = ["sysfs_count"] + [w for i in range(40) for w in ("sysfs_name", str(i))]
    ops += ["sysfs_index", "no-such-fs", "sysfs_option", "0", "sysfs_option", "4"]
    bundle = make_bundle("sh", "-c", "cat /proc/filesystems; probe " + " ".join(ops))
    for result in (runsc.run(bundle), runc(bundle)):
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        listed = [line.split("\t")[1] for line in lines if "\t" in line]
        got = probe_lines("\n".join(line for line in lines if "\t" not in line))
        assert got["sysfs_count"] == [str(len(listed))]
        assert got["sysfs_name"][:len(listed)] == listed
        assert got["sysfs_name"][len(listed)] == "EINVAL"
        assert got["sysfs_index"] == ["EINVAL"]
        assert got["sysfs_option"] == ["EINVAL", "EINVAL"]
    names = " ".join(f"sysfs_index {n}" for n in listed[:3])
    bundle = make_bundle("probe", *names.split())
    assert probe_lines(runsc.run(bundle).stdout)["sysfs_index"] == ["0", "1", "2"]

