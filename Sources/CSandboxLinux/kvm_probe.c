// Runs a few bytes of real-mode code on a KVM vCPU, to tell "/dev/kvm opens" from "a guest runs".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "CSandboxLinux.h"

enum { GUEST_ADDR = 0x1000, GUEST_SIZE = 0x1000, PROBE_PORT = 0x10, PROBE_VALUE = 0x42 };

static void say(char *msg, size_t msglen, const char *fmt, ...) {
    if (msg == NULL || msglen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static const char *exit_name(uint32_t reason) {
    switch (reason) {
    case KVM_EXIT_UNKNOWN: return "UNKNOWN";
    case KVM_EXIT_EXCEPTION: return "EXCEPTION";
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN (triple fault)";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    default: return "other";
    }
}

/// Describes an exit that is not the expected I/O: the reason and what KVM says about it.
static void describe_exit(const struct kvm_run *run, char *msg, size_t msglen, const char *when) {
    switch (run->exit_reason) {
    case KVM_EXIT_FAIL_ENTRY:
        say(msg, msglen, "%s exit was FAIL_ENTRY (hardware entry failure reason 0x%llx)", when,
            (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        say(msg, msglen, "%s exit was INTERNAL_ERROR (suberror %u)", when, run->internal.suberror);
        break;
    case KVM_EXIT_IO:
        say(msg, msglen, "%s exit was IO on port 0x%x (size %u, direction %s), not an 8-bit OUT to port 0x%x", when,
            run->io.port, run->io.size, run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", PROBE_PORT);
        break;
    default:
        say(msg, msglen, "%s exit was %s (exit reason %u)", when, exit_name(run->exit_reason), run->exit_reason);
    }
}

/// Arms a one-shot timer that sends `sig` to the calling thread only, after `timeout_ms`.
static int arm_thread_timer(int sig, unsigned timeout_ms, timer_t *timer) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = sig;
    sev._sigev_un._tid = gettid();  // glibc 2.36 has no sigev_notify_thread_id macro
    if (timer_create(CLOCK_MONOTONIC, &sev, timer) != 0) return -1;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = timeout_ms / 1000;
    its.it_value.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    if (timer_settime(*timer, 0, &its, NULL) != 0) {
        timer_delete(*timer);
        return -1;
    }
    return 0;
}

/// The deadline works without a signal handler: `sig` stays blocked in this thread except inside
/// KVM_RUN (KVM_SET_SIGNAL_MASK), where a pending signal makes KVM_RUN return EINTR. KVM puts the
/// thread's own mask back before returning, so the signal is never delivered; it is consumed with
/// sigtimedwait afterwards. Nothing process-wide changes.
int sbx_kvm_run_guest(const unsigned char *code, size_t len, unsigned timeout_ms, char *msg, size_t msglen) {
    say(msg, msglen, "no result");
    if (code == NULL || len == 0 || len > GUEST_SIZE) {
        say(msg, msglen, "guest code must be 1 to %d bytes", GUEST_SIZE);
        return SBX_KVM_VCPU_FAILED;
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        say(msg, msglen, "/dev/kvm cannot be opened: %s", strerror(errno));
        return SBX_KVM_UNAVAILABLE;
    }
    int result = SBX_KVM_VCPU_FAILED;
    int vm = -1, vcpu = -1;
    unsigned char *mem = MAP_FAILED;
    struct kvm_run *run = MAP_FAILED;
    long run_size = 0;

    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        say(msg, msglen, "KVM_GET_API_VERSION returned %d, want %d", api, KVM_API_VERSION);
        goto out;
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) { say(msg, msglen, "KVM_CREATE_VM failed: %s", strerror(errno)); goto out; }
    mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { say(msg, msglen, "mmap of guest memory failed: %s", strerror(errno)); goto out; }
    memcpy(mem, code, len);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = GUEST_ADDR, .memory_size = GUEST_SIZE, .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        say(msg, msglen, "KVM_SET_USER_MEMORY_REGION failed: %s", strerror(errno));
        goto out;
    }
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) { say(msg, msglen, "KVM_CREATE_VCPU failed: %s", strerror(errno)); goto out; }
    run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (long)sizeof(struct kvm_run)) {
        say(msg, msglen, "KVM_GET_VCPU_MMAP_SIZE returned %ld: %s", run_size, strerror(errno));
        goto out;
    }
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) { say(msg, msglen, "mmap of the vCPU run area failed: %s", strerror(errno)); goto out; }

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) { say(msg, msglen, "KVM_GET_SREGS failed: %s", strerror(errno)); goto out; }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { say(msg, msglen, "KVM_SET_SREGS failed: %s", strerror(errno)); goto out; }
    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = GUEST_ADDR;
    regs.rflags = 2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) { say(msg, msglen, "KVM_SET_REGS failed: %s", strerror(errno)); goto out; }

    // The deadline: see the comment above the function.
    const int sig = SIGRTMAX;
    sigset_t only_sig, old_mask;
    sigemptyset(&only_sig);
    sigaddset(&only_sig, sig);
    if (pthread_sigmask(SIG_BLOCK, &only_sig, &old_mask) != 0) { say(msg, msglen, "pthread_sigmask failed"); goto out; }
    uint64_t bits = 0;  // the kernel's sigset_t: one bit per signal 1..64
    for (int s = 1; s <= 64; s++) {
        if (s != sig && sigismember(&old_mask, s) == 1) bits |= (uint64_t)1 << (s - 1);
    }
    union { struct kvm_signal_mask head; unsigned char raw[sizeof(struct kvm_signal_mask) + sizeof bits]; } kmask;
    kmask.head.len = sizeof bits;
    memcpy(kmask.head.sigset, &bits, sizeof bits);
    timer_t timer;
    int timer_armed = 0;
    if (ioctl(vcpu, KVM_SET_SIGNAL_MASK, &kmask) < 0) {
        say(msg, msglen, "KVM_SET_SIGNAL_MASK failed: %s", strerror(errno));
    } else if (arm_thread_timer(sig, timeout_ms, &timer) != 0) {
        say(msg, msglen, "timer_create failed: %s", strerror(errno));
    } else {
        timer_armed = 1;
        int io_seen = 0;
        for (int exits = 0; exits < 4; exits++) {
            if (ioctl(vcpu, KVM_RUN, 0) < 0) {
                if (errno != EINTR) { say(msg, msglen, "KVM_RUN failed: %s", strerror(errno)); break; }
                struct itimerspec left;
                if (timer_gettime(timer, &left) == 0 && left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0) {
                    // After the I/O exit the guest has run: only a missing HLT exit is late, which is fine.
                    if (!io_seen) say(msg, msglen, "KVM_RUN did not return within %u ms: the vCPU never exited to user space", timeout_ms);
                    break;
                }
                exits--;  // interrupted by something else: run again
                continue;
            }
            if (!io_seen) {
                const unsigned char *data = (const unsigned char *)run + run->io.data_offset;
                if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
                    run->io.port != PROBE_PORT || run->io.size != 1 || run->io.count != 1) {
                    describe_exit(run, msg, msglen, "the first");
                    break;
                }
                if (*data != PROBE_VALUE) {
                    say(msg, msglen, "the guest wrote 0x%x to port 0x%x, want 0x%x", *data, PROBE_PORT, PROBE_VALUE);
                    break;
                }
                io_seen = 1;
                result = SBX_KVM_RAN;
                say(msg, msglen, "a KVM vCPU ran a real-mode test guest: OUT 0x%x to port 0x%x", PROBE_VALUE, PROBE_PORT);
                continue;
            }
            if (run->exit_reason == KVM_EXIT_HLT) {
                say(msg, msglen, "a KVM vCPU ran a real-mode test guest: OUT 0x%x to port 0x%x, then HLT", PROBE_VALUE, PROBE_PORT);
            }
            break;  // after the I/O exit anything else is fine: the vCPU ran guest code
        }
    }
    if (timer_armed) timer_delete(timer);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&only_sig, NULL, &zero) == sig) {}  // drop a deadline signal left pending
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

out:
    if (run != MAP_FAILED) munmap(run, (size_t)run_size);
    if (vcpu >= 0) close(vcpu);
    if (mem != MAP_FAILED) munmap(mem, GUEST_SIZE);
    if (vm >= 0) close(vm);
    close(kvm);
    return result;
}

int sbx_kvm_probe(char *msg, size_t msglen) {
    // mov $0x42, %al; out %al, $0x10; hlt
    static const unsigned char guest[] = {0xb0, PROBE_VALUE, 0xe6, PROBE_PORT, 0xf4};
    return sbx_kvm_run_guest(guest, sizeof guest, 2000, msg, msglen);
}
