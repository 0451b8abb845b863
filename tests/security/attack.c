/* Attacks on a container runtime, run from inside the container (tests/security/).
 *
 * `attack NAME...` runs each named attack in a child of its own (own process group, a
 * deadline enforced by the parent) and prints one line per attack:
 *     NAME: BLOCKED <detail>    the attempt failed, as it must
 *     NAME: BROKEN <detail>     the attempt achieved what it tried
 *     NAME: HUNG                no verdict within the deadline (itself a break)
 *     NAME: CRASHED <detail>    the attack's child died without a verdict
 * `attack list` prints the names. Races run a bounded number of tries / seconds and report
 * whether they ever won. Host facts the test knows are passed in the environment:
 * HOST_NEW, HOST_OLD, HOST_ENV, HOST_SYS (host paths that must not be created or
 * truncated), HOST_SECRET (a host file the container must not read), BUNDLE (the host
 * bundle path), HOST_DEV (major:minor of the bundle's host filesystem), HOST_UPTIME,
 * HOST_RELEASE, HOST_INIT (host pid 1's cmdline, first word). */
#define _GNU_SOURCE
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define RACE_TRIES 2000
#define RACE_SECONDS 1.5

static const char *current;

static void verdict(int broken, const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p; p++)
        if (*p == '\n') *p = ' ';
    printf("%s: %s %s\n", current, broken ? "BROKEN" : "BLOCKED", detail);
    fflush(stdout);
    _exit(0);
}

/* "ok" or the errno's name, for details. */
static const char *res(long r) {
    return r < 0 ? strerrorname_np(errno) : "ok";
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

/* A value passed reversed (BUNDLE_REV, HOST_INIT_REV): searching /proc/PID/environ for it
 * must not find the environment variable itself. */
static const char *env_rev(const char *name) {
    static char out[2][4096];
    static int which;
    const char *v = env(name);
    size_t n = strlen(v);
    char *o = out[which++ & 1];
    if (n >= sizeof out[0]) n = sizeof out[0] - 1;
    for (size_t i = 0; i < n; i++) o[i] = v[n - 1 - i];
    o[n] = 0;
    return o;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0) n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

static void write_file(const char *path, const char *data, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd >= 0) {
        if (write(fd, data, strlen(data)) < 0) perror("write");
        close(fd);
    }
    chmod(path, mode);
}

/* Runs fn in a child; 1 if it exited 0 within `seconds`, 0 otherwise (killed if late). */
static int within(double seconds, void (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    double end = now() + seconds;
    int status;
    while (now() < end) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 0;
}

/* Trapped calls that must still be answered: uname, stat, open, mkdir in /tmp. */
static void trapped_calls(void) {
    struct utsname u;
    struct stat st;
    char name[64];
    snprintf(name, sizeof name, "/tmp/.alive-%d", getpid());
    if (uname(&u) || stat("/", &st) || mkdir(name, 0700) || rmdir(name)) _exit(1);
    int fd = open("/bin/attack", O_RDONLY);
    if (fd < 0) _exit(1);
    close(fd);
    _exit(0);
}

static int sandbox_answers(void) { return within(3, trapped_calls); }

static void drop_to_user(void) {
    if (setgroups(0, NULL) || setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) {
        printf("%s: CRASHED cannot become uid 1000: %s\n", current, strerrorname_np(errno));
        _exit(1);
    }
}

/* ------------------------------------------------------------------ /proc and /sys */
static void proc_create_file(void) {
    int fd = open("/proc/evil", O_WRONLY | O_CREAT | O_EXCL, 0644);
    verdict(fd >= 0, "open(/proc/evil, O_CREAT): %s", res(fd));
}

static void proc_mkdir(void) {
    int r = mkdir("/proc/evil-dir", 0755);
    verdict(r == 0, "mkdir(/proc/evil-dir): %s", res(r));
}

static void plant(const char *target, const char *link, const char *reader) {
    int r = symlink(target, link);
    int e = errno;
    char buf[4096];
    ssize_t n = slurp(reader, buf, sizeof buf);
    errno = e;
    verdict(r == 0, "symlink(host path, %s): %s; read %s: %zd bytes", link, res(r), reader, n);
}

static void proc_symlink_version(void) { plant(env("HOST_NEW"), "/proc/.version.new", "/proc/version"); }
static void proc_symlink_uptime(void) { plant(env("HOST_OLD"), "/proc/.uptime.new", "/proc/uptime"); }
static void proc_symlink_environ(void) {
    plant(env("HOST_ENV"), "/proc/self/.environ.new", "/proc/self/environ");
}
static void sys_symlink_online(void) {
    plant(env("HOST_SYS"), "/sys/devices/system/cpu/.online.new", "/sys/devices/system/cpu/online");
}

static void read_proc_uptime(void) {
    char buf[256];
    _exit(slurp("/proc/uptime", buf, sizeof buf) > 0 ? 0 : 1);
}

static void proc_mkfifo_uptime(void) {
    int r = mkfifo("/proc/.uptime.new", 0644);
    int e = errno;
    int read_ok = within(3, read_proc_uptime);
    int alive = sandbox_answers();
    unlink("/proc/.uptime.new");
    errno = e;
    verdict(r == 0 || !read_ok || !alive, "mkfifo(/proc/.uptime.new): %s; /proc/uptime %s; "
            "sandbox %s", res(r), read_ok ? "read" : "stuck", alive ? "answers" : "stuck");
}

static void proc_mknod(void) {
    int r = mknod("/proc/evil-node", S_IFREG | 0666, 0);  /* needs no CAP_MKNOD */
    int r2 = mknod("/proc/evil-chr", S_IFCHR | 0666, makedev(1, 1));
    int e2 = errno;
    verdict(r == 0 || r2 == 0, "mknod(/proc/evil-node, S_IFREG): %s; (c 1 1): %s", res(r),
            r2 ? strerrorname_np(e2) : "ok");
}

static void proc_unlink(void) {
    int r = unlink("/proc/version");
    verdict(r == 0, "unlink(/proc/version): %s", res(r));
}

static void proc_rename(void) {
    int r = rename("/proc/version", "/proc/version2");
    int r2 = rename("/proc/self/status", "/proc/self/status2");
    verdict(r == 0 || r2 == 0, "rename /proc/version: %s; /proc/self/status: %s", res(r),
            r2 < 0 ? strerrorname_np(errno) : "ok");
}

static void proc_chmod(void) {
    drop_to_user();
    int r = chmod("/proc/version", 0666);
    struct stat st;
    stat("/proc/version", &st);
    verdict(r == 0 || (st.st_mode & 0222), "uid 1000 chmod(/proc/version, 0666): %s; mode %o", res(r),
            st.st_mode & 07777);
}

static void proc_chown(void) {
    drop_to_user();
    int r = chown("/proc/version", 1000, 1000);
    verdict(r == 0, "uid 1000 chown(/proc/version): %s", res(r));
}

static void proc_utimes(void) {
    drop_to_user();
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    int r = utimes("/proc/version", tv);
    verdict(r == 0, "uid 1000 utimes(/proc/version): %s", res(r));
}

static void proc_write_version(void) {
    int fd = open("/proc/version", O_WRONLY);
    long w = fd >= 0 ? write(fd, "pwned\n", 6) : -1;
    verdict(fd >= 0 && w > 0, "open(/proc/version, O_WRONLY): %s", res(fd));
}

static void proc_link(void) {
    write_file("/tmp/linksrc", "x", 0644);
    int r = link("/tmp/linksrc", "/proc/evil-link");
    int r2 = symlink("/", "/proc/self/fd/99");
    verdict(r == 0 || r2 == 0, "link into /proc: %s; symlink /proc/self/fd/99: %s", res(r),
            r2 < 0 ? strerrorname_np(errno) : "ok");
}

static void proc_deep_tree(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", getpid());
    int dfd = open(path, O_RDONLY | O_DIRECTORY);
    int depth = 0;
    while (dfd >= 0 && depth < 1100) {
        if (mkdirat(dfd, "d", 0755)) break;
        int next = openat(dfd, "d", O_RDONLY | O_DIRECTORY);
        close(dfd);
        dfd = next;
        depth++;
    }
    int e = errno;
    DIR *d = opendir("/proc");
    int listed = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) listed++;
    if (d) closedir(d);
    char buf[256];
    int status_ok = slurp("/proc/self/status", buf, sizeof buf) > 0;
    errno = e;
    verdict(depth > 0 || listed < 3 || !status_ok, "mkdir depth under /proc/PID %d (%s); "
            "/proc lists %d entries; status %s", depth, strerrorname_np(e), listed,
            status_ok ? "readable" : "unreadable");
}

static void proc_sys_write(void) {
    int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY);  /* never written */
    int fd2 = open("/proc/sys/kernel/hostname", O_WRONLY);
    int e2 = errno;
    verdict(fd >= 0, "open(core_pattern, O_WRONLY): %s; hostname: %s", res(fd),
            fd2 >= 0 ? "ok" : strerrorname_np(e2));
}

static void proc_sysrq_trigger(void) {
    int fd = open("/proc/sysrq-trigger", O_WRONLY);  /* never written */
    verdict(fd >= 0, "open(/proc/sysrq-trigger, O_WRONLY): %s", res(fd));
}

static void proc_kcore(void) {
    char buf[64];
    int fd = open("/proc/kcore", O_RDONLY);
    long n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    verdict(n > 0, "open(/proc/kcore): %s; read %ld", res(fd), n);
}

static void sys_create_file(void) {
    int fd = open("/sys/evil", O_WRONLY | O_CREAT | O_EXCL, 0644);
    int r = mkdir("/sys/devices/evil", 0755);
    int e = errno;
    verdict(fd >= 0 || r == 0, "create /sys/evil: %s; mkdir /sys/devices/evil: %s", res(fd),
            r ? strerrorname_np(e) : "ok");
}

static void sys_write(void) {
    int fd = open("/sys/devices/system/cpu/online", O_WRONLY | O_TRUNC);
    verdict(fd >= 0, "open(/sys/devices/system/cpu/online, O_WRONLY): %s", res(fd));
}

/* ------------------------------------------------------------ FIFOs and bad arguments */
static void open_fifo_rd(void) { open("/tmp/fifo-a", O_RDONLY); }
static void open_fifo_wr(void) { open("/tmp/fifo-a", O_WRONLY); }

static void fifo_blocks_only_opener(int writer) {
    unlink("/tmp/fifo-a");
    if (mkfifo("/tmp/fifo-a", 0666)) verdict(0, "mkfifo failed: %s", res(-1));
    pid_t opener = fork();
    if (opener == 0) {
        writer ? open_fifo_wr() : open_fifo_rd();
        _exit(0);
    }
    usleep(300000);
    int alive = sandbox_answers();
    /* Release the opener: the other end, non-blocking for a reader, blocking-free for a
     * writer (a reader open with O_NONBLOCK never blocks). */
    int other = open("/tmp/fifo-a", writer ? O_RDONLY | O_NONBLOCK : O_RDWR);
    int status = 0;
    double end = now() + 3;
    pid_t w = 0;
    while (now() < end && (w = waitpid(opener, &status, WNOHANG)) == 0) usleep(10000);
    if (w == 0) {
        kill(opener, SIGKILL);
        waitpid(opener, &status, 0);
    }
    if (other >= 0) close(other);
    verdict(!alive || w == 0, "open(fifo, %s) pending: other processes %s; opener %s",
            writer ? "O_WRONLY" : "O_RDONLY", alive ? "answered" : "stuck",
            w ? "released" : "stuck");
}

static void fifo_reader_hang(void) { fifo_blocks_only_opener(0); }
static void fifo_writer_hang(void) { fifo_blocks_only_opener(1); }

static void fifo_pair(void) {
    unlink("/tmp/fifo-b");
    mkfifo("/tmp/fifo-b", 0666);
    int p[2];
    if (pipe(p)) verdict(0, "pipe");
    pid_t reader = fork();
    if (reader == 0) {
        close(p[0]);
        char buf[16] = {0};
        int fd = open("/tmp/fifo-b", O_RDONLY);
        long n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (n > 0 && write(p[1], buf, n) < 0) _exit(1);
        _exit(0);
    }
    close(p[1]);
    pid_t writer = fork();
    if (writer == 0) {
        int fd = open("/tmp/fifo-b", O_WRONLY);
        _exit(fd >= 0 && write(fd, "hello", 5) == 5 ? 0 : 1);
    }
    struct timeval tv = {4, 0};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(p[0], &set);
    char got[16] = {0};
    if (select(p[0] + 1, &set, NULL, NULL, &tv) > 0 && read(p[0], got, sizeof got - 1) < 0)
        got[0] = 0;
    kill(reader, SIGKILL);
    kill(writer, SIGKILL);
    waitpid(reader, NULL, 0);
    waitpid(writer, NULL, 0);
    verdict(strcmp(got, "hello") != 0, "reader got '%s' from a writer in another process", got);
}

static void mknod_overflow(void) {
    long r = syscall(SYS_mknod, "/tmp/ovf", 0x80001000UL | 0644, 0);
    int e = errno;
    long r2 = syscall(SYS_mknodat, AT_FDCWD, "/tmp/ovf2", 0xffffffffffffffffUL, ~0UL);
    int e2 = errno;
    int alive = sandbox_answers();
    verdict(!alive, "mknod(0x80001000|0644): %s; mknodat(~0, ~0): %s; sandbox %s",
            r < 0 ? strerrorname_np(e) : "ok", r2 < 0 ? strerrorname_np(e2) : "ok",
            alive ? "answers" : "stuck or dead");
}

static void garbage_args(void) {
    long r1 = syscall(SYS_openat, AT_FDCWD, "/tmp/garbage", ~0UL, ~0UL);
    long r2 = syscall(SYS_openat2, AT_FDCWD, "/tmp/g2", (void *)8, 1UL << 40);
    struct open_how how = {.flags = ~0ULL, .mode = ~0ULL, .resolve = ~0ULL};
    long r3 = syscall(SYS_openat2, AT_FDCWD, "/tmp/g3", &how, sizeof how);
    long r4 = syscall(SYS_fchmodat, ~0UL, "x", ~0UL);
    long r5 = syscall(SYS_utimensat, AT_FDCWD, "/tmp", (void *)1, ~0UL);
    long r6 = syscall(SYS_renameat2, ~0UL, "a", ~0UL, "b", ~0UL);
    int alive = sandbox_answers();
    verdict(!alive, "results %ld %ld %ld %ld %ld %ld; sandbox %s", r1, r2, r3, r4, r5, r6,
            alive ? "answers" : "stuck or dead");
}

static void bad_pointers(void) {
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);
    memset(page, 'a', 4096);
    struct stat st;
    long r1 = syscall(SYS_stat, page + 100, &st);  /* no NUL before the unmapped page */
    int e1 = errno;
    long r2 = syscall(SYS_stat, (char *)1, &st);
    int e2 = errno;
    long r3 = syscall(SYS_stat, "/", (void *)1);
    int e3 = errno;
    int alive = sandbox_answers();
    const char *n1 = r1 < 0 ? strerrorname_np(e1) : "ok", *n2 = r2 < 0 ? strerrorname_np(e2) : "ok",
               *n3 = r3 < 0 ? strerrorname_np(e3) : "ok";
    verdict(!alive || strcmp(n1, "EFAULT") || strcmp(n2, "EFAULT") || strcmp(n3, "EFAULT"),
            "path across page end %s, path 0x1 %s, statbuf 0x1 %s; sandbox %s", n1, n2, n3,
            alive ? "answers" : "stuck or dead");
}

static void deep_tmp_tree(void) {
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    mkdirat(dfd, "deep", 0755);
    int cur = openat(dfd, "deep", O_RDONLY | O_DIRECTORY);
    int depth = 0;
    for (; cur >= 0 && depth < 1100; depth++) {
        if (mkdirat(cur, "d", 0755)) break;
        int next = openat(cur, "d", O_RDONLY | O_DIRECTORY);
        close(cur);
        cur = next;
    }
    struct stat st;
    long r = cur >= 0 ? fstatat(cur, "../../..", &st, 0) : -1;
    int e = errno;
    for (int i = 0; cur >= 0 && i < depth; i++) {  /* remove it again, deepest first */
        int parent = openat(cur, "..", O_RDONLY | O_DIRECTORY);
        close(cur);
        cur = parent;
        if (cur < 0 || unlinkat(cur, "d", AT_REMOVEDIR)) break;
    }
    errno = e;
    int alive = sandbox_answers();
    verdict(!alive, "depth %d, relative stat %s; sandbox %s", depth, res(r),
            alive ? "answers" : "stuck or dead");
}

/* ------------------------------------------------------- /proc/self/fd reopen (uid 1000) */
static int root_file(void) {
    write_file("/tmp/rootfile", "root secret\n", 0644);
    chown("/tmp/rootfile", 0, 0);
    return open("/tmp/rootfile", O_RDONLY);
}

static long rootfile_size(void) {
    struct stat st;
    return stat("/tmp/rootfile", &st) ? -1 : st.st_size;
}

static void reopen_as_user(const char *fmt, int flags) {
    root_file();
    pid_t child = fork();
    if (child == 0) {
        drop_to_user();
        int fd = open("/tmp/rootfile", O_RDONLY);
        char path[64];
        snprintf(path, sizeof path, fmt, strstr(fmt, "%d/fd") ? getpid() : fd, fd);
        int r = open(path, flags);
        int e = errno;
        long w = r >= 0 && (flags & O_ACCMODE) ? write(r, "x", 1) : -1;
        errno = e;
        printf("%s: %s uid 1000 open(%s, %#o) on its O_RDONLY fd of a root 0644 file: %s;"
               " write %ld; size now %ld\n", current,
               r >= 0 && ((flags & O_ACCMODE) || (flags & O_TRUNC)) ? "BROKEN" : "BLOCKED",
               path, flags, res(r), w, rootfile_size());
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    long size = rootfile_size();
    if (size != 12) verdict(1, "root file size %ld after the attempt", size);
    _exit(0);
}

static void fdreopen_trunc(void) { reopen_as_user("/proc/self/fd/%d", O_RDONLY | O_TRUNC); }
static void fdreopen_rdwr(void) { reopen_as_user("/proc/self/fd/%d", O_RDWR); }
static void fdreopen_wronly(void) { reopen_as_user("/proc/self/fd/%d", O_WRONLY | O_APPEND); }
static void devfd_reopen_trunc(void) { reopen_as_user("/dev/fd/%d", O_WRONLY | O_TRUNC); }
static void procpid_fd_reopen(void) { reopen_as_user("/proc/%d/fd/%d", O_RDWR); }

static atomic_int stop_flag;
static int race_target_fd = 50;
static int race_fd_a, race_fd_b;

static void *dup2_flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        dup2(race_fd_a, race_target_fd);
        dup2(race_fd_b, race_target_fd);
    }
    return NULL;
}

static void fdreopen_dup2_race(void) {
    root_file();
    pid_t child = fork();
    if (child == 0) {
        drop_to_user();
        write_file("/tmp/userfile", "mine\n", 0644);
        race_fd_a = open("/tmp/rootfile", O_RDONLY);
        race_fd_b = open("/tmp/userfile", O_RDWR);
        struct stat root_st, st;
        fstat(race_fd_a, &root_st);
        pthread_t t;
        pthread_create(&t, NULL, dup2_flipper, NULL);
        int won = 0, tries = 0, opened = 0;
        double end = now() + RACE_SECONDS;
        for (; tries < RACE_TRIES && now() < end && !won; tries++) {
            int fd = open("/proc/self/fd/50", O_RDWR);
            if (fd < 0) continue;
            opened++;
            if (!fstat(fd, &st) && st.st_ino == root_st.st_ino && st.st_dev == root_st.st_dev)
                won = 1;
            close(fd);
        }
        atomic_store(&stop_flag, 1);
        pthread_join(t, NULL);
        printf("%s: %s O_RDWR reopen of a root file won after %d tries (%d opens)\n",
               current, won ? "BROKEN" : "BLOCKED", tries, opened);
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    _exit(0);
}

static void *user_thread(void *arg) {
    (void)arg;
    long *won = arg;
    if (syscall(SYS_setresuid, 1000, 1000, 1000)) {  /* this thread only */
        *won = -1;
        return NULL;
    }
    double end = now() + RACE_SECONDS / 2;
    for (int tries = 0; tries < RACE_TRIES && now() < end; tries++) {
        int fd = open("/tmp/rootonly", O_RDONLY);
        if (fd >= 0) {
            *won = tries + 1;
            close(fd);
            break;
        }
    }
    return NULL;
}

/* Linux credentials are per thread: a thread that dropped to uid 1000 by the raw syscall
 * must not be served with its root thread-group leader's credentials. */
static void thread_creds(void) {
    write_file("/tmp/rootonly", "root only\n", 0600);
    chown("/tmp/rootonly", 0, 0);
    long won = 0;
    pthread_t t;
    pthread_create(&t, NULL, user_thread, &won);
    struct stat st;
    while (pthread_tryjoin_np(t, NULL) == EBUSY) stat("/tmp", &st);  /* the root leader */
    verdict(won > 0, "a uid-1000 thread beside a root leader opened a 0600 root file: %s",
            won > 0 ? "yes" : won < 0 ? "setresuid failed" : "never");
}

/* ------------------------------------------------------------- check-then-CONTINUE races */
static char race_path[256];
static char race_first;

static void *byte_flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        __atomic_store_n(&race_path[0], 0, __ATOMIC_RELAXED);
        for (volatile int i = 0; i < 50; i++);
        __atomic_store_n(&race_path[0], race_first, __ATOMIC_RELAXED);
        for (volatile int i = 0; i < 50; i++);
    }
    return NULL;
}

typedef long (*race_call)(int fd, char *path, long *extra);

/* Races `call` on (fd, "" or path): the outcome must always be one of the two a single
 * reading of the argument gives; anything else means the sentry and the kernel read
 * different strings. */
static void empty_path_race(int fd, const char *path, race_call call, const char *what) {
    long ea = 0, eb = 0, ex = 0;
    race_path[0] = 0;
    long a = call(fd, race_path, &ea);
    int erra = a < 0 ? errno : 0;
    strcpy(race_path, path);
    long b = call(fd, race_path, &eb);
    int errb = b < 0 ? errno : 0;
    race_first = path[0];
    pthread_t t;
    pthread_create(&t, NULL, byte_flipper, NULL);
    int won = 0, tries = 0, erx = 0;
    long x = 0;
    double end = now() + RACE_SECONDS;
    for (; tries < RACE_TRIES && now() < end && !won; tries++) {
        x = call(fd, race_path, &ex);
        erx = x < 0 ? errno : 0;
        won = !((x == a && erx == erra && ex == ea) || (x == b && erx == errb && ex == eb));
    }
    atomic_store(&stop_flag, 1);
    pthread_join(t, NULL);
    verdict(won, "%s: with \"\" %ld/%s/%ld, with %s %ld/%s/%ld; %s after %d tries: "
            "%ld/%s/%ld", what, a, erra ? strerrorname_np(erra) : "0", ea, path, b,
            errb ? strerrorname_np(errb) : "0", eb, won ? "mixed outcome" : "no mixed outcome",
            tries, x, erx ? strerrorname_np(erx) : "0", ex);
}

static long call_fchmodat2(int fd, char *p, long *extra) {
    *extra = 0;
    return syscall(452, fd, p, 0644, AT_EMPTY_PATH);
}
static long call_fchownat(int fd, char *p, long *extra) {
    *extra = 0;
    return fchownat(fd, p, 0, 0, AT_EMPTY_PATH);
}
static long call_utimensat(int fd, char *p, long *extra) {
    struct timespec ts[2] = {{5, 0}, {5, 0}};
    *extra = 0;
    return syscall(SYS_utimensat, fd, p, ts, AT_EMPTY_PATH);
}
static long call_faccessat2(int fd, char *p, long *extra) {
    *extra = 0;
    return syscall(SYS_faccessat2, fd, p, W_OK, AT_EMPTY_PATH);
}
static long call_fstatat(int fd, char *p, long *extra) {
    struct stat st;
    long r = fstatat(fd, p, &st, AT_EMPTY_PATH);
    *extra = r ? 0 : (long)st.st_ino;
    return r;
}
static long call_readlinkat(int fd, char *p, long *extra) {
    char buf[64] = {0};
    long r = readlinkat(fd, p, buf, sizeof buf - 1);
    *extra = r > 0 ? atol(buf) : 0;
    return r > 0 ? 1 : r;
}

static void hammer_proc(void) {
    char buf[256];
    for (;;) slurp("/proc/self/stat", buf, sizeof buf);
}

static pid_t start_hammer(void) {
    pid_t pid = fork();
    if (pid == 0) hammer_proc();
    usleep(50000);
    return pid;
}

static void file_race(race_call call, const char *what) {
    write_file("/tmp/race-a", "a", 0644);
    write_file("/tmp/race-b", "b", 0644);
    empty_path_race(open("/tmp/race-a", O_RDONLY), "/tmp/race-b", call, what);
}

static void race_chmod_empty_path(void) { file_race(call_fchmodat2, "fchmodat2(AT_EMPTY_PATH)"); }
static void race_chown_empty_path(void) { file_race(call_fchownat, "fchownat(AT_EMPTY_PATH)"); }
static void race_utimensat_empty_path(void) { file_race(call_utimensat, "utimensat(AT_EMPTY_PATH)"); }
static void race_access_empty_path(void) { file_race(call_faccessat2, "faccessat2(AT_EMPTY_PATH)"); }

static void race_stat_empty_path(void) {
    start_hammer();
    open("/proc/self", O_RDONLY | O_DIRECTORY);  /* keeps its inode number stable */
    empty_path_race(open("/bin/attack", O_RDONLY), "/proc/self", call_fstatat,
                    "newfstatat(AT_EMPTY_PATH) vs /proc/self");
}

static void race_readlinkat_empty_path(void) {
    start_hammer();
    empty_path_race(open("/proc", O_RDONLY | O_DIRECTORY), "self", call_readlinkat,
                    "readlinkat(procfd, \"\") vs \"self\"");
}

/* Resolving /proc/self in the sentry and again in the kernel: with another process
 * reading its own /proc meanwhile, the two must still agree. */
static void race_chdir_proc_self(void) {
    start_hammer();
    char want[64], cwd[256] = "";
    snprintf(want, sizeof want, "/proc/%d", getpid());
    int won = 0, tries = 0;
    double end = now() + RACE_SECONDS;
    for (; tries < RACE_TRIES && now() < end && !won; tries++) {
        if (chdir("/proc/self")) continue;
        if (!getcwd(cwd, sizeof cwd)) continue;
        won = strcmp(cwd, want) != 0;
        chdir("/");
    }
    verdict(won, "chdir(/proc/self) landed in %s (want %s) after %d tries", cwd, want, tries);
}

static void race_execve_proc_self_exe(void) {
    pid_t h = fork();  /* a hammer whose own exe is busybox */
    if (h == 0) {
        execl("/bin/busybox", "sh", "-c", "while :; do read x < /proc/self/stat; done", NULL);
        _exit(127);
    }
    usleep(100000);
    int won = 0, tries = 0;
    double end = now() + RACE_SECONDS;
    char who[64] = "";
    for (; tries < 300 && now() < end && !won; tries++) {
        int p[2];
        if (pipe(p)) break;
        pid_t c = fork();
        if (c == 0) {
            dup2(p[1], 1);
            char *argv[] = {"true", "__whoami", NULL};
            execve("/proc/self/exe", argv, environ);
            _exit(127);
        }
        close(p[1]);
        char buf[64] = {0};
        long n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        int st;
        waitpid(c, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && strncmp(buf, "attack", 6)) {
            won = 1;
            snprintf(who, sizeof who, "%s (status %#x)", n > 0 ? buf : "nothing", st);
        }
    }
    verdict(won, "execve(/proc/self/exe) ran %s after %d tries", won ? who : "itself always",
            tries);
}

static void *fchdir_flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        dup2(race_fd_a, race_target_fd);
        dup2(race_fd_b, race_target_fd);
    }
    return NULL;
}

static void race_fchdir_dup2(void) {
    mkdir("/tmp/fcd-ok", 0755);
    mkdir("/tmp/fcd-root", 0700);
    chown("/tmp/fcd-root", 0, 0);
    pid_t child = fork();
    if (child == 0) {
        race_fd_a = open("/tmp/fcd-ok", O_RDONLY | O_DIRECTORY);
        race_fd_b = open("/tmp/fcd-root", O_RDONLY | O_DIRECTORY);  /* opened as root */
        drop_to_user();
        pthread_t t;
        pthread_create(&t, NULL, fchdir_flipper, NULL);
        int won = 0, tries = 0;
        char cwd[256] = "";
        double end = now() + RACE_SECONDS;
        for (; tries < RACE_TRIES && now() < end && !won; tries++) {
            if (fchdir(race_target_fd)) continue;
            if (getcwd(cwd, sizeof cwd) && !strcmp(cwd, "/tmp/fcd-root")) won = 1;
            chdir("/");
        }
        atomic_store(&stop_flag, 1);
        pthread_join(t, NULL);
        printf("%s: %s uid 1000 fchdir into a 0700 root dir: %s after %d tries\n", current,
               won ? "BROKEN" : "BLOCKED", won ? "yes" : "never", tries);
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    _exit(0);
}

/* ------------------------------------------------------------ symlink races, escapes */
static void check_secret(int fd, const char *how) {
    char buf[64] = {0};
    long n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (n > 0 && strstr(buf, "host secret")) verdict(1, "read the host secret via %s", how);
}

static void escape_paths(const char *const *prefixes, int n) {
    const char *secret = env("HOST_SECRET");
    char path[4096], results[1024] = "";
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s%s", prefixes[i], secret);
        int fd = open(path, O_RDONLY);
        check_secret(fd, path);
        size_t len = strlen(results);
        snprintf(results + len, sizeof results - len, "%s%s", i ? " " : "", res(fd));
        if (fd >= 0) close(fd);
    }
    verdict(0, "opens of the host secret: %s", results);
}

static void escape_dotdot(void) {
    chdir("/tmp");
    const char *p[] = {"../../../../../../..", "/..", "/../../../tmp/../..", "./../.."};
    escape_paths(p, 4);
}

static void escape_proc_links(void) {
    const char *p[] = {"/proc/self/root", "/proc/1/root", "/proc/self/cwd/../../../..",
                       "/proc/self/exe/../../../..", "/proc/thread-self/root",
                       "/dev/fd/../../../.."};
    escape_paths(p, 6);
}

static void escape_abs_symlink(void) {
    symlink("/", "/tmp/rootlink");
    symlink("../../../../../..", "/tmp/uplink");
    mkdir("/tmp/sd", 0755);
    symlink("/tmp/../../..", "/tmp/sd/c");
    const char *p[] = {"/tmp/rootlink", "/tmp/rootlink/..", "/tmp/uplink", "/tmp/sd/c/.."};
    escape_paths(p, 4);
}

/* AF_UNIX bind is emulated (the gofer makes the socket file): every route out of the
 * container root must end inside it. The host checks that HOST_SOCK was never made. */
static void unix_bind_escape(void) {
    const char *target = env("HOST_SOCK");
    symlink("/", "/tmp/ubroot");
    symlink("../../../../../..", "/tmp/ubup");
    chdir("/tmp");
    const char *p[] = {"", "../../../../../../..", "/tmp/ubroot", "/tmp/ubup", "/proc/self/root",
                       "/proc/1/cwd/../../../..", "/dev/fd/../../../.."};
    char path[256], results[1024] = "";
    for (int i = 0; i < 7; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(path, sizeof path, "%s%s", p[i], target);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int r = bind(s, (struct sockaddr *)&sa, sizeof sa);
        size_t len = strlen(results);
        snprintf(results + len, sizeof results - len, "%s%s", i ? " " : "", res(r));
        close(s);
    }
    verdict(0, "binds toward the host path: %s", results);
}

/* Extended attributes are answered by the gofer: a host file reached by any route
 * would answer ENODATA (it has none) or a value, never ENOENT. */
static void xattr_escape(void) {
    const char *secret = env("HOST_SECRET");
    symlink("/", "/tmp/xaroot");
    symlink("../../../../../..", "/tmp/xaup");
    const char *p[] = {"", "/../../..", "/tmp/xaroot", "/tmp/xaup", "/proc/self/root",
                       "/proc/1/cwd/../../.."};
    char path[4096], value[64], results[1024] = "";
    int reached = 0;
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s%s", p[i], secret);
        ssize_t r = getxattr(path, "user.x", value, sizeof value);
        int r2 = setxattr(path, "user.evil", "1", 1, 0);
        reached |= r >= 0 || errno == ENODATA || r2 == 0;
        size_t len = strlen(results);
        snprintf(results + len, sizeof results - len, "%s%s/%s", i ? " " : "", res(r), res(r2));
    }
    verdict(reached, "getxattr/setxattr toward the host secret: %s", results);
}

static void escape_dirfd_dotdot(void) {
    const char *secret = env("HOST_SECRET");
    int root = open("/", O_RDONLY | O_DIRECTORY);
    mkdir("/tmp/mv1", 0755);
    mkdir("/tmp/mv1/in", 0755);
    int in = open("/tmp/mv1/in", O_RDONLY | O_DIRECTORY);
    rename("/tmp/mv1", "/tmp/mv2");
    char path[4096];
    snprintf(path, sizeof path, "../../../../../..%s", secret);
    int a = openat(root, path, O_RDONLY), b = openat(in, path, O_RDONLY);
    int e = errno;
    check_secret(a, "openat(/, ../..)");
    check_secret(b, "openat(moved dir, ../..)");
    verdict(0, "openat(/ fd) %s, openat(moved dir fd) %s", a >= 0 ? "ok" : "failed",
            b >= 0 ? "ok" : strerrorname_np(e));
}

static void chroot_escape(void) {
    mkdir("/tmp/jail-c", 0755);
    int r = chroot("/tmp/jail-c");
    int e = errno;
    for (int i = 0; i < 30; i++) chdir("..");
    chroot(".");
    int fd = open(env("HOST_SECRET"), O_RDONLY);
    check_secret(fd, "chroot + chdir(..) escape");
    errno = e;
    verdict(0, "chroot: %s; secret after the classic escape: %s", res(r),
            fd >= 0 ? "opened (not the secret)" : "absent");
}

/* Inside a jail, with a descriptor of the old root and a cwd left outside: every way out
 * of the jail leads back to the container root, never above it. */
static void chroot_fd_escape(void) {
    const char *secret = env("HOST_SECRET");
    char path[4096], results[1024] = "";
    mkdir("/tmp/jail-f", 0755);
    mkdir("/tmp/jail-f/in", 0755);
    symlink("/", "/tmp/jail-f/in/root");
    symlink("../../../../../../..", "/tmp/jail-f/in/up");
    int old = open("/", O_RDONLY | O_DIRECTORY);
    int r = chroot("/tmp/jail-f");
    int e = errno;
    const char *rel[] = {"/../../../..", "/in/root/../..", "/in/up/../..", "tmp/../../../.."};
    int fds[8], n = 0;
    for (int i = 0; i < 4; i++) {  /* cwd still the container root for the last */
        snprintf(path, sizeof path, "%s%s", rel[i], secret);
        fds[n++] = open(path, O_RDONLY);
    }
    snprintf(path, sizeof path, "../../../../../..%s", secret);
    fds[n++] = openat(old, path, O_RDONLY);
    chdir("/");
    fds[n++] = open(path, O_RDONLY);  /* from inside the jail */
    fchdir(old);
    for (int i = 0; i < 30; i++) chdir("..");
    chroot(".");
    fds[n++] = open(secret, O_RDONLY);
    snprintf(path, sizeof path, "/proc/self/root/../../..%s", secret);
    fds[n++] = open(path, O_RDONLY);
    for (int i = 0; i < n; i++) {
        check_secret(fds[i], "a way out of a chroot");
        size_t len = strlen(results);
        snprintf(results + len, sizeof results - len, "%s%s", i ? " " : "",
                 fds[i] >= 0 ? "opened" : "failed");
    }
    errno = e;
    verdict(0, "chroot: %s; opens toward the secret: %s", res(r), results);
}

/* A jail at /proc, where the sentry's own links live: the root and cwd links of every
 * process, self, and fd links, followed from inside it. */
static void chroot_proc_links(void) {
    const char *secret = env("HOST_SECRET");
    char path[4096], results[1024] = "";
    int r = chroot("/proc");
    int e = errno;
    const char *p[] = {"/1/root/../../..", "/self/root/../../..", "/self/cwd/../../..",
                       "/thread-self/root/../..", "/self/fd/0/../../..", "/../../.."};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s%s", p[i], secret);
        int fd = open(path, O_RDONLY);
        check_secret(fd, path);
        size_t len = strlen(results);
        snprintf(results + len, sizeof results - len, "%s%s", i ? " " : "", res(fd));
    }
    errno = e;
    verdict(0, "chroot(/proc): %s; opens toward the secret: %s", res(r), results);
}

static void *swap_thread(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag))
        syscall(SYS_renameat2, AT_FDCWD, "/tmp/sw/d", AT_FDCWD, "/tmp/sw/l", 2 /* EXCHANGE */);
    return NULL;
}

static void race_symlink_swap(void) {
    mkdir("/tmp/sw", 0755);
    mkdir("/tmp/sw/d", 0755);
    symlink("/", "/tmp/sw/l");
    char path[4096];
    snprintf(path, sizeof path, "/tmp/sw/d/../../../../..%s", env("HOST_SECRET"));
    char path2[4096];
    snprintf(path2, sizeof path2, "/tmp/sw/d%s", env("HOST_SECRET"));
    pthread_t t;
    pthread_create(&t, NULL, swap_thread, NULL);
    int tries = 0, opened = 0;
    double end = now() + RACE_SECONDS;
    for (; tries < RACE_TRIES && now() < end; tries++) {
        int fd = open(tries & 1 ? path : path2, O_RDONLY);
        if (fd >= 0) {
            opened++;
            check_secret(fd, "a directory swapped with a symlink to /");
            close(fd);
        }
    }
    atomic_store(&stop_flag, 1);
    pthread_join(t, NULL);
    verdict(0, "host secret never read in %d tries (%d opens of something)", tries, opened);
}

static void *move_thread(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        rename("/tmp/mvr/a/b", "/tmp/mvr/b");
        rename("/tmp/mvr/b", "/tmp/mvr/a/b");
    }
    return NULL;
}

static void race_dotdot_rename(void) {
    mkdir("/tmp/mvr", 0755);
    mkdir("/tmp/mvr/a", 0755);
    mkdir("/tmp/mvr/a/b", 0755);
    mkdir("/tmp/mvr/a/b/c", 0755);
    char path[4096];
    snprintf(path, sizeof path, "/tmp/mvr/a/b/c/../../../../../../..%s", env("HOST_SECRET"));
    pthread_t t;
    pthread_create(&t, NULL, move_thread, NULL);
    int tries = 0;
    double end = now() + RACE_SECONDS;
    for (; tries < RACE_TRIES && now() < end; tries++) {
        int fd = open(path, O_RDONLY);
        check_secret(fd, "../ while a directory moves");
        if (fd >= 0) close(fd);
    }
    atomic_store(&stop_flag, 1);
    pthread_join(t, NULL);
    verdict(0, "host secret never read in %d tries", tries);
}

static void read_host_proc(void) {
    const char *init = env_rev("HOST_INIT_REV");
    const char *paths[] = {"/proc/1/cmdline", "/proc/1/environ", "/proc/self/root/proc/1/cmdline",
                           "/proc/1/root/proc/1/environ", "/proc/1/cwd/proc/1/cmdline",
                           "/proc/self/cwd/../../proc/1/environ", "/dev/fd/../1/cmdline",
                           "/proc/thread-self/../../1/environ"};
    char buf[8192];
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        ssize_t n = slurp(paths[i], buf, sizeof buf);
        for (ssize_t j = 0; j < n; j++)
            if (!buf[j]) buf[j] = ' ';
        if (n > 0 && *init && strstr(buf, init) && !strstr(buf, "attack"))
            verdict(1, "%s shows the host's init: %.60s", paths[i], buf);
    }
    verdict(0, "no alias of /proc/1 shows the host's init (%s)", init);
}

/* ------------------------------------------------------------------------ host leaks */
static void leak_pidfd_fdinfo(void) {
    int pfd = syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0) verdict(0, "pidfd_open: %s", res(-1));
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pfd);
    slurp(path, buf, sizeof buf);
    char *pid = strstr(buf, "\nPid:");
    char *nspid = strstr(buf, "\nNSpid:");
    long shown = pid ? atol(pid + 5) : -1;
    int levels = 0;
    if (nspid) {
        char *v = nspid + 7, *eol = strchr(v, '\n');
        for (char *e; v < eol; v = e) {
            strtol(v, &e, 10);
            if (e == v) break;
            levels++;
        }
    }
    verdict(shown != getpid() || levels > 1, "getpid %d, fdinfo Pid %ld, NSpid levels %d",
            getpid(), shown, levels);
}

static void leak_status_pids(void) {
    char buf[8192];
    slurp("/proc/self/status", buf, sizeof buf);
    const char *keys[] = {"\nPid:", "\nTgid:", "\nNSpid:", "\nNStgid:"};
    for (int i = 0; i < 4; i++) {
        char *p = strstr(buf, keys[i]);
        if (!p) continue;
        char *v = p + strlen(keys[i]);
        char *eol = strchr(v, '\n');
        long first = strtol(v, &v, 10);
        long more = eol && v < eol ? strtol(v, NULL, 10) : 0;
        if (first != getpid() || more)
            verdict(1, "%s %ld %ld but getpid() is %d", keys[i] + 1, first, more, getpid());
    }
    verdict(0, "Pid/Tgid/NSpid/NStgid all %d", getpid());
}

static void leak_mount_paths(void) {
    const char *bundle = env_rev("BUNDLE_REV");
    const char *files[] = {"/proc/self/mountinfo", "/proc/self/mounts", "/proc/mounts",
                           "/proc/1/mountinfo"};
    char buf[65536];
    for (int i = 0; i < 4; i++)
        if (slurp(files[i], buf, sizeof buf) > 0 && *bundle && strstr(buf, bundle))
            verdict(1, "%s names the host bundle %s", files[i], bundle);
    verdict(0, "no mount table names %s", bundle);
}

static void leak_mount_dev(void) {
    const char *dev = env("HOST_DEV");
    char buf[65536], needle[64];
    snprintf(needle, sizeof needle, " %s ", dev);
    slurp("/proc/self/mountinfo", buf, sizeof buf);
    verdict(*dev && strstr(buf, needle), "mountinfo %s the host device %s",
            strstr(buf, needle) ? "shows" : "does not show", dev);
}

static void leak_stat_dev(void) {
    struct stat st;
    stat("/", &st);
    char mine[64];
    snprintf(mine, sizeof mine, "%u:%u", major(st.st_dev), minor(st.st_dev));
    verdict(!strcmp(mine, env("HOST_DEV")), "stat(/) st_dev %s, host's %s", mine,
            env("HOST_DEV"));
}

static void leak_boottime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    char buf[128];
    slurp("/proc/uptime", buf, sizeof buf);
    double up = atof(buf);
    double diff = ts.tv_sec + ts.tv_nsec / 1e9 - up;
    verdict(diff > 3 || diff < -3, "CLOCK_BOOTTIME %ld s, /proc/uptime %.1f s", (long)ts.tv_sec,
            up);
}

static void leak_host_uptime(void) {
    double host = atof(env("HOST_UPTIME"));
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    char buf[128];
    slurp("/proc/uptime", buf, sizeof buf);
    struct sysinfo si = {0};
    sysinfo(&si);
    verdict(host > 30 && (ts.tv_sec >= host - 5 || atof(buf) >= host - 5 || si.uptime >= host - 5),
            "host up %.0f s; CLOCK_BOOTTIME %ld, /proc/uptime %.0f, sysinfo %ld", host,
            (long)ts.tv_sec, atof(buf), si.uptime);
}

static void leak_kernel_release(void) {
    const char *host = env("HOST_RELEASE");
    struct utsname u;
    uname(&u);
    char buf[4096] = "", buf2[256] = "";
    slurp("/proc/version", buf, sizeof buf);
    slurp("/proc/sys/kernel/osrelease", buf2, sizeof buf2);
    verdict(*host && (strstr(u.release, host) || strstr(buf, host) || strstr(buf2, host)),
            "uname %s; /proc/version %.40s", u.release, buf);
}

static void scan_for(const char *dir, const char *needle, int depth) {
    DIR *d = opendir(dir);
    if (!d || depth > 2) {
        if (d) closedir(d);
        return;
    }
    struct dirent *de;
    char path[512], buf[65536];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            if (strstr(buf, needle)) verdict(1, "%s -> %s", path, buf);
            continue;
        }
        struct stat st;
        if (lstat(path, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (strcmp(de->d_name, "task") && strcmp(de->d_name, "sys")) scan_for(path, needle, depth + 1);
            continue;
        }
        if (!strcmp(de->d_name, "kcore") || !strcmp(de->d_name, "kmsg")) continue;
        n = slurp(path, buf, sizeof buf);
        for (ssize_t j = 0; j < n; j++)
            if (!buf[j]) buf[j] = ' ';
        if (n > 0 && strstr(buf, needle)) verdict(1, "%s contains %s", path, needle);
    }
    closedir(d);
}

static void leak_proc_host_paths(void) {
    const char *bundle = env_rev("BUNDLE_REV");
    int fd = open("/bin/attack", O_RDONLY);  /* an open file for fd/ and maps */
    (void)fd;
    char self[64];
    snprintf(self, sizeof self, "/proc/%d", getpid());
    if (*bundle) {
        scan_for(self, bundle, 0);
        scan_for("/proc/self/fdinfo", bundle, 0);
    }
    verdict(0, "nothing under %s names %s", self, bundle);
}

static void leak_cgroup_path(void) {
    char buf[4096];
    slurp("/proc/self/cgroup", buf, sizeof buf);
    for (char *line = buf; *line;) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        char *path = strchr(line, ':');
        path = path ? strchr(path + 1, ':') : NULL;
        if (path && strcmp(path + 1, "/")) verdict(1, "/proc/self/cgroup: %.100s", line);
        if (!eol) break;
        line = eol + 1;
    }
    verdict(0, "/proc/self/cgroup paths are all /");
}

/* -------------------------------------------------------------------- openat2 RESOLVE */
static long o2(int dirfd, const char *path, unsigned long long resolve) {
    struct open_how how = {.flags = O_RDONLY, .resolve = resolve};
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int jail(void) {
    mkdir("/tmp/jail", 0755);
    mkdir("/tmp/jail/sub", 0755);
    write_file("/tmp/jail/sub/f", "f", 0644);
    symlink("/bin/busybox", "/tmp/jail/abs");
    symlink("sub/f", "/tmp/jail/rel");
    symlink("../../bin/busybox", "/tmp/jail/up");
    return open("/tmp/jail", O_RDONLY | O_DIRECTORY);
}

static void expect_errno(long r, int want, const char *what) {
    int e = errno;
    verdict(!(r < 0 && e == want), "%s: %s (Linux: %s)", what, r < 0 ? strerrorname_np(e) : "opened",
            strerrorname_np(want));
}

static void openat2_beneath_dotdot(void) {
    expect_errno(o2(jail(), "sub/../../bin/busybox", RESOLVE_BENEATH), EXDEV,
                 "RESOLVE_BENEATH sub/../../bin/busybox");
}
static void openat2_beneath_symlink(void) {
    int j = jail();
    long ok = o2(j, "rel", RESOLVE_BENEATH);
    if (ok < 0) verdict(1, "RESOLVE_BENEATH refused an inner symlink: %s", res(ok));
    expect_errno(o2(j, "abs", RESOLVE_BENEATH), EXDEV, "RESOLVE_BENEATH via absolute symlink");
}
static void openat2_beneath_up_symlink(void) {
    expect_errno(o2(jail(), "up", RESOLVE_BENEATH), EXDEV, "RESOLVE_BENEATH via ../.. symlink");
}
static void openat2_in_root(void) {
    int j = jail();
    long r = o2(j, "up", RESOLVE_IN_ROOT);  /* ../../bin/busybox inside the jail */
    int e = errno;
    long r2 = o2(j, "/sub/f", RESOLVE_IN_ROOT);
    if (r2 < 0) verdict(1, "RESOLVE_IN_ROOT /sub/f: %s (Linux opens it)", res(r2));
    errno = e;
    expect_errno(r, ENOENT, "RESOLVE_IN_ROOT ../../bin/busybox");
}
static void openat2_no_symlinks(void) {
    expect_errno(o2(jail(), "rel", RESOLVE_NO_SYMLINKS), ELOOP, "RESOLVE_NO_SYMLINKS rel");
}
static void openat2_no_xdev(void) {
    int root = open("/", O_RDONLY | O_DIRECTORY);
    expect_errno(o2(root, "proc/self/status", RESOLVE_NO_XDEV), EXDEV,
                 "RESOLVE_NO_XDEV / -> proc");
}
static void openat2_no_magiclinks(void) {
    int fd = open("/bin/attack", O_RDONLY);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    expect_errno(o2(AT_FDCWD, path, RESOLVE_NO_MAGICLINKS), ELOOP,
                 "RESOLVE_NO_MAGICLINKS /proc/self/fd/N");
}
static void openat2_unknown_resolve(void) {
    expect_errno(o2(AT_FDCWD, "/tmp", 1ULL << 40), EINVAL, "unknown RESOLVE bit");
}

/* ------------------------------------------------------------------ processes, signals */
static volatile long victim_word = 1234;

static pid_t sibling(void) {
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) pause();
    }
    usleep(20000);
    return pid;
}

/* ptrace between the sandbox's own processes is allowed, as on Linux (README, Security:
 * "ptrace inside the sandbox"). These try to use it to get past the filter or the
 * sandbox. */
#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif

static void ptrace_suspend_seccomp(void) {
    pid_t s = sibling();
    long r = ptrace(PTRACE_SEIZE, s, 0, PTRACE_O_SUSPEND_SECCOMP);
    int e = errno;
    long r2 = -1;
    int e2 = 0;
    if (r && !ptrace(PTRACE_SEIZE, s, 0, 0)) {  /* seized plainly, stopped, the option */
        ptrace(PTRACE_INTERRUPT, s, 0, 0);
        waitpid(s, NULL, 0);
        r2 = ptrace(PTRACE_SETOPTIONS, s, 0, PTRACE_O_SUSPEND_SECCOMP);
        e2 = errno;
    }
    kill(s, SIGKILL);
    verdict(r == 0 || r2 == 0, "SEIZE with PTRACE_O_SUSPEND_SECCOMP: %s; SETOPTIONS: %s",
            r ? strerrorname_np(e) : "ok", r2 ? strerrorname_np(e2) : "ok");
}

static const char rw_src[] = "none", rw_dst[] = "/tmp/ptrace-mnt", rw_type[] = "tmpfs";
static char rw_path[4096];

static void call_getppid_and_report(void) {
    long r = syscall(SYS_getppid);
    _exit(r < 0 ? 100 + errno : (r > 99 ? 99 : (int)r));
}

/* A traced child's getppid() turned, at its syscall-entry stop, into mount() or
 * openat(path); the rewritten call's result. */
static long rewrite_child_call(int into) {
    pid_t pid = fork();
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0)) _exit(90);
        raise(SIGSTOP);
        call_getppid_and_report();
    }
    int st;
    struct user_regs_struct r;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 100; i++) {
        ptrace(PTRACE_SYSCALL, pid, 0, 0);
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st)) return -1000;
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        if (r.orig_rax == SYS_getppid) break;
        ptrace(PTRACE_SYSCALL, pid, 0, 0);
        waitpid(pid, &st, 0);
    }
    r.orig_rax = into;
    if (into == SYS_mount) {
        r.rdi = (unsigned long)rw_src, r.rsi = (unsigned long)rw_dst;
        r.rdx = (unsigned long)rw_type, r.r10 = 0, r.r8 = 0;
    } else {
        r.rdi = (unsigned long)AT_FDCWD, r.rsi = (unsigned long)rw_path, r.rdx = O_RDONLY;
    }
    ptrace(PTRACE_SETREGS, pid, 0, &r);
    ptrace(PTRACE_SYSCALL, pid, 0, 0);
    waitpid(pid, &st, 0);
    ptrace(PTRACE_GETREGS, pid, 0, &r);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return (long)r.rax;
}

static void ptrace_rewrite_mount(void) {
    mkdir(rw_dst, 0755);
    long r = rewrite_child_call(SYS_mount);
    verdict(r == 0, "getppid rewritten to mount(tmpfs) at its entry stop: %s",
            r == 0 ? "mounted" : r == -1000 ? "no stop" : strerrorname_np(-r));
}

static void ptrace_rewrite_open_host(void) {
    snprintf(rw_path, sizeof rw_path, "%s", env("HOST_SECRET"));
    long r = rewrite_child_call(SYS_openat);
    verdict(r >= 0, "getppid rewritten to openat(HOST_SECRET) at its entry stop: %s",
            r >= 0 ? "opened" : r == -1000 ? "no stop" : strerrorname_np(-r));
}

/* Every pid that can be seized must be one of the container's: its environment has
 * the run's marker (the runtime's own processes, an exec's set-up, have not). */
static void ptrace_outside(void) {
    const char *marker = env("SEC_RUN");
    int seized = 0, foreign = 0, first = 0;
    for (pid_t p = 1; p < 70000; p++) {
        if (p == getpid()) continue;
        if (ptrace(PTRACE_SEIZE, p, 0, 0)) continue;
        seized++;
        char path[64], buf[65536];
        snprintf(path, sizeof path, "/proc/%d/environ", p);
        ssize_t n = slurp(path, buf, sizeof buf);
        int ours = 0;
        for (ssize_t i = 0; n > 0 && i < n; i += strlen(buf + i) + 1)
            if (!strncmp(buf + i, "SEC_RUN=", 8) && !strcmp(buf + i + 8, marker)) ours = 1;
        if (!ours && !foreign++) first = p;
        ptrace(PTRACE_DETACH, p, 0, 0);
    }
    verdict(foreign > 0, "%d pids seized, %d not the container's (first %d)", seized,
            foreign, first);
}

static void pidfd_getfd_sibling(void) {
    pid_t s = sibling();
    int pfd = syscall(SYS_pidfd_open, s, 0);
    long r = pfd >= 0 ? syscall(SYS_pidfd_getfd, pfd, 1, 0) : -1;
    int e = errno;
    long k = syscall(SYS_kcmp, getpid(), s, 0 /* KCMP_FILE */, 1, 1);
    int ke = errno;
    kill(s, SIGKILL);
    errno = e;
    verdict(r >= 0 || k >= 0, "pidfd_getfd of a sibling's fd: %s; kcmp: %s", res(r),
            k < 0 ? strerrorname_np(ke) : "ok");
}

static void signal_scan(void) {
    /* Every pid that answers kill(0) must be ours: init (1), us, our parent. */
    int found = 0, first = 0;
    for (int pid = 1; pid < 70000; pid++) {
        if (pid == getpid() || pid == getppid() || pid == 1) continue;
        if (kill(pid, 0) == 0 || errno == EPERM) {
            if (!found++) first = pid;
        }
    }
    int pfd = syscall(SYS_pidfd_open, 70000 + 1, 0);
    (void)pfd;
    verdict(found, "%d foreign pids answer kill(pid, 0) (first %d)", found, first);
}

static void kill_all(void) {
    signal(SIGUSR1, SIG_IGN);  /* this process survives; the sibling (default action) not */
    pid_t s = fork();
    if (s == 0) {
        signal(SIGUSR1, SIG_DFL);
        for (;;) pause();
    }
    usleep(20000);
    pid_t killer = fork();
    if (killer == 0) {
        kill(-1, SIGUSR1);
        _exit(0);
    }
    int st;
    waitpid(killer, &st, 0);
    usleep(50000);
    int sib = waitpid(s, &st, WNOHANG) == s;
    int alive = sandbox_answers();
    verdict(!alive, "kill(-1, SIGUSR1) from inside: sibling %s; sandbox %s",
            sib ? "killed" : "survived", alive ? "answers" : "stuck or dead");
}

static void mount_calls(void) {
    mkdir("/tmp/mnt", 0755);
    int r1 = mount("none", "/tmp/mnt", "tmpfs", 0, NULL);
    int e1 = errno;
    int r2 = mount("/", "/tmp/mnt", NULL, MS_BIND | MS_REC, NULL);
    int e2 = errno;
    int r3 = mount("proc", "/tmp/mnt", "proc", 0, NULL);
    int e3 = errno;
    verdict(!r1 || !r2 || !r3, "mount tmpfs %s, bind / %s, proc %s",
            r1 ? strerrorname_np(e1) : "ok", r2 ? strerrorname_np(e2) : "ok",
            r3 ? strerrorname_np(e3) : "ok");
}

static void umount_calls(void) {
    int r1 = umount2("/proc", MNT_DETACH);
    int e1 = errno;
    int r2 = umount2("/", MNT_DETACH);
    int e2 = errno;
    verdict(!r1 || !r2, "umount /proc %s, / %s", r1 ? strerrorname_np(e1) : "ok",
            r2 ? strerrorname_np(e2) : "ok");
}

static void pivot_root_call(void) {
    mkdir("/tmp/pr", 0755);
    long r = syscall(SYS_pivot_root, "/tmp", "/tmp/pr");
    verdict(r == 0, "pivot_root: %s", res(r));
}

static void unshare_userns(void) {
    int r = unshare(CLONE_NEWUSER);
    int e = errno;
    int r2 = unshare(CLONE_NEWNS);
    errno = e;
    verdict(r == 0 || r2 == 0, "unshare(CLONE_NEWUSER) %s, unshare(CLONE_NEWNS) %s", res(r),
            r2 ? strerrorname_np(e) : "ok");
}

static void setns_call(void) {
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    long r = setns(fd >= 0 ? fd : 0, 0);
    verdict(r == 0, "open /proc/1/ns/mnt %s; setns %s", fd >= 0 ? "ok" : "failed", res(r));
}

static void clone_newuser(void) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    int e = errno;
    if (r > 0) waitpid(r, NULL, 0);
    errno = e;
    verdict(r > 0, "clone(CLONE_NEWUSER|CLONE_NEWNS): %s", res(r));
}

/* ------------------------------------------------------------------- kernel surface */
static void x32_syscall(void) {
    struct utsname u;
    long r = syscall(0x40000000 | 63, &u);  /* x32 uname */
    verdict(r == 0, "x32 uname: %s%s%s", res(r), r == 0 ? " release " : "", r == 0 ? u.release : "");
}

static void int80_syscall(void) {
    char *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                     -1, 0);
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(122L), "b"(buf) : "memory");  /* i386 uname */
    long r2;
    __asm__ volatile("int $0x80" : "=a"(r2) : "a"(20L) : "memory");  /* i386 getpid */
    verdict(r == 0, "int 0x80 uname: %ld%s%.64s; getpid: %ld", r, r == 0 ? " release " : "",
            r == 0 ? buf + 130 : "", r2);
}

static void tiocsti(void) {
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    long r = -1;
    int e = ENODEV;
    if (m >= 0) {
        grantpt(m);
        unlockpt(m);
        int s = open(ptsname(m), O_RDWR | O_NOCTTY);
        char c = 'x';
        r = ioctl(s >= 0 ? s : m, TIOCSTI, &c);
        e = errno;
    }
    char c = 'x';
    long r0 = ioctl(0, TIOCSTI, &c);
    errno = e;
    verdict(r == 0 || r0 == 0, "TIOCSTI on a pty: %s; on stdin: %s", res(r), r0 ? "failed" : "ok");
}

static void io_uring(void) {
    char params[120] = {0};
    long r = syscall(425, 8, params);
    verdict(r >= 0, "io_uring_setup: %s", res(r));
}

static void bpf_call(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long r = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    verdict(r >= 0, "bpf(BPF_MAP_CREATE): %s", res(r));
}

static void keyctl_call(void) {
    long r = syscall(SYS_add_key, "user", "k", "v", 1, -3 /* session */);
    int e = errno;
    long r2 = syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
    errno = e;
    verdict(r >= 0 || r2 >= 0, "add_key: %s; keyctl: %s", res(r), r2 >= 0 ? "ok" : "failed");
}

static void userfaultfd_call(void) {
    long r = syscall(SYS_userfaultfd, O_CLOEXEC);
    verdict(r >= 0, "userfaultfd: %s", res(r));
}

static void perf_event(void) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    long r = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    verdict(r >= 0, "perf_event_open: %s", res(r));
}

static void open_by_handle(void) {
    struct { unsigned int bytes; int type; unsigned char h[128]; } fh = {128, 1, {2, 0}};
    long r = syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY);
    verdict(r >= 0, "open_by_handle_at (the shocker escape): %s", res(r));
}

static void kexec(void) {
    long r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    int e = errno;
    long r2 = syscall(SYS_kexec_file_load, -1, -1, 0, "", 2);
    errno = e;
    verdict(r == 0 || r2 == 0, "kexec_load: %s", res(r));
}

static void module_load(void) {
    long r = syscall(SYS_init_module, "", 0, "");
    int e = errno;
    long r2 = syscall(SYS_finit_module, 0, "", 0);
    long r3 = syscall(SYS_delete_module, "nonexistent", 0);
    errno = e;
    verdict(r == 0 || r2 == 0 || r3 == 0, "init_module: %s", res(r));
}

static void vsock(void) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    verdict(s >= 0, "socket(AF_VSOCK): %s", res(s));
}

static void personality_odd(void) {
    int r = personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE);
    int now_p = personality(0xffffffff);
    int e = errno;
    personality(0);
    errno = e;
    verdict(r >= 0 && (now_p & (READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE)),
            "personality(READ_IMPLIES_EXEC|ADDR_NO_RANDOMIZE): %s (now %#x)", res(r), now_p);
}

static void syslog_read(void) {
    char buf[256];
    long r = syscall(SYS_syslog, 3 /* READ_ALL */, buf, sizeof buf);
    verdict(r > 0, "syslog(READ_ALL): %s", res(r));
}

static void iopl_call(void) {
    long r = syscall(SYS_iopl, 3);
    int e = errno;
    long r2 = syscall(SYS_ioperm, 0x60, 8, 1);
    errno = e;
    verdict(r == 0 || r2 == 0, "iopl(3): %s, ioperm: %s", res(r), r2 ? "failed" : "ok");
}

static void mknod_devices(int blk) {
    unsigned int devs[][2] = {{8, 0}, {253, 0}, {254, 0}, {259, 0}, {7, 0}};
    unsigned int chrs[][2] = {{1, 1}, {1, 2}, {1, 4}, {10, 237}, {4, 1}};
    char opened[256] = "";
    int made = 0;
    for (int i = 0; i < 5; i++) {
        unsigned int *d = blk ? devs[i] : chrs[i];
        char path[64];
        snprintf(path, sizeof path, "/tmp/dev-%u-%u", d[0], d[1]);
        unlink(path);
        if (mknod(path, (blk ? S_IFBLK : S_IFCHR) | 0600, makedev(d[0], d[1])) == 0) made++;
        int fd = open(path, O_RDONLY);
        char buf[16];
        if (fd >= 0 && read(fd, buf, sizeof buf) >= 0) {
            size_t len = strlen(opened);
            snprintf(opened + len, sizeof opened - len, " %u:%u", d[0], d[1]);
        }
        if (fd >= 0) close(fd);
    }
    verdict(opened[0] != 0, "%d nodes made; read from:%s", made, opened[0] ? opened : " none");
}

static void mknod_block(void) { mknod_devices(1); }
static void mknod_char(void) { mknod_devices(0); }

static void alive(void) {
    int ok = sandbox_answers();
    verdict(!ok, "trapped calls %s", ok ? "answered" : "not answered");
}

struct attack {
    const char *name;
    void (*fn)(void);
    int seconds;
};

#define A(name, secs) {#name, name, secs}
static const struct attack attacks[] = {
    A(proc_create_file, 5), A(proc_mkdir, 5), A(proc_symlink_version, 5),
    A(proc_symlink_uptime, 5), A(proc_symlink_environ, 5), A(sys_symlink_online, 5),
    A(proc_mkfifo_uptime, 10), A(proc_mknod, 5), A(proc_unlink, 5), A(proc_rename, 5),
    A(proc_chmod, 5), A(proc_chown, 5), A(proc_utimes, 5), A(proc_write_version, 5),
    A(proc_link, 5), A(proc_deep_tree, 20), A(proc_sys_write, 5), A(proc_sysrq_trigger, 5),
    A(proc_kcore, 5), A(sys_create_file, 5), A(sys_write, 5),
    A(fifo_reader_hang, 10), A(fifo_writer_hang, 10), A(fifo_pair, 8), A(mknod_overflow, 8),
    A(garbage_args, 8), A(bad_pointers, 8), A(deep_tmp_tree, 20),
    A(fdreopen_trunc, 5), A(fdreopen_rdwr, 5), A(fdreopen_wronly, 5), A(devfd_reopen_trunc, 5),
    A(procpid_fd_reopen, 5), A(fdreopen_dup2_race, 8), A(thread_creds, 8),
    A(race_chmod_empty_path, 8), A(race_chown_empty_path, 8), A(race_utimensat_empty_path, 8),
    A(race_access_empty_path, 8), A(race_stat_empty_path, 8), A(race_readlinkat_empty_path, 8),
    A(race_chdir_proc_self, 8), A(race_execve_proc_self_exe, 10),
    A(race_fchdir_dup2, 8), A(race_symlink_swap, 8), A(race_dotdot_rename, 8),
    A(escape_dotdot, 5), A(escape_proc_links, 5), A(escape_abs_symlink, 5),
    A(escape_dirfd_dotdot, 5), A(unix_bind_escape, 5), A(xattr_escape, 5), A(chroot_escape, 5),
    A(chroot_fd_escape, 5), A(chroot_proc_links, 5), A(read_host_proc, 5),
    A(leak_pidfd_fdinfo, 5), A(leak_status_pids, 5), A(leak_mount_paths, 5),
    A(leak_mount_dev, 5), A(leak_stat_dev, 5), A(leak_boottime, 5), A(leak_host_uptime, 5),
    A(leak_kernel_release, 5), A(leak_proc_host_paths, 10), A(leak_cgroup_path, 5),
    A(openat2_beneath_dotdot, 5), A(openat2_beneath_symlink, 5),
    A(openat2_beneath_up_symlink, 5), A(openat2_in_root, 5), A(openat2_no_symlinks, 5),
    A(openat2_no_xdev, 5), A(openat2_no_magiclinks, 5), A(openat2_unknown_resolve, 5),
    A(ptrace_suspend_seccomp, 5), A(ptrace_rewrite_mount, 5), A(ptrace_rewrite_open_host, 5),
    A(ptrace_outside, 20),
    A(pidfd_getfd_sibling, 5), A(signal_scan, 20), A(kill_all, 8), A(mount_calls, 5),
    A(umount_calls, 5), A(pivot_root_call, 5), A(unshare_userns, 5), A(setns_call, 5),
    A(clone_newuser, 5), A(x32_syscall, 5), A(int80_syscall, 5), A(tiocsti, 5),
    A(io_uring, 5), A(bpf_call, 5), A(keyctl_call, 5), A(userfaultfd_call, 5),
    A(perf_event, 5), A(open_by_handle, 5), A(kexec, 5), A(module_load, 5), A(vsock, 5),
    A(personality_odd, 5), A(syslog_read, 5), A(iopl_call, 5), A(mknod_block, 5),
    A(mknod_char, 5), A(alive, 5),
};
#define N_ATTACKS (sizeof attacks / sizeof attacks[0])

static void run_one(const struct attack *a) {
    current = a->name;
    int p[2];
    if (pipe(p)) return;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        close(p[0]);
        dup2(p[1], 1);
        close(p[1]);
        atomic_store(&stop_flag, 0);
        a->fn();
        printf("%s: CRASHED returned without a verdict\n", a->name);
        fflush(stdout);
        _exit(1);
    }
    close(p[1]);
    setpgid(pid, pid);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    char out[8192];
    size_t n = 0;
    int status = 0, done = 0;
    double end = now() + a->seconds;
    while (now() < end) {
        ssize_t r;
        while ((r = read(p[0], out + n, sizeof out - 1 - n)) > 0) n += r;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            done = 1;
            break;
        }
        usleep(5000);
    }
    kill(-pid, SIGKILL);  /* the attack's whole group: helpers it left behind */
    if (!done) waitpid(pid, &status, 0);
    ssize_t r;
    while ((r = read(p[0], out + n, sizeof out - 1 - n)) > 0) n += r;
    close(p[0]);
    out[n] = 0;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: ", a->name);
    char *line = strstr(out, prefix);
    if (line) {
        char *eol = strchr(line, '\n');
        printf("%.*s\n", eol ? (int)(eol - line) : (int)strlen(line), line);
    } else if (!done) {
        printf("%s: HUNG no verdict within %d s\n", a->name, a->seconds);
    } else if (WIFSIGNALED(status)) {
        printf("%s: CRASHED killed by signal %d\n", a->name, WTERMSIG(status));
    } else {
        printf("%s: CRASHED exit %d without a verdict\n", a->name, WEXITSTATUS(status));
    }
    fflush(stdout);
    /* Orphans of the attack are reparented to us (init): reap them all, so that the next
     * attack sees no leftover pids. */
    double reap_end = now() + 2;
    while (now() < reap_end) {
        pid_t w = waitpid(-1, NULL, WNOHANG);
        if (w < 0) break;
        if (w == 0) usleep(5000);
    }
    if (!line || !strstr(line, ": BLOCKED") ) {
        if (!sandbox_answers()) {
            printf("__wedged__: after %s\n", a->name);
            fflush(stdout);
            _exit(3);
        }
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && !strcmp(argv[1], "__whoami")) {
        printf("attack\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "list")) {
        for (size_t i = 0; i < N_ATTACKS; i++) printf("%s\n", attacks[i].name);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        size_t j = 0;
        while (j < N_ATTACKS && strcmp(attacks[j].name, argv[i])) j++;
        if (j == N_ATTACKS) {
            printf("%s: CRASHED no such attack\n", argv[i]);
            continue;
        }
        run_one(&attacks[j]);
    }
    return 0;
}
