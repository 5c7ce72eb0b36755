#define _GNU_SOURCE
#include "CSandboxAgent.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

static void child_fail(int pipe_fd, int stage) {
    int msg[2] = {stage, errno};
    ssize_t w = write(pipe_fd, msg, sizeof msg);
    (void)w;
    _exit(127);
}

static const char *stage_names[] = {"fork", "setsid", "controlling tty", "dup2", "setgroups", "setresgid",
                                    "setresuid", "chdir", "execve", "capset"};

pid_t sbx_agent_spawn(const struct sbx_spawn_args *a, int *child_errno, const char **stage) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        *child_errno = errno;
        *stage = "pipe";
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *child_errno = errno;
        *stage = stage_names[0];
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        sigset_t none;
        sigemptyset(&none);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (setsid() < 0) child_fail(p[1], 1);
        if (a->pty_slave >= 0) {
            if (ioctl(a->pty_slave, TIOCSCTTY, 0) != 0) child_fail(p[1], 2);
            if (dup2(a->pty_slave, 0) < 0 || dup2(a->pty_slave, 1) < 0 || dup2(a->pty_slave, 2) < 0) child_fail(p[1], 3);
        } else {
            if (dup2(a->stdin_fd, 0) < 0 || dup2(a->stdout_fd, 1) < 0 || dup2(a->stderr_fd, 2) < 0) child_fail(p[1], 3);
        }
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0) {
            ssize_t w = write(oom, "1000", 4);
            (void)w;
            close(oom);
        }
        /* Empty the bounding set while CAP_SETPCAP is still effective (setresuid below clears it):
           a user process cannot regain any capability, not even through a file capability of a
           binary it runs. An agent without CAP_SETPCAP (an older bundle) leaves it as it was. */
        for (int c = 0; c < 64; c++) {
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno == EINVAL) break;
        }
        gid_t g = a->gid;
        if (setgroups(1, &g) != 0) child_fail(p[1], 4);
        if (setresgid(a->gid, a->gid, a->gid) != 0) child_fail(p[1], 5);
        if (setresuid(a->uid, a->uid, a->uid) != 0) child_fail(p[1], 6);
        /* setresuid to a non-zero uid already cleared the capability sets; for a profile whose
           uid is 0 clear them explicitly, so no user process ever holds the agent's capabilities. */
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct none_caps[2];
        memset(none_caps, 0, sizeof none_caps);
        if (syscall(SYS_capset, &hdr, none_caps) != 0) child_fail(p[1], 9);
        if (chdir(a->cwd) != 0) child_fail(p[1], 7);
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            long max = sysconf(_SC_OPEN_MAX);
            for (int fd = 3; fd < max && fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        environ = (char **)a->envp;
        execvp(a->argv[0], a->argv);
        child_fail(p[1], 8);
    }
    close(p[1]);
    int msg[2];
    ssize_t n;
    do { n = read(p[0], msg, sizeof msg); } while (n < 0 && errno == EINTR);
    close(p[0]);
    if (n == (ssize_t)sizeof msg) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        *child_errno = msg[1];
        *stage = (msg[0] >= 0 && msg[0] < 10) ? stage_names[msg[0]] : "child";
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
    ssize_t n = read(fd, &si, sizeof si);
    if (n == (ssize_t)sizeof si) return (int)si.ssi_signo;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
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
