#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <spawn.h>
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include "CSandboxLinux.h"
#include <sys/prctl.h>
#include <sys/wait.h>

int sbx_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
int sbx_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }
int sbx_wifexited(int status) { return WIFEXITED(status); }
int sbx_wexitstatus(int status) { return WEXITSTATUS(status); }
int sbx_wifsignaled(int status) { return WIFSIGNALED(status); }
int sbx_wtermsig(int status) { return WTERMSIG(status); }

int sbx_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int sbx_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
short sbx_spawn_usevfork(void) { return POSIX_SPAWN_USEVFORK; }

int sbx_eventfd_nonblock(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
long long sbx_eventfd_take(int fd) {
    uint64_t v = 0;
    ssize_t n = read(fd, &v, sizeof v);
    if (n == (ssize_t)sizeof v) return (long long)v;
    return (n < 0 && errno == EAGAIN) ? 0 : -1;
}

int sbx_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

#include <sys/xattr.h>
int sbx_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags) { return fsetxattr(fd, name, value, size, flags); }
long sbx_fgetxattr(int fd, const char *name, void *value, size_t size) { return (long)fgetxattr(fd, name, value, size); }
long sbx_flistxattr(int fd, char *list, size_t size) { return (long)flistxattr(fd, list, size); }
long sbx_llistxattr(const char *path, char *list, size_t size) { return (long)llistxattr(path, list, size); }
long sbx_lgetxattr(const char *path, const char *name, void *value, size_t size) { return (long)lgetxattr(path, name, value, size); }
int sbx_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags) { return lsetxattr(path, name, value, size, flags); }
