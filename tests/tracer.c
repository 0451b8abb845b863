/* A small debugger, run inside a container: each command-line op traces a child of its
 * own and prints "op=result" (deterministic, so runc and runsc-py can be compared).
 *   syscalls     TRACEME + exec /bin/true: the syscall-entry stops' numbers, exit status
 *   peekpoke     PEEKDATA a word of the stopped child, POKEDATA 42 into it: its exit code
 *   singlestep   100 PTRACE_SINGLESTEPs, each a SIGTRAP stop
 *   seize        SEIZE + INTERRUPT: the event stop, GETREGS, DETACH, the child goes on
 *   listen       group-stop of a seized child, PTRACE_LISTEN, SIGCONT
 *   exitkill     PTRACE_O_EXITKILL: the tracer's death kills the tracee
 *   suspend      PTRACE_O_SUSPEND_SECCOMP by SETOPTIONS and by SEIZE (must fail)
 *   getfilter    PTRACE_SECCOMP_GET_FILTER / GET_METADATA (must fail)
 *   rewrite_mount       at the entry of the child's getppid, the tracer makes it mount(2)
 *   rewrite_open:PATH   ... makes it openat(PATH): the filter sees the rewritten call
 *   hunt:SECONDS  SEIZE every pid of the sandbox again and again (as an attacker with
 *                CAP_SYS_PTRACE would, waiting for an exec'd process's set-up); writes
 *                what it seized (pid and comm) to /hunt.out
 *   attach:PID   PTRACE_ATTACH and PTRACE_SEIZE of PID, process_vm_readv of it
 *   held_exit:N  a child seizes this process, which then exits with N; the child never
 *                waits, so Linux keeps the exit from this process's parent until it dies */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif
#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef PTRACE_SECCOMP_GET_METADATA
#define PTRACE_SECCOMP_GET_METADATA 0x420d
#endif

static volatile long word = 1234;
static char rewrite_path[512] = "/";
static const char mnt_src[] = "none", mnt_dst[] = ".", mnt_type[] = "tmpfs";

static const char *err(long r) {
    static char buf[64];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    snprintf(buf, sizeof buf, "-%s", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    return buf;
}

static const char *status_str(int st) {
    static char buf[64];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exit:%d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "signal:%d", WTERMSIG(st));
    else if (WIFSTOPPED(st))
        snprintf(buf, sizeof buf, "stop:%d:event%d", WSTOPSIG(st), st >> 16);
    else
        snprintf(buf, sizeof buf, "other:%#x", st);
    return buf;
}

/* A child that asks to be traced and stops itself; then runs body (never returns). */
static pid_t traced_child(void (*body)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0))
            _exit(90);
        raise(SIGSTOP);
        body();
        _exit(91);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP) {
        printf("error=first stop %s\n", status_str(st));
        exit(1);
    }
    return pid;
}

static void exec_true(void) {
    char *argv[] = {"true", NULL};
    execve("/bin/true", argv, environ);
    _exit(92);
}

static void op_syscalls(void) {
    pid_t pid = traced_child(exec_true);
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC);
    int st, entry = 1, n = 0;
    char seq[4096] = "";
    size_t len = 0;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, pid, 0, 0))
            break;
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
            break;
        if (WSTOPSIG(st) == (SIGTRAP | 0x80)) {
            if (entry) {
                struct user_regs_struct r;
                ptrace(PTRACE_GETREGS, pid, 0, &r);
                n++;
                if (len < sizeof seq - 16)
                    len += snprintf(seq + len, sizeof seq - len, "%s%llu", n > 1 ? "," : "",
                                    r.orig_rax);
            }
            entry = !entry;
        } else if (st >> 8 == (SIGTRAP | PTRACE_EVENT_EXEC << 8)) {
            entry = 1;  /* execve's exit stop comes after the event */
        }
    }
    printf("syscalls=%d %s %s\n", n, seq, status_str(st));
}

static void wait_forever(void) {
    for (;;)
        pause();
}

static void exit_with_word(void) {
    _exit((int)word);
}

static void op_peekpoke(void) {
    pid_t pid = traced_child(exit_with_word);
    errno = 0;
    long v = ptrace(PTRACE_PEEKDATA, pid, (void *)&word, 0);
    const char *peek = errno ? strerrorname_np(errno) : "ok";
    long w = ptrace(PTRACE_POKEDATA, pid, (void *)&word, (void *)42L);
    printf("peekpoke=peek %s %ld poke %s ", peek, v, err(w));
    int st;
    ptrace(PTRACE_CONT, pid, 0, 0);
    waitpid(pid, &st, 0);
    printf("%s\n", status_str(st));
}

static void spin(void) {
    for (volatile unsigned long i = 0;; i++)
        if (i == (1UL << 40))
            _exit(93);
}

static void op_singlestep(void) {
    pid_t pid = traced_child(spin);
    int traps = 0, st = 0;
    for (int i = 0; i < 100; i++) {
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0))
            break;
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
            break;
        traps++;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    printf("singlestep=%d traps %s\n", traps, status_str(st));
}

static pid_t plain_child(void (*body)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(94);
    }
    return pid;
}

static void op_seize(void) {
    pid_t pid = plain_child(wait_forever);
    long r = ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD);
    printf("seize=%s", err(r));
    ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    int st;
    waitpid(pid, &st, 0);
    struct user_regs_struct regs;
    long g = ptrace(PTRACE_GETREGS, pid, 0, &regs);
    printf(" %s getregs %s", status_str(st), err(g));
    long d = ptrace(PTRACE_DETACH, pid, 0, 0);
    printf(" detach %s", err(d));
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    printf(" %s\n", status_str(st));
}

static void op_listen(void) {
    pid_t pid = plain_child(wait_forever);
    ptrace(PTRACE_SEIZE, pid, 0, 0);
    kill(pid, SIGSTOP);
    int st;
    waitpid(pid, &st, 0);  /* signal-delivery-stop */
    printf("listen=%s", status_str(st));
    ptrace(PTRACE_CONT, pid, 0, SIGSTOP);
    waitpid(pid, &st, 0);  /* group-stop: PTRACE_EVENT_STOP with SIGSTOP */
    printf(" %s", status_str(st));
    long l = ptrace(PTRACE_LISTEN, pid, 0, 0);
    printf(" listen %s", err(l));
    kill(pid, SIGCONT);
    waitpid(pid, &st, 0);
    printf(" %s", status_str(st));
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    printf(" %s\n", status_str(st));
}

static void op_exitkill(void) {
    int p[2];
    if (pipe(p))
        exit(1);
    pid_t victim = plain_child(wait_forever);
    pid_t tracer = fork();
    if (tracer == 0) {
        long r = ptrace(PTRACE_SEIZE, victim, 0, PTRACE_O_EXITKILL);
        if (write(p[1], r == 0 ? "y" : "n", 1) != 1)
            _exit(1);
        _exit(0);  /* its death kills the victim */
    }
    char c = '?';
    if (read(p[0], &c, 1) != 1)
        c = '!';
    int st;
    waitpid(tracer, &st, 0);
    waitpid(victim, &st, 0);
    printf("exitkill=seized %c victim %s\n", c, status_str(st));
}

static void op_suspend(void) {
    pid_t pid = traced_child(wait_forever);
    long r = ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_SUSPEND_SECCOMP);
    printf("suspend=setoptions %s", err(r));
    pid_t other = plain_child(wait_forever);
    long s = ptrace(PTRACE_SEIZE, other, 0, PTRACE_O_SUSPEND_SECCOMP);
    printf(" seize %s\n", err(s));
    kill(pid, SIGKILL);
    kill(other, SIGKILL);
    waitpid(pid, NULL, 0);
    waitpid(other, NULL, 0);
}

static void op_getfilter(void) {
    pid_t pid = traced_child(wait_forever);
    char buf[4096];
    long r = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, buf);
    printf("getfilter=filter %s", err(r));
    struct { unsigned long long off, flags; } md = {0, 0};
    long m = ptrace(PTRACE_SECCOMP_GET_METADATA, pid, (void *)sizeof md, &md);
    printf(" metadata %s\n", err(m));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The child calls getppid() and reports what it got; the tracer turns that call into
 * another at its syscall-entry stop. */
static void call_getppid(void) {
    long r = syscall(SYS_getppid);
    _exit(r < 0 ? 100 + errno : r > 99 ? 99 : (int)r);
}

static void rewrite(const char *op, int into) {
    pid_t pid = traced_child(call_getppid);
    int st;
    struct user_regs_struct r;
    for (;;) {  /* to getppid's entry */
        ptrace(PTRACE_SYSCALL, pid, 0, 0);
        waitpid(pid, &st, 0);
        if (!WIFSTOPPED(st))
            break;
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        if (r.orig_rax == SYS_getppid)
            break;
        ptrace(PTRACE_SYSCALL, pid, 0, 0);  /* its exit stop */
        waitpid(pid, &st, 0);
    }
    r.orig_rax = into;
    if (into == SYS_mount) {
        r.rdi = (unsigned long)mnt_src;
        r.rsi = (unsigned long)mnt_dst;
        r.rdx = (unsigned long)mnt_type;
        r.r10 = 0;
        r.r8 = 0;
    } else {
        r.rdi = (unsigned long)AT_FDCWD;
        r.rsi = (unsigned long)rewrite_path;
        r.rdx = O_RDONLY;
        r.r10 = 0;
    }
    ptrace(PTRACE_SETREGS, pid, 0, &r);
    ptrace(PTRACE_SYSCALL, pid, 0, 0);
    waitpid(pid, &st, 0);  /* exit stop: the rewritten call's result */
    ptrace(PTRACE_GETREGS, pid, 0, &r);
    long ret = (long)r.rax;
    ptrace(PTRACE_CONT, pid, 0, 0);
    waitpid(pid, &st, 0);
    printf("%s=%s%s %s\n", op, ret < 0 ? "-" : "", ret < 0 ? strerrorname_np(-ret) : "ok",
           status_str(st));
}

static void op_hunt(int seconds) {
    FILE *out = fopen("/hunt.out", "w");
    if (!out)
        exit(1);
    time_t end = time(NULL) + seconds;
    long tries = 0, seized = 0;
    while (time(NULL) < end) {
        for (pid_t p = 2; p < 200; p++) {
            if (p == getpid())
                continue;
            tries++;
            if (ptrace(PTRACE_SEIZE, p, 0, 0))
                continue;
            char path[64], comm[64] = "?";
            snprintf(path, sizeof path, "/proc/%d/comm", p);
            FILE *f = fopen(path, "r");
            if (f) {
                if (!fgets(comm, sizeof comm, f))
                    strcpy(comm, "?\n");
                fclose(f);
            }
            if (seized++ < 50) {
                fprintf(out, "seized %d %s", p, comm);
                fflush(out);
            }
            ptrace(PTRACE_DETACH, p, 0, 0);
        }
        sched_yield();
    }
    fprintf(out, "hunt=%ld tries %ld seized\n", tries, seized);
    fclose(out);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        if (!strcmp(op, "syscalls")) op_syscalls();
        else if (!strcmp(op, "peekpoke")) op_peekpoke();
        else if (!strcmp(op, "singlestep")) op_singlestep();
        else if (!strcmp(op, "seize")) op_seize();
        else if (!strcmp(op, "listen")) op_listen();
        else if (!strcmp(op, "exitkill")) op_exitkill();
        else if (!strcmp(op, "suspend")) op_suspend();
        else if (!strcmp(op, "getfilter")) op_getfilter();
        else if (!strcmp(op, "rewrite_mount")) rewrite(op, SYS_mount);
        else if (!strncmp(op, "hunt:", 5)) op_hunt(atoi(op + 5));
        else if (!strncmp(op, "attach:", 7)) {
            pid_t p = atoi(op + 7);
            long a = ptrace(PTRACE_ATTACH, p, 0, 0);
            printf("attach=%s", err(a));
            printf(" seize %s", err(ptrace(PTRACE_SEIZE, p, 0, 0)));
            long v = 0;
            struct iovec l = {&v, sizeof v}, r = {(void *)&word, sizeof v};
            printf(" vm_readv %s\n", err(process_vm_readv(p, &l, 1, &r, 1, 0)));
        }
        else if (!strncmp(op, "held_exit:", 10)) {
            int p[2];
            if (pipe(p))
                return 1;
            pid_t parent = getpid();
            if (fork() == 0) {
                long r = ptrace(PTRACE_SEIZE, parent, 0, 0);
                printf("held_exit=seize %s\n", err(r));
                if (write(p[1], "x", 1) != 1)
                    _exit(1);
                wait_forever();
            }
            char c;
            if (read(p[0], &c, 1) != 1)
                return 1;
            _exit(atoi(op + 10));
        }
        else if (!strncmp(op, "rewrite_open:", 13)) {
            snprintf(rewrite_path, sizeof rewrite_path, "%s", op + 13);
            rewrite("rewrite_open", SYS_openat);
        } else if (!strncmp(op, "exit:", 5)) return atoi(op + 5);
        else printf("%s=unknown\n", op);
    }
    return 0;
}
