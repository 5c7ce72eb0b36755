#ifndef CSANDBOXAGENT_H
#define CSANDBOXAGENT_H
#include <sys/types.h>
#include <signal.h>

/// Everything a child needs, prepared by the agent before the clone (the child only makes system calls).
struct sbx_spawn_args {
    char *const *argv;       ///< NULL-terminated; argv[0] is looked up in envp's PATH
    char *const *envp;       ///< NULL-terminated KEY=value strings: the whole environment
    const char *cwd;
    uid_t uid;
    gid_t gid;
    int stdin_fd;            ///< ignored when pty_slave >= 0
    int stdout_fd;
    int stderr_fd;
    int pty_slave;           ///< >= 0: becomes the controlling terminal and fds 0/1/2
    unsigned long long keep_caps; ///< capabilities (bit n = capability n) a uid-0 child keeps; 0 for every sandbox but a template build's
};

/// clone(CLONE_VM | CLONE_VFORK) on a stack of its own, as posix_spawn (the child makes raw system
/// calls only) + (child) default signals, setsid, controlling tty or dup2, setgroups/setresgid/setresuid to
/// the sandbox user, oom_score_adj 1000, bounding set emptied, capabilities cleared, chdir, close every other fd,
/// execvp (PATH from envp, ENOEXEC → /bin/sh). Returns the child's
/// pid, or -1 with `*child_errno` set (and `*stage` naming the step) when the clone or any child step
/// failed (the child then already exited with 127).
pid_t sbx_agent_spawn(const struct sbx_spawn_args *args, int *child_errno, const char **stage);

/// openpty with a window size; both ends close-on-exec, master non-blocking. 0 or -1 (errno).
int sbx_agent_openpty(int *master, int *slave, unsigned short cols, unsigned short rows);
/// TIOCSWINSZ on a PTY master. 0 or -1 (errno).
int sbx_agent_set_winsize(int fd, unsigned short cols, unsigned short rows);
/// setfsuid/setfsgid (return the previous id, as the kernel does).
int sbx_agent_setfsuid(uid_t uid);
int sbx_agent_setfsgid(gid_t gid);
/// prctl(PR_SET_DUMPABLE, 0) and PR_SET_CHILD_SUBREAPER(1). 0 or -1.
int sbx_agent_harden(void);
/// Blocks SIGCHLD, SIGTERM, SIGINT, SIGPIPE(ignored) and returns a non-blocking signalfd for the first three.
int sbx_agent_signalfd(void);
/// Reads one signal from the signalfd: its number, 0 when none is pending, -1 on error.
int sbx_agent_read_signal(int fd);
/// pipe2(fds, O_CLOEXEC).
int sbx_agent_pipe(int fds[2]);
/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK).
int sbx_agent_accept(int fd);
/// Wait-status macros.
int sbx_agent_wifexited(int status);
int sbx_agent_wexitstatus(int status);
int sbx_agent_wifsignaled(int status);
int sbx_agent_wtermsig(int status);
/// 1 when fd is on procfs or sysfs (or fstatfs fails), else 0.
int sbx_agent_on_kernel_fs(int fd);
/// 1 when resolving path (its last component too when follow_final) goes through a /proc magic
/// link such as /proc/<pid>/root or /proc/<pid>/fd/<n> (openat2 with RESOLVE_NO_MAGICLINKS), else 0.
int sbx_agent_through_magic_link(const char *path, int follow_final);
/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
int sbx_agent_inotify_init(void);
/// inotify_add_watch.
int sbx_agent_inotify_add(int fd, const char *path, unsigned int mask);
/// llistxattr / lgetxattr / lsetxattr (flags 0): a final symlink is not followed. -1 (errno) on failure.
long sbx_agent_llistxattr(const char *path, char *list, unsigned long size);
long sbx_agent_lgetxattr(const char *path, const char *name, void *value, unsigned long size);
int sbx_agent_lsetxattr(const char *path, const char *name, const void *value, unsigned long size);

#endif
