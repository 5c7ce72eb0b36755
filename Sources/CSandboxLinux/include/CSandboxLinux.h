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

/// A listening socket to create inside a sandbox's network namespace (an IPv4 or IPv6 literal).
struct sbx_listen { const char *address; int port; int udp; };
/// Creates a network namespace on the calling thread, brings its loopback up, binds and listens
/// on `l` there (fds[i], non-blocking, close-on-exec), opens the namespace (*nsfd) and moves the
/// thread back. Returns 0 or -errno (nothing left open). Run it on a thread of its own.
int sbx_netns_create(const struct sbx_listen *l, int n, int *fds, int *nsfd);
/// Binds `l` inside the existing network namespace `nsfd` (as sbx_netns_create does).
int sbx_netns_bind_in(int nsfd, const struct sbx_listen *l, int n, int *fds);
/// A socket of `family`/`type` created inside the network namespace `nsfd` (the calling thread
/// moves there and back). Returns the descriptor or -errno.
int sbx_netns_socket(int nsfd, int family, int type);

/// sbx_kvm_probe / sbx_kvm_run_guest answers: a vCPU ran the guest, KVM opened but the guest did
/// not run as expected, or /dev/kvm cannot be opened.
#define SBX_KVM_RAN 1
#define SBX_KVM_VCPU_FAILED 0
#define SBX_KVM_UNAVAILABLE (-1)
/// sbx_kvm_run_guest's guest modes: real mode (the vCPU as it comes out of reset), or 64-bit long
/// mode set up from the host side: CPUID from KVM_GET_SUPPORTED_CPUID; page tables PML4 -> PDPT ->
/// PD with 2 MiB pages mapping the first 1 GiB at 0 (identity) and at 0xffffffff80000000 (Linux's
/// kernel map); CR3, CR4.PAE, CR0.PE|PG, EFER.LME|LMA; a 64-bit code segment (L=1) and flat data
/// segments, with a GDT; an IDT whose only present gate, #BP, runs `inc %rbx; iretq`.
#define SBX_KVM_REAL_MODE 0
#define SBX_KVM_LONG_MODE 1
/// Checks that KVM can run a guest the way a 64-bit guest kernel runs, not only that /dev/kvm
/// opens. Three stages, each a new VM with one vCPU whose first exit must be an 8-bit OUT of 0x42
/// to port 0x10: (1) `mov $0x42,%al; out %al,$0x10; hlt` in real mode; (2) in long mode, code that
/// writes 0x42 only when decoded as 64-bit code; (3) in long mode, an INT3 whose handler in the
/// guest's IDT must run before the OUT (a Linux kernel executes INT3 at boot). One 2 s deadline
/// covers all stages. Writes what happened (or which stage failed, and how) to `msg`, noting when
/// the KVM module is kvm_pvm; the answer comes from running the vCPU only.
/// Returns SBX_KVM_RAN, SBX_KVM_VCPU_FAILED or SBX_KVM_UNAVAILABLE.
int sbx_kvm_probe(char *msg, size_t msglen);
/// One stage of sbx_kvm_probe with other guest code (at most 4096 bytes at guest physical 0x1000,
/// started there in real mode, at virtual 0xffffffff80001000 in long mode) and deadline; the first
/// exit must still be an 8-bit OUT of 0x42 to port 0x10. `mode` is SBX_KVM_REAL_MODE or
/// SBX_KVM_LONG_MODE.
int sbx_kvm_run_guest(int mode, const unsigned char *code, size_t len, unsigned timeout_ms, char *msg, size_t msglen);
/// fsetxattr(2) and fgetxattr(2), which Swift's Glibc module does not bring.
int sbx_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags);
long sbx_fgetxattr(int fd, const char *name, void *value, size_t size);
/// flistxattr(2), llistxattr(2), lgetxattr(2), lsetxattr(2) (a tree copy keeps every attribute).
long sbx_flistxattr(int fd, char *list, size_t size);
long sbx_llistxattr(const char *path, char *list, size_t size);
long sbx_lgetxattr(const char *path, const char *name, void *value, size_t size);
int sbx_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags);
/// A user namespace whose ids 0..size-1 are host ids host_base.. (uid and gid alike), as an open
/// /proc/PID/ns/user descriptor (the short-lived child that made it is reaped); -1 with errno.
int sbx_userns_fd(unsigned host_base, unsigned size);
/// Mounts a read-only, nosuid, nodev clone of `source` at `target` whose ids are shifted by the
/// user namespace `userns_fd` (an idmapped mount: a file of uid 0 shows as the namespace's 0).
int sbx_mount_idmapped(const char *source, const char *target, int userns_fd);
#endif
