/* Signals meeting emulated syscalls, for tests/test_signals.py: each scenario prints
 * "what: result" lines (a value or the errno name). Run under runc and under runsc-py, the
 * output must be the same. Built static.
 *
 *   notify-sigio, notify-rt  F_NOTIFY on a directory (SIGIO, or F_SETSIG SIGRTMIN), a
 *                            handler without SA_RESTART, then changes in the directory:
 *                            each succeeds, and the handler has run when it returns.
 *   timer, timer-restart     a 1 ms interval timer with a handler without (with)
 *                            SA_RESTART while emulated calls run: none fails after taking
 *                            effect; with SA_RESTART none fails at all.
 *   fifo-stop                a FIFO open waits; SIGSTOP stops the process, SIGCONT resumes
 *                            it, the open completes when the writer comes.
 *   fifo-quit                a FIFO open waits; SIGQUIT (default action: core dump) kills.
 *   fifo-blocked             a FIFO open waits with SIGUSR1 blocked; SIGUSR1 changes nothing.
 *   fifo-thread              a thread's FIFO open waits; a signal to the process goes to the
 *                            main thread, one to the thread ends the open with EINTR.
 *   fifo-leader              the main thread's FIFO open waits, another thread sleeps; a
 *                            signal to the process ends the open with EINTR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_signal(int sig) { (void)sig; handled++; }

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void result(const char *what, long r) {
    if (r < 0) printf("%s: %s\n", what, strerrorname_np(errno));
    else printf("%s: %ld\n", what, r);
    fflush(stdout);
}

static void catch(int sig, int flags) {
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = flags};
    sigaction(sig, &sa, NULL);
}

/* A change in the watched directory: its result, and whether the handler ran before the
 * call returned (as on Linux, where the signal is delivered on the way back). */
static void change(const char *what, long r) {
    printf("%s: %s, handler %s\n", what, r < 0 ? strerrorname_np(errno) : "ok",
           handled ? "ran" : "did not run");
    handled = 0;
    fflush(stdout);
}

static void notify(int sig) {
    mkdir("/tmp/d", 0755);
    int fd = open("/tmp/d", O_RDONLY | O_DIRECTORY);
    if (fd < 0) { result("open dir", -1); exit(1); }
    catch(sig, 0);
    if (sig != SIGIO && fcntl(fd, F_SETSIG, sig) < 0) { result("F_SETSIG", -1); exit(1); }
    if (fcntl(fd, F_NOTIFY, DN_MODIFY | DN_CREATE | DN_DELETE | DN_RENAME | DN_ATTRIB |
              DN_MULTISHOT) < 0) { result("F_NOTIFY", -1); exit(1); }
    int f;
    change("creat", f = open("/tmp/d/a", O_WRONLY | O_CREAT, 0644));
    close(f);
    change("chmod", chmod("/tmp/d/a", 0600));
    change("chown", chown("/tmp/d/a", 1, 1));
    change("utimes", utimes("/tmp/d/a", NULL));
    change("truncate", truncate("/tmp/d/a", 0));
    change("rename", rename("/tmp/d/a", "/tmp/d/b"));
    change("link", link("/tmp/d/b", "/tmp/d/c"));
    change("symlink", symlink("b", "/tmp/d/s"));
    change("mkdir", mkdir("/tmp/d/sub", 0755));
    change("rmdir", rmdir("/tmp/d/sub"));
    change("unlink", unlink("/tmp/d/b"));
    change("unlink", unlink("/tmp/d/c"));
    change("unlink", unlink("/tmp/d/s"));
    change("mknod", mknod("/tmp/d/p", S_IFIFO | 0644, 0));
    change("renameat2", syscall(SYS_renameat2, AT_FDCWD, "/tmp/d/p", AT_FDCWD, "/tmp/d/q", 0));
    change("unlink", unlink("/tmp/d/q"));
}

/* Emulated calls under a fast timer. On Linux none of them can be interrupted: none fails,
 * with or without SA_RESTART. Under runsc-py a signal that comes before the sentry has
 * taken the call still ends it (EINTR without SA_RESTART, README): then it has not taken
 * effect. A call that failed after taking effect, or restarted after it (a rename then
 * fails with ENOENT), is counted as such. */
static int renamed(const char *from, const char *to, int *effect, int *other) {
    int r = rename(from, to), err = errno;
    if (r < 0 && err == EINTR) {
        if (access(to, F_OK) == 0 && access(from, F_OK) < 0) { ++*effect; return 0; }
        errno = err;
    } else if (r < 0) {
        if (!*other) fprintf(stderr, "rename %s: %s\n", from, strerrorname_np(errno));
        ++*other;
    }
    return r;
}

static void timer(int flags) {
    catch(SIGALRM, flags);
    struct itimerval it = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int effect = 0, other = 0, interrupted = 0;
    long calls = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    close(open("/tmp/x", O_WRONLY | O_CREAT, 0644));
    do {
        struct stat st;
        struct utsname u;
        while (renamed("/tmp/x", "/tmp/y", &effect, &other) < 0 && errno == EINTR)
            interrupted++;
#define COUNT(call) if ((call) < 0) { if (errno == EINTR) interrupted++; else if (!other++) fprintf(stderr, "%s: %s\n", #call, strerrorname_np(errno)); }
        COUNT(stat("/tmp/y", &st));
        COUNT(chmod("/tmp/y", 0600));
        COUNT(uname(&u));
        while (renamed("/tmp/y", "/tmp/x", &effect, &other) < 0 && errno == EINTR)
            interrupted++;
        calls += 5;
        if (other > 100) break;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("failed after taking effect: %d\n", effect);
    printf("failed otherwise: %d\n", other);
    if (flags & SA_RESTART) printf("interrupted: %d\n", interrupted);
    fprintf(stderr, "interrupted: %d of %ld calls, %d signals\n", interrupted, calls,
            (int)handled);
    printf("signals: %s\n", handled > 10 ? "many" : "few");
}

static int waiting_child(const char *path, int block) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no = {0, 0};
        setrlimit(RLIMIT_CORE, &no);
        if (block) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGUSR1);
            sigprocmask(SIG_BLOCK, &set, NULL);
        }
        int fd = open(path, O_RDONLY);
        result("child open", fd < 0 ? -1 : 0);
        char buf[16] = {0};
        result("child read", read(fd, buf, sizeof buf - 1));
        printf("child got: %s\n", buf);
        fflush(stdout);
        _exit(0);
    }
    return pid;
}

static void on_timeout(int sig) { (void)sig; }

/* waitpid with a deadline: "timeout" instead of waiting forever. */
static void wait_for(const char *what, pid_t pid, int options) {
    struct sigaction sa = {.sa_handler = on_timeout};
    sigaction(SIGALRM, &sa, NULL);
    alarm(5);
    int status;
    pid_t r = waitpid(pid, &status, options);
    alarm(0);
    if (r < 0) { printf("%s: %s\n", what, errno == EINTR ? "timeout" : strerrorname_np(errno)); }
    else if (WIFSTOPPED(status)) printf("%s: stopped by %d\n", what, WSTOPSIG(status));
    else if (WIFCONTINUED(status)) printf("%s: continued\n", what);
    else if (WIFSIGNALED(status)) printf("%s: killed by %d\n", what, WTERMSIG(status));
    else printf("%s: exited %d\n", what, WEXITSTATUS(status));
    fflush(stdout);
}

static void write_hi(const char *path) {
    int fd = open(path, O_WRONLY);
    result("write", write(fd, "hi", 2));
    close(fd);
}

static void *sleeper(void *arg) {
    (void)arg;
    msleep(3000);
    return NULL;
}

static const char *thread_path;
static void *thread_open(void *arg) {
    (void)arg;
    result("thread open", open(thread_path, O_RDONLY));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: signals SCENARIO\n"); return 2; }
    const char *s = argv[1], *path = "/tmp/f";
    if (!strncmp(s, "fifo", 4)) {
        unlink(path);
        if (mkfifo(path, 0666) < 0) { result("mkfifo", -1); return 1; }
    }
    pid_t pid;
    if (!strcmp(s, "notify-sigio")) {
        notify(SIGIO);
    } else if (!strcmp(s, "notify-rt")) {
        notify(SIGRTMIN);
    } else if (!strcmp(s, "timer")) {
        timer(0);
    } else if (!strcmp(s, "timer-restart")) {
        timer(SA_RESTART);
    } else if (!strcmp(s, "fifo-stop")) {
        pid = waiting_child(path, 0);
        msleep(300);
        kill(pid, SIGSTOP);
        wait_for("after SIGSTOP", pid, WUNTRACED);
        kill(pid, SIGCONT);
        wait_for("after SIGCONT", pid, WCONTINUED);
        msleep(200);
        write_hi(path);
        wait_for("child", pid, 0);
    } else if (!strcmp(s, "fifo-quit")) {
        pid = waiting_child(path, 0);
        msleep(300);
        kill(pid, SIGQUIT);
        wait_for("child", pid, 0);
        if (waitpid(pid, NULL, WNOHANG) == 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
    } else if (!strcmp(s, "fifo-blocked")) {
        pid = waiting_child(path, 1);
        msleep(300);
        kill(pid, SIGUSR1);
        msleep(300);
        write_hi(path);
        wait_for("child", pid, 0);
    } else if (!strcmp(s, "fifo-thread")) {
        catch(SIGUSR1, 0);
        thread_path = path;
        pthread_t t;
        pthread_create(&t, NULL, thread_open, NULL);
        msleep(300);
        kill(getpid(), SIGUSR1);
        printf("handled in main: %d\n", handled);
        fflush(stdout);
        msleep(300);
        pthread_kill(t, SIGUSR1);
        pthread_join(t, NULL);
        printf("handled: %d\n", handled);
    } else if (!strcmp(s, "fifo-leader")) {
        /* The main thread waits in a FIFO open while another sleeps: a signal sent to the
         * process goes to the main thread (the kernel's first choice) and ends the open. */
        catch(SIGUSR1, 0);
        pthread_t t;
        pthread_create(&t, NULL, sleeper, NULL);
        pid_t parent = getpid();
        if ((pid = fork()) == 0) { msleep(300); kill(parent, SIGUSR1); _exit(0); }
        pid_t writer = fork();
        if (writer == 0) { msleep(1500); write_hi(path); _exit(0); }
        int fd = open(path, O_RDONLY);
        result("open", fd < 0 ? -1 : 0);
        printf("handled: %d\n", handled);
        if (fd < 0) fd = open(path, O_RDONLY);
        char buf[16] = {0};
        result("read", read(fd, buf, sizeof buf - 1));
        wait_for("signaller", pid, 0);
        wait_for("writer", writer, 0);
    } else {
        fprintf(stderr, "unknown scenario %s\n", s);
        return 2;
    }
    return 0;
}
