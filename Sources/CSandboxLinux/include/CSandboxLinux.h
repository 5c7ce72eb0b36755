#ifndef CSANDBOXLINUX_H
#define CSANDBOXLINUX_H
#include <sys/types.h>
#include <spawn.h>

/// Marks the calling process as a child subreaper (PR_SET_CHILD_SUBREAPER). Returns 0 or -1 (errno set).
int sbx_set_child_subreaper(void);
/// Returns the no_new_privs flag of the calling process, or -1 (errno set).
int sbx_get_no_new_privs(void);
/// WIFEXITED / WEXITSTATUS / WIFSIGNALED / WTERMSIG, which Swift sees only as macros.
int sbx_wifexited(int status);
int sbx_wexitstatus(int status);
int sbx_wifsignaled(int status);
int sbx_wtermsig(int status);
/// Names the calling thread (PR_SET_NAME; at most 15 bytes are kept). Returns 0 or -1.
int sbx_set_thread_name(const char *name);
/// pipe2(fds, O_CLOEXEC).
int sbx_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addclosefrom_np (a GNU extension).
int sbx_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
/// POSIX_SPAWN_USEVFORK (a GNU extension).
short sbx_spawn_usevfork(void);
/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
int sbx_eventfd_nonblock(void);
/// Reads an eventfd counter without blocking: the count, 0 when nothing was signalled, -1 on error.
long long sbx_eventfd_take(int fd);

/// sbx_kvm_probe / sbx_kvm_run_guest answers: a vCPU ran the guest, KVM opened but the guest did
/// not run as expected, or /dev/kvm cannot be opened.
#define SBX_KVM_RAN 1
#define SBX_KVM_VCPU_FAILED 0
#define SBX_KVM_UNAVAILABLE (-1)
/// Checks that KVM can run a guest, not only that /dev/kvm opens: creates a VM with one page of
/// real-mode code (`mov $0x42,%al; out %al,$0x10; hlt`), runs one vCPU and requires the first exit
/// to be that OUT. Bounded by a 2 s deadline. Writes what happened (or what failed) to `msg`.
/// Returns SBX_KVM_RAN, SBX_KVM_VCPU_FAILED or SBX_KVM_UNAVAILABLE.
int sbx_kvm_probe(char *msg, size_t msglen);
/// sbx_kvm_probe with other guest code (at most 4096 bytes, loaded and started at 0x1000 in real
/// mode) and deadline; the first exit must still be an 8-bit OUT of 0x42 to port 0x10.
int sbx_kvm_run_guest(const unsigned char *code, size_t len, unsigned timeout_ms, char *msg, size_t msglen);
#endif
