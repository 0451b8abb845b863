"""Path-based syscalls go through the gofer: round trips checked against the rootfs on the
host and against runc for the same operations."""
from __future__ import annotations

from conftest import probe_lines

# Docker's default capabilities (moby's oci/caps/defaults.go).
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

TMPFS = {"destination": "/work", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=1777"]}


def test_round_trip_through_the_gofer(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", """
        set -e
        cd /tmp
        echo hello > f
        cat f
        mkdir -p d/e
        mv f d/e/g
        cat d/e/g
        echo more >> d/e/g
        wc -l < d/e/g
        ln -s e/g d/link
        readlink d/link
        cat d/link | head -1
        ln d/e/g hard
        stat -c '%h %s' hard
        chmod 600 hard
        stat -c '%a' d/e/g
        rm d/link hard
        ls d/e
        touch -d '2001-02-03 04:05:06' d/e/g
        stat -c '%Y' d/e/g
        truncate -s 3 d/e/g
        cat d/e/g; echo
        rm -r d
        ls -A /tmp
        echo done
    """, readonly=False)
    r = runsc.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == [
        "hello", "hello", "2", "e/g", "hello", "2 11", "600", "g", "981173106", "hel",
        "done", ""]
    assert list((bundle.rootfs / "tmp").iterdir()) == []


def test_writes_reach_the_bundle_rootfs(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "echo written > /root/out; mkdir /root/dir", readonly=False)
    assert runsc.run(bundle).returncode == 0
    assert (bundle.rootfs / "root" / "out").read_text() == "written\n"
    assert (bundle.rootfs / "root" / "dir").is_dir()


def test_readonly_root_gives_erofs(runsc, runc, make_bundle):
    ops = ("probe", "mkdir", "/newdir", "755", "creat", "/newfile", "644", "unlink",
           "/bin/sh", "rename", "/bin", "/bin2", "symlink", "x", "/l", "chmod", "/bin", "700",
           "truncate", "/bin/busybox", "0", "open", "/etc/passwd", "wronly", "0",
           "open", "/etc/passwd", "rdonly", "0")
    bundle = make_bundle(*ops, readonly=True)
    got = probe_lines(runsc.run(bundle).stdout)
    assert got == probe_lines(runc(bundle).stdout)
    assert got["mkdir"] == got["creat"] == got["unlink"] == got["rename"] == ["EROFS"]
    assert got["open"] == ["EROFS", "3"]


def test_truncate_honours_rlimit_fsize(runsc, runc, make_bundle):
    """truncate(path) past RLIMIT_FSIZE: EFBIG and SIGXFSZ, only when it grows the file,
    after the permission checks; shrinking or staying below the limit works."""
    ops = ("probe", "creat", "/f", "644", "truncate", "/f", "10000", "fsize", "4096",
           "xfsz_catch", "truncate", "/f", "100", "truncate", "/f", "4096",
           "truncate", "/f", "4097", "xfsz_count", "truncate", "/nonexistent", "99999",
           "truncate", "/", "99999", "creat", "/g", "644", "truncate", "/g", "5000")
    bundle = make_bundle(*ops, readonly=False)
    got = probe_lines(runsc.run(bundle).stdout)
    assert got == probe_lines(runc(bundle).stdout)
    assert got["truncate"] == ["0", "0", "0", "EFBIG", "ENOENT", "EISDIR", "EFBIG"]
    assert got["xfsz_count"] == ["1"]
    # Unhandled, SIGXFSZ ends the process (its default action; not pid 1, which Linux
    # shields from signals it does not handle).
    bundle = make_bundle("sh", "-c", "probe creat /f 644 fsize 10 truncate /f 11; echo $?",
                         readonly=False)
    assert runsc.run(bundle).stdout == runc(bundle).stdout == "creat: 3\nfsize: 0\n153\n"


def test_file_capabilities(runsc, runc, make_bundle):
    """security.capability (setcap) as under runc: set with CAP_SETFCAP (Docker's default
    set has it), read back, removed by a write; EPERM for a caller without it."""
    ops = ("probe", "creat", "/f", "755", "fcap", "/f", "fcap_get", "/f", "fcap", "/nope",
           "open", "/f", "wronly", "0", "write", "3", "x", "fcap_get", "/f", "fcap", "/f",
           "setuid", "1000", "fcap", "/f", "fcap_get", "/f")
    bundle = make_bundle(*ops, readonly=False)
    caps = bundle.spec["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = DOCKER_CAPS
    bundle.write()
    got = probe_lines(runsc.run(bundle).stdout)
    assert got == probe_lines(runc(bundle).stdout)
    assert got["fcap"] == ["0", "ENOENT", "0", "EPERM"]
    assert got["fcap_get"] == ["0100000200200000000000000000000000000000", "ENODATA",
                               "0100000200200000000000000000000000000000"]


def test_tmpfs_mount_is_writable_in_a_readonly_root(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "echo x > /work/f && cat /work/f", mounts=[TMPFS])
    r = runsc.run(bundle)
    assert r.stdout == "x\n", r.stderr


def test_bind_mounts_and_readonly_bind_mounts(runsc, make_bundle, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    mounts = [{"destination": "/data", "type": "bind", "source": str(host),
               "options": ["rbind", "rw"]},
              {"destination": "/ro", "type": "bind", "source": str(host),
               "options": ["rbind", "ro"]}]
    bundle = make_bundle("sh", "-c", "cat /data/in; echo out > /data/out; "
                         "echo no > /ro/x || echo refused", mounts=mounts)
    r = runsc.run(bundle)
    assert r.stdout == "from host\nrefused\n"
    assert "Read-only file system" in r.stderr
    assert (host / "out").read_text() == "out\n"


def test_probe_operations_match_runc(runsc, runc, make_bundle):
    ops = ("probe", "stat", "/bin", "lstat", "/bin/sh", "stat", "/bin/sh", "readlink",
           "/bin/sh", "access", "/bin/busybox", "1", "access", "/nonexistent", "0",
           "stat", "/etc/passwd/x", "chdir", "/tmp", "getcwd", "mkdir", "a", "700",
           "mkdir", "a", "700", "stat", "a", "creat", "a/f", "640", "stat", "a/f",
           "rename", "a/f", "a/g", "link", "a/g", "a/h", "stat", "a/h", "rmdir", "a",
           "unlink", "a/g", "unlink", "a/h", "rmdir", "a", "chdir", "/nonexistent",
           "chdir", "/etc/passwd", "readlink", "/bin", "ls", "/tmp")
    bundle = make_bundle(*ops, readonly=False)
    want = runc(bundle).stdout
    assert runsc.run(bundle).stdout == want


def test_device_nodes(runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", "echo gone > /dev/null && head -c 4 /dev/zero | wc -c "
                         "&& ls /dev | sort | tr '\\n' ' '")
    got = runsc.run(bundle)
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0] == "4"
    assert {"null", "zero", "full", "random", "urandom", "tty"} <= set(lines[1].split())


def test_a_thousand_stats_in_a_shell_loop(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "i=0; while [ $i -lt 1000 ]; do [ -e /bin/sh ] || exit 1;"
                         " i=$((i+1)); done; echo $i")
    r = runsc.run(bundle, timeout=120)
    assert r.stdout == "1000\n", r.stderr


def test_dev_stdout_and_proc_fd_links_reopen_the_descriptor(runsc, runc, make_bundle):
    # Reopening through the magic link opens the same file with what the caller's
    # credentials allow on it, not only the descriptor's own access mode: as root, stdin
    # (a pipe's read end) reopens for writing, as Linux does; as uid 1000, the pipe
    # (owned by the host's root, mode 0600) refuses both.
    script = ("echo out > /dev/stdout; echo err > /dev/stderr; echo fd > /proc/self/fd/1; "
              "cat /dev/stdin; echo no > /dev/fd/0 || echo refused")
    bundle = make_bundle("sh", "-c", script)
    r = runsc.run(bundle, input="in\n")
    assert r.stdout == "out\nfd\nin\n"
    assert r.stderr.startswith("err\n")
    assert r.stdout == runc(bundle, input="in\n").stdout
    bundle.spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.write()
    r = runsc.run(bundle, input="in\n")
    assert r.stdout == runc(bundle, input="in\n").stdout
