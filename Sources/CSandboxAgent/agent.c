#define _GNU_SOURCE
#include "CSandboxAgent.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <sys/inotify.h>
#include <linux/openat2.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const char *stage_names[] = {"clone", "setsid", "controlling tty", "dup2", "setgroups", "setresgid",
                                    "setresuid", "chdir", "execve", "capset"};

/* --- spawn: clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn ---------------------------------
   The agent is a multi-threaded Swift process: fork() would copy its page tables and then take
   copy-on-write faults on every page either side touches before the exec. A CLONE_VM|CLONE_VFORK
   child runs in the agent's memory on a stack of its own while the calling thread waits (until the
   child's execve or _exit), so it must not allocate, lock or touch shared state: it makes raw
   system calls only (glibc's setgroups/setresuid would broadcast to "all threads" of the agent),
   and reports a failure (stage + errno) in `struct child_report`, which the parent reads once the
   vfork returns. Every other signal is blocked around the clone, so no agent handler can run on the
   child's stack before the child has reset the dispositions. */

struct child_ctx {
    const struct sbx_spawn_args *a;
    const char *path_env;        /* the request's PATH value (NULL: unset) */
    char **script_argv;          /* {"/bin/sh", <slot>, argv[1..], NULL} for ENOEXEC, like execvp */
    long max_fd;                 /* the close-on-exec fallback's bound, read by the parent */
    volatile int stage;          /* -1: exec'd; else the failing stage (stage_names) */
    volatile int err;
};

static _Noreturn void child_fail(struct child_ctx *c, int stage, int err) {
    c->stage = stage;
    c->err = err;
    syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

/* Byte loops instead of libc's string functions: the agent is linked with lazy binding, and a
   first call through the PLT must not resolve a symbol in the child. */
static size_t c_len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int c_has_slash(const char *s) { for (; *s; s++) if (*s == '/') return 1; return 0; }
static const char *c_colon_or_end(const char *s) { while (*s && *s != ':') s++; return s; }
static void c_copy(char *d, const char *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = s[i]; }

/* dup2 as dup3 (the one every architecture has; arm64 has no dup2): the same fd stays as it is. */
static long c_dup2(int from, int to) {
    if (from == to) return syscall(SYS_fcntl, from, F_GETFD) < 0 ? -1 : to;
    return syscall(SYS_dup3, from, to, 0);
}

/* execve, and on ENOEXEC the file as a /bin/sh script (execvp's fallback). Returns errno. */
static int child_execve(struct child_ctx *c, const char *path) {
    syscall(SYS_execve, path, c->a->argv, c->a->envp);
    int e = errno;
    if (e == ENOEXEC && c->script_argv) {
        c->script_argv[1] = (char *)path;
        syscall(SYS_execve, "/bin/sh", c->script_argv, c->a->envp);
        e = errno;
    }
    return e;
}

/* execvp's search: a name with '/' as is, else each element of the request's PATH (default
   "/bin:/usr/bin", an empty element = the working directory); EACCES is remembered and the search
   goes on, ENOENT-like errors go on, any other error ends it. Returns the errno to report. */
static int child_execvp(struct child_ctx *c) {
    const char *file = c->a->argv[0];
    if (file == NULL || *file == '\0') return ENOENT;
    if (c_has_slash(file)) return child_execve(c, file);
    size_t flen = c_len(file);
    if (flen > NAME_MAX) return ENAMETOOLONG;
    const char *p = c->path_env ? c->path_env : "/bin:/usr/bin";
    char buf[PATH_MAX + NAME_MAX + 2];
    int got_eacces = 0;
    for (;;) {
        const char *end = c_colon_or_end(p);
        size_t dlen = (size_t)(end - p);
        if (dlen <= PATH_MAX) {
            size_t n = 0;
            if (dlen > 0) {
                c_copy(buf, p, dlen);
                n = dlen;
                buf[n++] = '/';
            }
            c_copy(buf + n, file, flen + 1);
            int e = child_execve(c, buf);
            switch (e) {
            case EACCES: got_eacces = 1; break;
            case ENOENT: case ESTALE: case ENOTDIR: case ENODEV: case ETIMEDOUT: break;
            default: return e;
            }
        }
        if (*end == '\0') break;
        p = end + 1;
    }
    return got_eacces ? EACCES : ENOENT;
}

static int child_main(void *arg) {
    struct child_ctx *c = arg;
    const struct sbx_spawn_args *a = c->a;
    /* Default dispositions (the kernel's sigaction, not glibc's: no handler of the agent's may run
       here), then an empty mask. */
    struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } dfl = {0};
    for (int s = 1; s < _NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
    }
    unsigned long none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
    if (syscall(SYS_setsid) < 0) child_fail(c, 1, errno);
    if (a->pty_slave >= 0) {
        if (syscall(SYS_ioctl, a->pty_slave, TIOCSCTTY, 0) != 0) child_fail(c, 2, errno);
        for (int fd = 0; fd < 3; fd++)
            if (c_dup2(a->pty_slave, fd) < 0) child_fail(c, 3, errno);
    } else {
        int from[3] = {a->stdin_fd, a->stdout_fd, a->stderr_fd};
        for (int fd = 0; fd < 3; fd++)
            if (c_dup2(from[fd], fd) < 0) child_fail(c, 3, errno);
    }
    long oom = syscall(SYS_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom >= 0) {
        syscall(SYS_write, oom, "1000", 4);
        syscall(SYS_close, oom);
    }
    /* Empty the bounding set while CAP_SETPCAP is still effective (setresuid below clears it):
       a user process cannot regain any capability, not even through a file capability of a
       binary it runs. An agent without CAP_SETPCAP (an older bundle) leaves it as it was. */
    for (int cap = 0; cap < 64; cap++) {
        if (a->uid == 0 && (a->keep_caps >> cap) & 1) continue;  /* a template build's RUN step as root */
        if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    }
    gid_t g = a->gid;
    if (syscall(SYS_setgroups, 1, &g) != 0) child_fail(c, 4, errno);
    if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) != 0) child_fail(c, 5, errno);
    if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) != 0) child_fail(c, 6, errno);
    /* setresuid to a non-zero uid already cleared the capability sets; for a profile whose
       uid is 0 clear them explicitly, so no user process ever holds the agent's capabilities. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct none_caps[2] = {{0, 0, 0}, {0, 0, 0}};
    if (a->uid == 0 && a->keep_caps) {
        /* Only a template build's root steps: the kept capabilities (of the sandbox's user
           namespace) stay effective and permitted; execve keeps them (no_new_privs: never more). */
        unsigned int lo = (unsigned int)(a->keep_caps & 0xffffffffu), hi = (unsigned int)(a->keep_caps >> 32);
        none_caps[0].effective = none_caps[0].permitted = lo;
        none_caps[1].effective = none_caps[1].permitted = hi;
    }
    if (syscall(SYS_capset, &hdr, none_caps) != 0) child_fail(c, 9, errno);
    if (syscall(SYS_chdir, a->cwd) != 0) child_fail(c, 7, errno);
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (long fd = 3; fd < c->max_fd; fd++) syscall(SYS_fcntl, (int)fd, F_SETFD, FD_CLOEXEC);
    }
    child_fail(c, 8, child_execvp(c));
}

/* The request's PATH=, or NULL when its environment has none. */
static const char *env_path(char *const *envp) {
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
    return NULL;
}

pid_t sbx_agent_spawn(const struct sbx_spawn_args *a, int *child_errno, const char **stage) {
    struct child_ctx c = {.a = a, .path_env = env_path(a->envp), .script_argv = NULL, .max_fd = 65536, .stage = -1, .err = 0};
    size_t argc = 0;
    while (a->argv[argc]) argc++;
    c.script_argv = calloc(argc + 2, sizeof(char *));  /* NULL: no script fallback (out of memory) */
    if (c.script_argv) {
        c.script_argv[0] = "/bin/sh";
        for (size_t i = 1; i < argc; i++) c.script_argv[i + 1] = a->argv[i];
    }
    struct rlimit rl;  /* through syscall(): also binds it before the child needs it */
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536) c.max_fd = (long)rl.rlim_cur;
    const size_t stack_size = 64 * 1024 + PATH_MAX + NAME_MAX;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        *child_errno = errno;
        *stage = "stack";
        free(c.script_argv);
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    errno = 0;  /* binds __errno_location, which the child calls */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = clone(child_main, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    free(c.script_argv);
    if (pid < 0) {
        *child_errno = clone_errno;
        *stage = stage_names[0];
        return -1;
    }
    if (c.stage >= 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        *child_errno = c.err;
        *stage = c.stage < 10 ? stage_names[c.stage] : "child";
        return -1;
    }
    return pid;
}

int sbx_agent_openpty(int *master, int *slave, unsigned short cols, unsigned short rows) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    if (openpty(master, slave, NULL, NULL, &ws) != 0) return -1;
    fcntl(*master, F_SETFD, FD_CLOEXEC);
    fcntl(*slave, F_SETFD, FD_CLOEXEC);
    fcntl(*master, F_SETFL, fcntl(*master, F_GETFL) | O_NONBLOCK);
    return 0;
}

int sbx_agent_set_winsize(int fd, unsigned short cols, unsigned short rows) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int sbx_agent_setfsuid(uid_t uid) { return setfsuid(uid); }
int sbx_agent_setfsgid(gid_t gid) { return setfsgid(gid); }

int sbx_agent_harden(void) {
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int sbx_agent_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);  /* a write past RLIMIT_FSIZE fails with EFBIG instead of killing the agent */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int sbx_agent_read_signal(int fd) {
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) {
            /* SIGTERM/SIGINT end the sandbox only from outside it (the runtime, the host: no sender
               pid in this pid namespace). A process inside running as the sandbox's root shares
               the agent's uid, so kill(2) lets it queue them: ignored. */
            if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && si.ssi_pid != 0) continue;
            return (int)si.ssi_signo;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        return -1;
    }
}

int sbx_agent_wifexited(int s) { return WIFEXITED(s); }
int sbx_agent_wexitstatus(int s) { return WEXITSTATUS(s); }
int sbx_agent_wifsignaled(int s) { return WIFSIGNALED(s); }
int sbx_agent_wtermsig(int s) { return WTERMSIG(s); }

int sbx_agent_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int sbx_agent_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int sbx_agent_on_kernel_fs(int fd) {
    struct statfs s;
    if (fstatfs(fd, &s) != 0) return 1;
    return s.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ || s.f_type == 0x62656572 /* SYSFS_MAGIC */;
}

long sbx_agent_llistxattr(const char *path, char *list, unsigned long size) { return (long)llistxattr(path, list, size); }
long sbx_agent_lgetxattr(const char *path, const char *name, void *value, unsigned long size) {
    return (long)lgetxattr(path, name, value, size);
}
int sbx_agent_lsetxattr(const char *path, const char *name, const void *value, unsigned long size) {
    return lsetxattr(path, name, value, size, 0);
}

int sbx_agent_through_magic_link(const char *path, int follow_final) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC | (follow_final ? 0 : O_NOFOLLOW);
    how.resolve = RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    return errno == ELOOP ? 1 : 0;
}

int sbx_agent_inotify_init(void) { return inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }
int sbx_agent_inotify_add(int fd, const char *path, unsigned int mask) { return inotify_add_watch(fd, path, mask); }
