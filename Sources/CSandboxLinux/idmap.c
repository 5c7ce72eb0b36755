#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>
#include "CSandboxLinux.h"

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int sbx_userns_fd(unsigned host_base, unsigned size) {
    int ready[2], done[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return -1;
    if (pipe2(done, O_CLOEXEC) != 0) { close(ready[0]); close(ready[1]); return -1; }
    /* The child only makes system calls (async-signal-safe after fork in a threaded process). */
    pid_t pid = fork();
    if (pid < 0) { int e = errno; close(ready[0]); close(ready[1]); close(done[0]); close(done[1]); errno = e; return -1; }
    if (pid == 0) {
        /* Drop every inherited descriptor but the two ends used here, first thing: a copy of another
           thread's descriptor would keep its open file (and any flock on it) alive while this
           child lives. */
        int lo = ready[1] < done[0] ? ready[1] : done[0], hi = ready[1] < done[0] ? done[0] : ready[1];
        if (lo > 0) syscall(SYS_close_range, 0U, (unsigned)lo - 1, 0);
        if (hi > lo + 1) syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0);
        syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0);
        char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
        ssize_t w = write(ready[1], &c, 1);
        (void)w;
        ssize_t r = read(done[0], &c, 1);  /* until the parent has what it needs */
        (void)r;
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char c = 'n';
    ssize_t r = read(ready[0], &c, 1);
    close(ready[0]);
    int fd = -1, e = EPERM;
    if (r == 1 && c == 'y') {
        char path[64], map[64];
        snprintf(map, sizeof map, "0 %u %u\n", host_base, size);
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        if (write_file(path, map) == 0) {
            snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
            (void)write_file(path, "allow");
            snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
            if (write_file(path, map) == 0) {
                snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
            }
        }
        if (fd < 0) e = errno;
    }
    close(done[1]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    if (fd < 0) errno = e;
    return fd;
}

int sbx_mount_idmapped(const char *source, const char *target, int userns_fd) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) return -1;
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attr.userns_fd = (unsigned long long)userns_fd;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) { int e = errno; close(tree); errno = e; return -1; }
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) { int e = errno; close(tree); errno = e; return -1; }
    close(tree);
    return 0;
}
