/* The argument fuzzer's interpreter (tests/test_fuzz_args.py): raw syscalls with
 * hypothesis-built arguments, one per line on stdin, as the container's init.
 *
 *   begin N            a fresh /scratch/N with a fixed set of entries, entered
 *   sys NR A0 .. A5    syscall(NR, ...) and print "= RET" or "= ERRNAME", then, for each
 *   sysfd NR A0 .. A5  pointer argument the call changed, " aI=HEX" (sysfd: RET is a new
 *                      descriptor, printed as "fd" and closed)
 *   end                list the example's directory (the state the call left) and "end"
 *
 * An argument is a number (strtoull/strtoll), "$dir"/"$file" (descriptors of the entries
 * "d" and "f"), "@none" (a mapped PROT_NONE page), or bytes in memory, given in hex:
 * "@mid:HEX" (followed by mapped memory), "@edge:HEX" (ending exactly where a PROT_NONE
 * page starts: a string without its NUL or a struct cut short there crosses into it) or
 * "@ro:HEX" (on read-only pages). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096
#define ARENA_PAGES 4             /* read-write pages, then one PROT_NONE guard */
#define ARENA (ARENA_PAGES * PAGE)
#define SLACK 64                  /* bytes after a @mid/@ro region that are watched too */
#define FILL 0x55

static unsigned char *arena[6];
static unsigned char saved[6][ARENA];
static int dirfd_ = -1, filefd = -1;

static void setup_arenas(void) {
    for (int i = 0; i < 6; i++) {
        arena[i] = mmap(NULL, ARENA + PAGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arena[i] == MAP_FAILED || mprotect(arena[i] + ARENA, PAGE, PROT_NONE) < 0) {
            perror("arena");
            exit(1);
        }
    }
}

static int unhex(const char *s, unsigned char *out, size_t max) {
    size_t n = 0;
    for (; s[0] && s[1] && n < max; s += 2) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) break;
        out[n++] = (unsigned char)v;
    }
    return (int)n;
}

struct region { unsigned char *start; int len; int watch; int ro; };

static unsigned long arg_value(int i, const char *tok, struct region *r) {
    r->start = NULL;
    if (!strcmp(tok, "$dir")) return (unsigned long)dirfd_;
    if (!strcmp(tok, "$file")) return (unsigned long)filefd;
    if (!strcmp(tok, "@none")) return (unsigned long)(arena[i] + ARENA);
    if (tok[0] == '@') {
        static unsigned char bytes[ARENA];
        const char *colon = strchr(tok, ':');
        int n = colon ? unhex(colon + 1, bytes, ARENA - SLACK) : 0;
        memset(arena[i], FILL, ARENA);
        if (!strncmp(tok, "@edge:", 6)) {
            r->start = arena[i] + ARENA - n;
            r->watch = n;
        } else {
            r->start = arena[i];
            r->watch = n + SLACK;
        }
        memcpy(r->start, bytes, n);
        r->len = n;
        r->ro = !strncmp(tok, "@ro:", 4);
        if (r->ro) mprotect(arena[i], ARENA, PROT_READ);
        memcpy(saved[i], r->start, r->watch);
        return (unsigned long)r->start;
    }
    if (tok[0] == '-') return (unsigned long)strtoll(tok, NULL, 0);
    return strtoull(tok, NULL, 0);
}

static void call(char **a, int n, int new_fd) {
    unsigned long v[6] = {0};
    struct region r[6];
    long nr = strtol(a[1], NULL, 0);
    for (int i = 0; i < 6; i++) {
        r[i].start = NULL;
        if (i + 2 < n) v[i] = arg_value(i, a[i + 2], &r[i]);
    }
    long ret = syscall(nr, v[0], v[1], v[2], v[3], v[4], v[5]);
    int err = errno;
    if (ret < 0) printf("= %s", strerrorname_np(err));
    else if (new_fd) { printf("= fd"); close((int)ret); }
    else printf("= %ld", ret);
    for (int i = 0; i < 6; i++) {
        if (!r[i].start) continue;
        if (r[i].ro) mprotect(arena[i], ARENA, PROT_READ | PROT_WRITE);
        if (!memcmp(saved[i], r[i].start, r[i].watch)) continue;
        printf(" a%d=", i);
        for (int k = 0; k < r[i].watch; k++) printf("%02x", r[i].start[k]);
    }
    printf("\n");
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_name(const char *name) {
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p > 32 && *p < 127 && *p != '%') putchar(*p); else printf("%%%02x", *p);
}

/* Every entry of dir (and of its subdirectories, one level down): the state a call left. */
static void list(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) { printf("ls %s: %s\n", dir, strerrorname_np(errno)); return; }
    char *names[512];
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) && count < 512;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, count, sizeof names[0], by_name);
    for (int i = 0; i < count; i++) {
        char path[8192], target[256];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        printf("ls ");
        put_name(path);
        if (lstat(path, &st) < 0) { printf(": %s\n", strerrorname_np(errno)); continue; }
        printf(": type=%o mode=%04o nlink=%ld uid=%d gid=%d", st.st_mode >> 12,
               st.st_mode & 07777, (long)st.st_nlink, st.st_uid, st.st_gid);
        if (S_ISREG(st.st_mode)) printf(" size=%ld", (long)st.st_size);
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
            printf(" rdev=%lx", (unsigned long)st.st_rdev);
        ssize_t tn = S_ISLNK(st.st_mode) ? readlink(path, target, sizeof target - 1) : -1;
        if (tn >= 0) { target[tn] = 0; printf(" -> "); put_name(target); }
        printf("\n");
        if (S_ISDIR(st.st_mode) && depth < 1) list(path, depth + 1);
        free(names[i]);
    }
}

static void begin(const char *name) {
    char path[256];
    if (dirfd_ >= 0) close(dirfd_);
    if (filefd >= 0) close(filefd);
    umask(022);
    chmod("/", 0755);  /* an example may have taken the root's or /scratch's mode away */
    mkdir("/scratch", 0755);
    chmod("/scratch", 0755);
    snprintf(path, sizeof path, "/scratch/%s", name);
    if (mkdir(path, 0755) < 0 || chdir(path) < 0) printf("begin: %s\n", strerrorname_np(errno));
    /* The entries each example starts from: a file, directories (one the caller, a root
     * without CAP_DAC_OVERRIDE, may not search), symlinks to each and a dangling one. */
    int fd = open("f", O_CREAT | O_WRONLY, 0644);
    if (write(fd, "hello", 5) != 5) printf("begin: write\n");
    close(fd);
    close(open("ro", O_CREAT | O_WRONLY, 0444));
    mkdir("d", 0755);
    close(open("d/g", O_CREAT | O_WRONLY, 0600));
    mkdir("e", 0755);
    mkdir("n", 0755);
    mkdir("n/x", 0755);
    chmod("n", 0);
    symlink("f", "l");
    symlink("d", "ld");
    symlink("missing", "dl");
    dirfd_ = open("d", O_RDONLY | O_DIRECTORY);
    filefd = open("f", O_RDWR);
}

int main(void) {
    static char line[1 << 16];
    setup_arenas();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while (fgets(line, sizeof line, stdin)) {
        char *a[8] = {0};
        int n = 0;
        for (char *t = strtok(line, " \n"); t && n < 8; t = strtok(NULL, " \n")) a[n++] = t;
        if (!n) continue;
        if (!strcmp(a[0], "begin") && n > 1) begin(a[1]);
        else if (!strcmp(a[0], "sys") && n > 1) call(a, n, 0);
        else if (!strcmp(a[0], "sysfd") && n > 1) call(a, n, 1);
        else if (!strcmp(a[0], "end")) {
            list(".", 0);
            printf("end\n");
            fflush(stdout);
        } else printf("%s: unknown op\n", a[0]);
    }
    return 0;
}
