/* Calls Docker's profile gates, one per command-line op; prints "op=0" or "op=-ERRNO".
 * The calls act on a forked child (a sibling with the same credentials), as an attacker
 * inside the container would on another of its processes. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long target = 1;

static void result(const char *op, long r) {
    if (r < 0)
        printf("%s=-%s\n", op, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("%s=0\n", op);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int ready[2];
    if (pipe(ready))
        return 1;
    pid_t child = fork();
    if (child == 0) {  /* the sibling: waits to be acted on, reports its variable */
        close(ready[1]);
        char c;
        if (read(ready[0], &c, 1) != 1)
            _exit(2);
        _exit(target == 42 ? 42 : 0);
    }
    close(ready[0]);
    int pidfd = syscall(SYS_pidfd_open, child, 0);
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        if (!strcmp(op, "vm_writev")) {
            long v = 42;
            struct iovec local = {&v, sizeof v}, remote = {(void *)&target, sizeof v};
            result(op, process_vm_writev(child, &local, 1, &remote, 1, 0));
        } else if (!strcmp(op, "vm_readv")) {
            long v = 0;
            struct iovec local = {&v, sizeof v}, remote = {(void *)&target, sizeof v};
            result(op, process_vm_readv(child, &local, 1, &remote, 1, 0));
        } else if (!strcmp(op, "kcmp")) {
            result(op, syscall(SYS_kcmp, getpid(), child, 0 /* KCMP_FILE */, 0, 0));
        } else if (!strcmp(op, "pidfd_getfd")) {
            long fd = syscall(SYS_pidfd_getfd, pidfd, 0, 0);
            result(op, fd);
        } else if (!strcmp(op, "process_madvise")) {
            struct iovec iov = {(void *)((unsigned long)&target & ~4095UL), 4096};
            result(op, syscall(SYS_process_madvise, pidfd, &iov, 1, 20 /* MADV_COLD */, 0));
        } else if (!strcmp(op, "get_mempolicy")) {
            int mode;
            result(op, syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0));
        } else if (!strcmp(op, "set_mempolicy")) {
            result(op, syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, NULL, 0));
        } else if (!strcmp(op, "move_pages")) {
            void *page = (void *)((unsigned long)&target & ~4095UL);
            int status;
            result(op, syscall(SYS_move_pages, 0, 1, &page, NULL, &status, 0));
        } else if (!strncmp(op, "socket:", 7)) {  /* socket:FAMILY (64-bit, as given) */
            long fd = syscall(SYS_socket, strtoul(op + 7, NULL, 0), SOCK_STREAM, 0);
            result(op, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(op, "personality:", 12)) {  /* raw: the 64-bit value as given */
            long r = syscall(SYS_personality, strtoul(op + 12, NULL, 0));
            result(op, r);
            if (r >= 0)
                syscall(SYS_personality, r);  /* back to what it was */
        } else {
            printf("%s=unknown\n", op);
        }
    }
    if (write(ready[1], "x", 1) != 1)
        return 1;
    int status;
    waitpid(child, &status, 0);
    printf("sibling=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
