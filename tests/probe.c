/* A small syscall interpreter for tests: each operation (from argv, or one per line on
 * stdin with "-") runs one syscall and prints "op: result", the result being a value or
 * the errno name. Built static by the test fixtures and run natively and in sandboxes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <sys/resource.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flag_names.h"

static long parse_flags(const char *s) {
    static const struct flag_name names[] = {
        {"rdonly", O_RDONLY}, {"wronly", O_WRONLY}, {"rdwr", O_RDWR}, {"creat", O_CREAT},
        {"excl", O_EXCL}, {"trunc", O_TRUNC}, {"append", O_APPEND},
        {"directory", O_DIRECTORY}, {"nofollow", O_NOFOLLOW}, {"path", O_PATH},
        {"cloexec", O_CLOEXEC}, {"nonblock", O_NONBLOCK}, {"tmpfile", O_TMPFILE},
        {"beneath", RESOLVE_BENEATH}, {"in_root", RESOLVE_IN_ROOT},
        {"no_symlinks", RESOLVE_NO_SYMLINKS}, {"no_magiclinks", RESOLVE_NO_MAGICLINKS},
    };
    return flags_from_names(s, names, sizeof names / sizeof names[0]);
}

static void result(const char *op, long r) {
    if (r < 0) printf("%s: %s\n", op, strerrorname_np(errno));
    else printf("%s: %ld\n", op, r);
}

static const char *ftype(mode_t m) {
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" :
           S_ISCHR(m) ? "chr" : S_ISBLK(m) ? "blk" : S_ISFIFO(m) ? "fifo" : "sock";
}

static volatile sig_atomic_t xfsz_count;
static void count_xfsz(int sig) { (void)sig; xfsz_count++; }

static void caught(int sig) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "caught %d\n", sig);
    write(1, msg, n);
    _exit(0);
}

/* Runs one operation; returns the number of arguments it consumed. */
static int run(char **a, int n) {
    const char *op = a[0];
#define NEED(k) if (n < (k) + 1) { printf("%s: missing arguments\n", op); return n - 1; }
    if (!strcmp(op, "open")) { NEED(3) result(op, open(a[1], parse_flags(a[2]), strtol(a[3], 0, 8))); return 3; }
    if (!strcmp(op, "openat")) { NEED(4) result(op, openat(atoi(a[1]), a[2], parse_flags(a[3]), strtol(a[4], 0, 8))); return 4; }
    if (!strcmp(op, "openat2")) {
        NEED(4) struct open_how how = {.flags = parse_flags(a[3]), .resolve = parse_flags(a[4])};
        result(op, syscall(SYS_openat2, atoi(a[1]), a[2], &how, sizeof how)); return 4;
    }
    if (!strcmp(op, "creat")) { NEED(2) result(op, creat(a[1], strtol(a[2], 0, 8))); return 2; }
    if (!strcmp(op, "close")) { NEED(1) result(op, close(atoi(a[1]))); return 1; }
    if (!strcmp(op, "read")) {
        NEED(2) char buf[65536]; long want = atol(a[2]);
        if (want > (long)sizeof buf) want = sizeof buf;
        long r = read(atoi(a[1]), buf, want);
        if (r < 0) result(op, r); else printf("read: %ld %.*s\n", r, (int)r, buf);
        return 2;
    }
    if (!strcmp(op, "write")) { NEED(2) result(op, write(atoi(a[1]), a[2], strlen(a[2]))); return 2; }
    if (!strcmp(op, "stat") || !strcmp(op, "lstat")) {
        NEED(1) struct stat st;
        int r = op[0] == 's' ? stat(a[1], &st) : lstat(a[1], &st);
        if (r < 0) result(op, r);
        else printf("%s: %s %o %lld %ld\n", op, ftype(st.st_mode), st.st_mode & 07777,
                    (long long)st.st_size, (long)st.st_nlink);
        return 1;
    }
    if (!strcmp(op, "readlink")) {
        NEED(1) char buf[4096]; long r = readlink(a[1], buf, sizeof buf);
        if (r < 0) result(op, r); else printf("readlink: %.*s\n", (int)r, buf);
        return 1;
    }
    if (!strcmp(op, "readlinkat")) {
        NEED(2) char buf[4096]; long r = readlinkat(atoi(a[1]), a[2], buf, sizeof buf);
        if (r < 0) result(op, r); else printf("readlinkat: %.*s\n", (int)r, buf);
        return 2;
    }
    if (!strcmp(op, "ls")) {
        NEED(1) DIR *d = opendir(a[1]);
        if (!d) { result(op, -1); return 1; }
        printf("ls:");
        for (struct dirent *e; (e = readdir(d));) printf(" %s", e->d_name);
        printf("\n"); closedir(d); return 1;
    }
    if (!strcmp(op, "mkdir")) { NEED(2) result(op, mkdir(a[1], strtol(a[2], 0, 8))); return 2; }
    if (!strcmp(op, "rmdir")) { NEED(1) result(op, rmdir(a[1])); return 1; }
    if (!strcmp(op, "unlink")) { NEED(1) result(op, unlink(a[1])); return 1; }
    if (!strcmp(op, "rename")) { NEED(2) result(op, rename(a[1], a[2])); return 2; }
    if (!strcmp(op, "renameat")) { NEED(4) result(op, renameat(atoi(a[1]), a[2], atoi(a[3]), a[4])); return 4; }
    if (!strcmp(op, "symlink")) { NEED(2) result(op, symlink(a[1], a[2])); return 2; }
    if (!strcmp(op, "link")) { NEED(2) result(op, link(a[1], a[2])); return 2; }
    if (!strcmp(op, "chmod")) { NEED(2) result(op, chmod(a[1], strtol(a[2], 0, 8))); return 2; }
    if (!strcmp(op, "truncate")) { NEED(2) result(op, truncate(a[1], atol(a[2]))); return 2; }
    if (!strcmp(op, "fcap")) {  /* file capabilities: cap_net_raw+ep (VFS_CAP_REVISION_2) */
        NEED(1) unsigned int cap[5] = {0x02000001, 1u << 13, 0, 0, 0};
        result(op, setxattr(a[1], "security.capability", cap, sizeof cap, 0)); return 1;
    }
    if (!strcmp(op, "fcap_get")) {
        NEED(1) unsigned char buf[64];
        ssize_t n = getxattr(a[1], "security.capability", buf, sizeof buf);
        if (n < 0) { result(op, -1); return 1; }
        printf("%s: ", op);
        for (ssize_t i = 0; i < n; i++) printf("%02x", buf[i]);
        printf("\n"); return 1;
    }
    if (!strcmp(op, "sysfs_count")) { result(op, syscall(SYS_sysfs, 3)); return 0; }
    if (!strcmp(op, "sysfs_index")) { NEED(1) result(op, syscall(SYS_sysfs, 1, a[1])); return 1; }
    if (!strcmp(op, "sysfs_name")) {  /* the name at index a[1] (option 2) */
        NEED(1) char name[256] = {0};
        long r = syscall(SYS_sysfs, 2, atol(a[1]), name);
        if (r < 0) result(op, r); else printf("%s: %s\n", op, name);
        return 1;
    }
    if (!strcmp(op, "sysfs_option")) { NEED(1) result(op, syscall(SYS_sysfs, atoi(a[1]), 0, 0)); return 1; }
    if (!strcmp(op, "fsize")) {  /* RLIMIT_FSIZE, soft and hard */
        NEED(1) struct rlimit rl = {atol(a[1]), atol(a[1])};
        result(op, setrlimit(RLIMIT_FSIZE, &rl)); return 1;
    }
    if (!strcmp(op, "xfsz_catch")) {  /* count SIGXFSZ in a handler (no SA_RESTART) */
        struct sigaction sa = {.sa_handler = count_xfsz};
        result(op, sigaction(SIGXFSZ, &sa, NULL)); return 0;
    }
    if (!strcmp(op, "xfsz_count")) {  /* the count, once it is not 0 (up to 2 s) */
        for (int i = 0; i < 200 && !xfsz_count; i++) usleep(10000);
        printf("%s: %d\n", op, (int)xfsz_count); return 0;
    }
    if (!strcmp(op, "access")) { NEED(2) result(op, access(a[1], atoi(a[2]))); return 2; }
    if (!strcmp(op, "chdir")) { NEED(1) result(op, chdir(a[1])); return 1; }
    if (!strcmp(op, "fchdir")) { NEED(1) result(op, fchdir(atoi(a[1]))); return 1; }
    if (!strcmp(op, "chroot")) { NEED(1) result(op, chroot(a[1])); return 1; }
    if (!strcmp(op, "getcwd")) {
        char buf[4096];
        if (!getcwd(buf, sizeof buf)) result(op, -1); else printf("getcwd: %s\n", buf);
        return 0;
    }
    if (!strcmp(op, "mknod")) { NEED(2) result(op, mknod(a[1], strtol(a[2], 0, 8), makedev(1, 3))); return 2; }
    if (!strcmp(op, "mount")) { NEED(3) result(op, mount(a[1], a[2], a[3], 0, NULL)); return 3; }
    if (!strcmp(op, "kexec_load")) { result(op, syscall(SYS_kexec_load, 0, 0, 0, 0)); return 0; }
    if (!strcmp(op, "unshare")) { result(op, unshare(CLONE_NEWNS)); return 0; }
    /* unshare_flags HEX: unshare with those flags (64 bits, as the register holds them) */
    if (!strcmp(op, "unshare_flags")) { NEED(1) result(op, syscall(SYS_unshare, strtoul(a[1], 0, 16))); return 1; }
    /* sub W: the next W words are operations run in a child (its chroot, cwd, fds are
     * its own); the parent waits for it, then goes on after them */
    if (!strcmp(op, "sub")) {
        NEED(1) int w = atoi(a[1]);
        if (w > n - 2) w = n - 2;
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) {
            for (int i = 0; i < w; i++) i += run(a + 2 + i, w - i);
            fflush(stdout); _exit(0);
        }
        int st; if (c > 0) waitpid(c, &st, 0);
        printf("sub: %s\n", c < 0 ? "fork failed" : "done");
        return w + 1;
    }
    /* fork: the operations after it run in a child; the parent waits for it, then exits */
    if (!strcmp(op, "fork")) {
        pid_t c = fork();
        if (c < 0) { result(op, -1); return 0; }
        if (c > 0) { int st; waitpid(c, &st, 0); exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1); }
        printf("fork: child\n"); return 0;
    }
    if (!strcmp(op, "clone_newns")) {
        long r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) waitpid(r, NULL, 0);
        result(op, r > 0 ? 0 : r); return 0;
    }
    if (!strcmp(op, "x32_getpid")) { result(op, syscall(39 | 0x40000000)); return 0; }
    if (!strcmp(op, "int80_getpid")) {
        pid_t c = fork();
        if (c == 0) { long r; __asm__ volatile("int $0x80" : "=a"(r) : "a"(20)); _exit(r == -ENOSYS ? 3 : 4); }
        int st; waitpid(c, &st, 0);
        printf("int80_getpid: %s\n", WIFSIGNALED(st) ? "killed" : WEXITSTATUS(st) == 3 ? "ENOSYS" : "ran");
        return 0;
    }
    /* Descriptor operations (an O_PATH descriptor refuses most of them: EBADF). */
    if (!strcmp(op, "fstat")) {
        NEED(1) struct stat st;
        if (fstat(atoi(a[1]), &st) < 0) result(op, -1);
        else printf("fstat: %s %o %lld\n", ftype(st.st_mode), st.st_mode & 07777, (long long)st.st_size);
        return 1;
    }
    if (!strcmp(op, "getfl")) { NEED(1) long r = fcntl(atoi(a[1]), F_GETFL);
        if (r < 0) result(op, r); else printf("getfl: %lo\n", r); return 1; }
    if (!strcmp(op, "fchmod")) { NEED(2) result(op, fchmod(atoi(a[1]), strtol(a[2], 0, 8))); return 2; }
    if (!strcmp(op, "fchown")) { NEED(1) result(op, fchown(atoi(a[1]), -1, -1)); return 1; }
    if (!strcmp(op, "ftruncate")) { NEED(1) result(op, ftruncate(atoi(a[1]), 0)); return 1; }
    if (!strcmp(op, "fsync")) { NEED(1) result(op, fsync(atoi(a[1]))); return 1; }
    if (!strcmp(op, "fstatfs")) { NEED(1) struct statfs sf; result(op, fstatfs(atoi(a[1]), &sf)); return 1; }
    if (!strcmp(op, "getdents")) { NEED(1) char buf[4096];
        result(op, syscall(SYS_getdents64, atoi(a[1]), buf, sizeof buf) < 0 ? -1 : 0); return 1; }
    if (!strcmp(op, "ioctl")) { NEED(1) int v; result(op, ioctl(atoi(a[1]), FIONREAD, &v)); return 1; }
    if (!strcmp(op, "mmap")) {
        NEED(1) void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, atoi(a[1]), 0);
        if (p == MAP_FAILED) result(op, -1); else { munmap(p, 4096); result(op, 0); }
        return 1;
    }
    if (!strcmp(op, "epoll")) {
        NEED(1) int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN};
        result(op, epoll_ctl(ep, EPOLL_CTL_ADD, atoi(a[1]), &ev));
        close(ep); return 1;
    }
    if (!strcmp(op, "splice")) {
        NEED(1) int p[2]; if (pipe(p) < 0) { result(op, -1); return 1; }
        result(op, splice(atoi(a[1]), NULL, p[1], NULL, 16, 0));
        close(p[0]); close(p[1]); return 1;
    }
    if (!strcmp(op, "futimens")) { NEED(1) result(op, futimens(atoi(a[1]), NULL)); return 1; }
    if (!strcmp(op, "utimens_e")) { NEED(1) result(op, utimensat(atoi(a[1]), "", NULL, AT_EMPTY_PATH)); return 1; }
    if (!strcmp(op, "fchownat_e")) { NEED(1) result(op, fchownat(atoi(a[1]), "", -1, -1, AT_EMPTY_PATH)); return 1; }
    if (!strcmp(op, "faccess_e")) { NEED(2) result(op, syscall(SYS_faccessat2, atoi(a[1]), "", atoi(a[2]), AT_EMPTY_PATH)); return 2; }
    if (!strcmp(op, "linkat_e")) { NEED(2) result(op, linkat(atoi(a[1]), "", AT_FDCWD, a[2], AT_EMPTY_PATH)); return 2; }
    if (!strcmp(op, "readlink_e")) {
        NEED(1) char buf[4096]; long r = readlinkat(atoi(a[1]), "", buf, sizeof buf);
        if (r < 0) result(op, r); else printf("readlink_e: %.*s\n", (int)r, buf);
        return 1;
    }
    if (!strcmp(op, "fexecve")) {
        /* fexecve FD: run the file FD names (as "probe echo fexecve"), print its output */
        NEED(1) pid_t c = fork();
        if (c == 0) {
            char *argv[] = {"probe", "echo", "ran", NULL}, *envp[] = {NULL};
            syscall(SYS_execveat, atoi(a[1]), "", argv, envp, AT_EMPTY_PATH);
            printf("fexecve: %s\n", strerrorname_np(errno)); fflush(stdout); _exit(1);
        }
        int st; waitpid(c, &st, 0); return 1;
    }
    if (!strcmp(op, "isroot")) {
        /* isroot FD: whether FD names the root directory (the walk that gave it stayed in) */
        NEED(1) struct stat a1, b1;
        if (fstat(atoi(a[1]), &a1) < 0 || stat("/", &b1) < 0) { result(op, -1); return 1; }
        printf("isroot: %s\n", a1.st_dev == b1.st_dev && a1.st_ino == b1.st_ino ? "yes" : "no");
        return 1;
    }
    /* adjtimex MODES: the clock's state (a read with 0); settimeofday USEC|null */
    if (!strcmp(op, "adjtimex")) { NEED(1) struct timex t = {.modes = strtoul(a[1], 0, 0)};
        result(op, syscall(SYS_adjtimex, &t)); return 1; }
    if (!strcmp(op, "settimeofday")) {
        NEED(1) struct timeval tv = {.tv_sec = 0, .tv_usec = atol(a[1])};
        result(op, syscall(SYS_settimeofday, strcmp(a[1], "null") ? &tv : NULL, NULL));
        return 1;
    }
    if (!strcmp(op, "fds")) {
        printf("fds:");
        for (int fd = 0; fd < 4096; fd++) if (fcntl(fd, F_GETFD) >= 0) printf(" %d", fd);
        printf("\n"); return 0;
    }
    if (!strcmp(op, "syscall")) { NEED(1) result(op, syscall(atol(a[1]), 0, 0, 0, 0, 0, 0)); return 1; }
    if (!strcmp(op, "kill")) { NEED(2) result(op, kill(atoi(a[1]), atoi(a[2]))); return 2; }
    if (!strcmp(op, "time")) {
        /* time N OP ARGS...: run OP N times, print the mean ns per run (for bench/) */
        NEED(2) long reps = atol(a[1]); struct timespec t0, t1; int used = 0;
        int saved = dup(1); int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < reps; i++) used = run(a + 2, n - 2);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fflush(stdout); dup2(saved, 1); close(saved); close(null);
        printf("time: %.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / reps);
        return used + 2;
    }
    if (!strcmp(op, "alloc")) {
        /* alloc MB: allocate and touch MB MiB, one MiB at a time */
        NEED(1) long mb = atol(a[1]);
        for (long i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p) { result(op, -1); return 1; }
            memset(p, 1, 1 << 20);
        }
        printf("alloc: %ld\n", mb); return 1;
    }
    if (!strcmp(op, "forkmany")) {
        /* forkmany N: fork up to N children that wait; print how many forks succeeded */
        NEED(1) long want = atol(a[1]), got = 0;
        for (; got < want; got++) {
            pid_t c = fork();
            if (c < 0) break;
            if (c == 0) { pause(); _exit(0); }
        }
        printf("forkmany: %ld%s%s\n", got, got < want ? " " : "", got < want ? strerrorname_np(errno) : "");
        return 1;
    }
    if (!strcmp(op, "getpid")) { result(op, getpid()); return 0; }
    if (!strcmp(op, "getppid")) { result(op, getppid()); return 0; }
    if (!strcmp(op, "uname")) {
        struct utsname u; uname(&u);
        printf("uname: %s %s %s %s %s\n", u.sysname, u.nodename, u.release, u.version, u.machine);
        return 0;
    }
    if (!strcmp(op, "sethostname")) { NEED(1) result(op, sethostname(a[1], strlen(a[1]))); return 1; }
    if (!strcmp(op, "exec")) { NEED(1) execl(a[1], a[1], (char *)NULL); result(op, -1); return 1; }
    if (!strcmp(op, "sleep")) { NEED(1) sleep(atoi(a[1])); return 1; }
    if (!strcmp(op, "segv")) { fflush(stdout); *(volatile int *)0 = 0; return 0; }
    if (!strcmp(op, "block")) {  /* block signal N */
        NEED(1) sigset_t set; sigemptyset(&set); sigaddset(&set, atoi(a[1]));
        result(op, sigprocmask(SIG_BLOCK, &set, NULL)); return 1;
    }
    if (!strcmp(op, "catch")) {  /* on signal N: print "caught N" and exit 0 */
        NEED(1) struct sigaction sa = {.sa_handler = caught};
        result(op, sigaction(atoi(a[1]), &sa, NULL)); return 1;
    }
    if (!strcmp(op, "ready")) {  /* a file saying the ops so far are done */
        NEED(1) int fd = open(a[1], O_WRONLY | O_CREAT, 0644);
        result(op, fd < 0 ? -1 : close(fd)); return 1;
    }
    /* setuid N: become uid/gid N for good, as gosu and su-exec entrypoints do (the kernel
     * then clears the parent-death signal). */
    if (!strcmp(op, "setuid")) { NEED(1) result(op, setresgid(atoi(a[1]), atoi(a[1]), atoi(a[1])) ||
                                                     setresuid(atoi(a[1]), atoi(a[1]), atoi(a[1]))); return 1; }
    if (!strcmp(op, "echo")) { NEED(1) printf("echo: %s\n", a[1]); return 1; }
    printf("%s: unknown operation\n", op);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && !strcmp(argv[1], "-")) {
        char line[8192];
        while (fgets(line, sizeof line, stdin)) {
            char *words[16]; int n = 0;
            for (char *t = strtok(line, " \t\n"); t && n < 16; t = strtok(NULL, " \t\n")) words[n++] = t;
            if (n) run(words, n);
        }
        return 0;
    }
    for (int i = 1; i < argc; i++) i += run(argv + i, argc - i);
    return 0;
}
