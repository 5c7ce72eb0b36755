// Runs a few bytes of guest code on a KVM vCPU, to tell "/dev/kvm opens" from "a guest kernel can
// run": first in real mode, then in 64-bit long mode set up from the host side (the mode a guest
// kernel runs in), then an INT3 taken through the guest's own IDT (every Linux kernel does that at
// boot: int3_selftest, and INT3 is how it patches its own code).
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

// Guest physical memory, one slot from address 0: the code page, page tables, a GDT, an IDT, an
// exception handler and a stack. In long mode the tables map the first 1 GiB twice with 2 MiB
// pages: at virtual 0 (identity) and at KERNEL_MAP, where Linux links its kernel; the code runs
// there. Only MEM_SIZE bytes are backed.
enum {
    MEM_SIZE = 0x8000,
    CODE_ADDR = 0x1000, CODE_SIZE = 0x1000,
    PML4_ADDR = 0x2000, PDPT_ADDR = 0x3000, PD_ADDR = 0x4000,
    GDT_ADDR = 0x5000, IDT_ADDR = 0x5800, IDT_VECTORS = 32, HANDLER_ADDR = 0x6000, STACK_TOP = 0x8000,
    INT3_VECTOR = 3,  // #BP, raised by INT3
    PROBE_PORT = 0x10, PROBE_VALUE = 0x42,
};
#define KERNEL_MAP 0xffffffff80000000ull  // Linux's __START_KERNEL_map
// Page-table entry bits, control-register and EFER bits.
#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_PS (1ull << 7)
#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_AM (1ull << 18)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
// GDT selectors: 0 null, 1 64-bit code, 2 data.
enum { SEL_CODE = 1 << 3, SEL_DATA = 2 << 3 };

static void say(char *msg, size_t msglen, const char *fmt, ...) {
    if (msg == NULL || msglen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static const char *mode_name(int mode) {
    return mode == SBX_KVM_LONG_MODE ? "64-bit long-mode" : "real-mode";
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

/// Describes an exit that is not the expected I/O: the reason, what KVM says about it, and where
/// the guest was.
static void describe_exit(int vcpu, const struct kvm_run *run, char *msg, size_t msglen, const char *when) {
    char where[64] = "";
    struct kvm_regs regs;
    if (ioctl(vcpu, KVM_GET_REGS, &regs) == 0) snprintf(where, sizeof where, ", guest RIP 0x%llx", (unsigned long long)regs.rip);
    switch (run->exit_reason) {
    case KVM_EXIT_FAIL_ENTRY:
        say(msg, msglen, "%s exit was FAIL_ENTRY (hardware entry failure reason 0x%llx%s)", when,
            (unsigned long long)run->fail_entry.hardware_entry_failure_reason, where);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        say(msg, msglen, "%s exit was INTERNAL_ERROR (suberror %u%s%s)", when, run->internal.suberror,
            run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": KVM could not emulate an instruction" : "", where);
        break;
    case KVM_EXIT_IO:
        say(msg, msglen, "%s exit was IO on port 0x%x (size %u, direction %s), not an 8-bit OUT to port 0x%x%s", when,
            run->io.port, run->io.size, run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", PROBE_PORT, where);
        break;
    default:
        say(msg, msglen, "%s exit was %s (exit reason %u%s)", when, exit_name(run->exit_reason), run->exit_reason, where);
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

static void set_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type, int code64) {
    memset(seg, 0, sizeof *seg);
    seg->base = 0;
    seg->limit = 0xffffffff;
    seg->selector = selector;
    seg->type = type;
    seg->present = 1;
    seg->dpl = 0;
    seg->s = 1;     // code or data, not a system segment
    seg->g = 1;     // limit in 4 KiB units
    seg->l = code64 ? 1 : 0;
    seg->db = code64 ? 0 : 1;  // L=1 requires D=0
}

/// The GDT descriptor matching a segment as set_segment sets it (flat base and limit).
static uint64_t gdt_entry(const struct kvm_segment *seg) {
    uint64_t access = (uint64_t)seg->type | ((uint64_t)seg->s << 4) | ((uint64_t)seg->dpl << 5) | ((uint64_t)seg->present << 7);
    uint64_t flags = ((uint64_t)seg->l << 1) | ((uint64_t)seg->db << 2) | ((uint64_t)seg->g << 3);
    return 0xffffull | (0xfull << 48) | (access << 40) | (flags << 52);
}

/// Gives the vCPU the CPUID KVM supports (as a VMM does before booting a kernel; long mode needs
/// the LM bit), then puts it in 64-bit long mode: paging through page tables in guest memory
/// (identity map and kernel map), CR0.PE|PG, CR4.PAE, EFER.LME|LMA, a 64-bit code segment and
/// flat data segments, a GDT, and an IDT whose only present gate, #BP (vector 3), leads to a
/// handler that counts in RBX: `inc %rbx; iretq`.
static int enter_long_mode(int kvm, int vcpu, unsigned char *mem, struct kvm_sregs *sregs, char *msg, size_t msglen) {
    int nent = 256;
    struct kvm_cpuid2 *cpuid = NULL;
    for (;;) {
        cpuid = calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
        if (cpuid == NULL) { say(msg, msglen, "out of memory"); return -1; }
        cpuid->nent = (uint32_t)nent;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) == 0) break;
        int err = errno;
        free(cpuid);
        if (err == E2BIG && nent < 4096) { nent *= 2; continue; }
        say(msg, msglen, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(err));
        return -1;
    }
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) {
        say(msg, msglen, "KVM_SET_CPUID2 failed: %s", strerror(errno));
        free(cpuid);
        return -1;
    }
    free(cpuid);

    uint64_t *pml4 = (uint64_t *)(mem + PML4_ADDR);
    uint64_t *pdpt = (uint64_t *)(mem + PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(mem + PD_ADDR);
    pml4[0] = PDPT_ADDR | PTE_P | PTE_RW;    // virtual 0: identity
    pml4[511] = PDPT_ADDR | PTE_P | PTE_RW;  // virtual 0xffffff80_00000000: the same PDPT,
    pdpt[0] = PD_ADDR | PTE_P | PTE_RW;
    pdpt[510] = PD_ADDR | PTE_P | PTE_RW;    // so KERNEL_MAP maps physical 0 too
    for (uint64_t i = 0; i < 512; i++) pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;

    static const unsigned char handler[] = {0x48, 0xff, 0xc3, 0x48, 0xcf};  // inc %rbx; iretq
    memcpy(mem + HANDLER_ADDR, handler, sizeof handler);
    uint64_t target = KERNEL_MAP + HANDLER_ADDR;
    uint64_t *gate = (uint64_t *)(mem + IDT_ADDR) + 2 * INT3_VECTOR;  // 16-byte gates; the others stay not present
    gate[0] = (target & 0xffff) | ((uint64_t)SEL_CODE << 16) | (0x8eull << 40) | (((target >> 16) & 0xffff) << 48);  // P, DPL 0, interrupt gate
    gate[1] = target >> 32;
    sregs->idt.base = KERNEL_MAP + IDT_ADDR;
    sregs->idt.limit = IDT_VECTORS * 16 - 1;

    set_segment(&sregs->cs, SEL_CODE, 0xb, 1);  // execute/read, accessed
    set_segment(&sregs->ds, SEL_DATA, 0x3, 0);  // read/write, accessed
    sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
    uint64_t *gdt = (uint64_t *)(mem + GDT_ADDR);
    gdt[0] = 0;
    gdt[1] = gdt_entry(&sregs->cs);
    gdt[2] = gdt_entry(&sregs->ds);
    sregs->gdt.base = KERNEL_MAP + GDT_ADDR;
    sregs->gdt.limit = 3 * 8 - 1;

    sregs->cr3 = PML4_ADDR;
    sregs->cr4 = CR4_PAE;
    sregs->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    sregs->efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
    return 0;
}

/// The deadline works without a signal handler: `sig` stays blocked in this thread except inside
/// KVM_RUN (KVM_SET_SIGNAL_MASK), where a pending signal makes KVM_RUN return EINTR. KVM puts the
/// thread's own mask back before returning, so the signal is never delivered; it is consumed with
/// sigtimedwait afterwards. Nothing process-wide changes.
int sbx_kvm_run_guest(int mode, const unsigned char *code, size_t len, unsigned timeout_ms, char *msg, size_t msglen) {
    say(msg, msglen, "no result");
    if (mode != SBX_KVM_REAL_MODE && mode != SBX_KVM_LONG_MODE) {
        say(msg, msglen, "unknown guest mode %d", mode);
        return SBX_KVM_VCPU_FAILED;
    }
    if (code == NULL || len == 0 || len > CODE_SIZE) {
        say(msg, msglen, "guest code must be 1 to %d bytes", CODE_SIZE);
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
    const char *what = mode_name(mode);

    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        say(msg, msglen, "KVM_GET_API_VERSION returned %d, want %d", api, KVM_API_VERSION);
        goto out;
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) { say(msg, msglen, "KVM_CREATE_VM failed: %s", strerror(errno)); goto out; }
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { say(msg, msglen, "mmap of guest memory failed: %s", strerror(errno)); goto out; }
    memcpy(mem + CODE_ADDR, code, len);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)mem,
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
    if (mode == SBX_KVM_LONG_MODE) {
        if (enter_long_mode(kvm, vcpu, mem, &sregs, msg, msglen) != 0) goto out;
    } else {
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
    }
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { say(msg, msglen, "KVM_SET_SREGS failed: %s", strerror(errno)); goto out; }
    if (mode == SBX_KVM_LONG_MODE) {
        // Read back: KVM must have kept long mode, not quietly changed it.
        struct kvm_sregs got;
        if (ioctl(vcpu, KVM_GET_SREGS, &got) < 0) { say(msg, msglen, "KVM_GET_SREGS after KVM_SET_SREGS failed: %s", strerror(errno)); goto out; }
        if (!(got.efer & EFER_LMA) || !(got.cr0 & CR0_PG) || !got.cs.l) {
            say(msg, msglen, "KVM_SET_SREGS did not keep long mode (EFER 0x%llx, CR0 0x%llx, CS.L %u)",
                (unsigned long long)got.efer, (unsigned long long)got.cr0, got.cs.l);
            goto out;
        }
    }
    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = mode == SBX_KVM_LONG_MODE ? KERNEL_MAP + CODE_ADDR : CODE_ADDR;
    regs.rsp = mode == SBX_KVM_LONG_MODE ? KERNEL_MAP + STACK_TOP : STACK_TOP;
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
                    describe_exit(vcpu, run, msg, msglen, "the first");
                    break;
                }
                if (*data != PROBE_VALUE) {
                    say(msg, msglen, "the guest wrote 0x%x to port 0x%x, want 0x%x", *data, PROBE_PORT, PROBE_VALUE);
                    break;
                }
                io_seen = 1;
                result = SBX_KVM_RAN;
                say(msg, msglen, "a %s test guest ran: OUT 0x%x to port 0x%x", what, PROBE_VALUE, PROBE_PORT);
                if (mode == SBX_KVM_LONG_MODE) {
                    // It must still be in long mode at that exit.
                    struct kvm_sregs now;
                    memset(&now, 0, sizeof now);
                    if (ioctl(vcpu, KVM_GET_SREGS, &now) < 0 || !(now.efer & EFER_LMA) || !now.cs.l) {
                        say(msg, msglen, "the guest wrote 0x%x to port 0x%x, but not in long mode (EFER 0x%llx, CS.L %u)",
                            PROBE_VALUE, PROBE_PORT, (unsigned long long)now.efer, now.cs.l);
                        result = SBX_KVM_VCPU_FAILED;
                        break;
                    }
                }
                continue;
            }
            if (run->exit_reason == KVM_EXIT_HLT) {
                say(msg, msglen, "a %s test guest ran: OUT 0x%x to port 0x%x, then HLT", what, PROBE_VALUE, PROBE_PORT);
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
    if (mem != MAP_FAILED) munmap(mem, MEM_SIZE);
    if (vm >= 0) close(vm);
    close(kvm);
    return result;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/// What remains of a deadline of `total_ms` from `start` (at least 1 ms, so a late stage still runs
/// and fails by its own deadline).
static unsigned time_left(uint64_t start, unsigned total_ms) {
    uint64_t spent = now_ms() - start;
    return spent >= total_ms ? 1u : (unsigned)(total_ms - spent);
}

int sbx_kvm_probe(char *msg, size_t msglen) {
    // Stage 1, real mode: mov $0x42, %al; out %al, $0x10; hlt
    static const unsigned char real_guest[] = {0xb0, PROBE_VALUE, 0xe6, PROBE_PORT, 0xf4};
    // Stage 2, long mode: xor %eax,%eax; inc %rax; mov $0x41,%dl; add %dl,%al; out %al,$0x10; hlt.
    // Decoded as 16- or 32-bit code, 48 is DEC and the OUT writes 0x41: only 64-bit code writes 0x42.
    static const unsigned char long_guest[] = {0x31, 0xc0, 0x48, 0xff, 0xc0, 0xb2, 0x41, 0x00, 0xd0, 0xe6, PROBE_PORT, 0xf4};
    // Stage 3, long mode: xor %ebx,%ebx; int3; lea 0x41(%rbx),%eax; out %al,$0x10; hlt.
    // 0x42 only if the #BP handler in the guest's IDT ran once (inc %rbx; iretq).
    static const unsigned char int3_guest[] = {0x31, 0xdb, 0xcc, 0x8d, 0x43, 0x41, 0xe6, PROBE_PORT, 0xf4};
    const unsigned deadline_ms = 2000;  // for all stages together
    char detail[512];
    const char *pvm = access("/sys/module/kvm_pvm", F_OK) == 0 ? "; the KVM module here is kvm_pvm (PVM)" : "";
    const uint64_t start = now_ms();

    int rc = sbx_kvm_run_guest(SBX_KVM_REAL_MODE, real_guest, sizeof real_guest, deadline_ms, detail, sizeof detail);
    if (rc == SBX_KVM_UNAVAILABLE) { say(msg, msglen, "%s", detail); return rc; }
    if (rc != SBX_KVM_RAN) { say(msg, msglen, "stage 1 (real mode) failed: %s%s", detail, pvm); return rc; }

    rc = sbx_kvm_run_guest(SBX_KVM_LONG_MODE, long_guest, sizeof long_guest, time_left(start, deadline_ms), detail, sizeof detail);
    if (rc == SBX_KVM_UNAVAILABLE) { say(msg, msglen, "%s", detail); return rc; }
    if (rc != SBX_KVM_RAN) {
        say(msg, msglen, "a real-mode test guest ran, but stage 2 (64-bit long mode) failed: %s%s", detail, pvm);
        return rc;
    }

    rc = sbx_kvm_run_guest(SBX_KVM_LONG_MODE, int3_guest, sizeof int3_guest, time_left(start, deadline_ms), detail, sizeof detail);
    if (rc == SBX_KVM_UNAVAILABLE) { say(msg, msglen, "%s", detail); return rc; }
    if (rc != SBX_KVM_RAN) {
        say(msg, msglen, "a 64-bit long-mode guest ran, but stage 3 (INT3 through the guest's IDT, which a Linux "
            "kernel does at boot) failed: %s%s", detail, pvm);
        return rc;
    }
    say(msg, msglen, "a 64-bit long-mode guest ran and took an INT3 through its own IDT, after a real-mode one%s", pvm);
    return SBX_KVM_RAN;
}
