/* POSIX message queues for tests/test_mounts.py: "open NAME", "send NAME TEXT",
 * "unlink NAME", each printing "op: 0" or "op: -ERRNO". */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *op = argv[1], *name = argv[2];
    int rc;
    if (!strcmp(op, "open")) {
        mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0640, NULL);
        rc = q == (mqd_t)-1 ? -errno : 0;
    } else if (!strcmp(op, "send") && argc > 3) {
        mqd_t q = mq_open(name, O_WRONLY);
        rc = q == (mqd_t)-1 || mq_send(q, argv[3], strlen(argv[3]), 0) ? -errno : 0;
    } else if (!strcmp(op, "unlink")) {
        rc = mq_unlink(name) ? -errno : 0;
    } else {
        return 2;
    }
    printf("%s: %d\n", op, rc);
    return 0;
}
