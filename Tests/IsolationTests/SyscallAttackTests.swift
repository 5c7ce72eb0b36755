import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore

/// Kernel interfaces an escape would need, called directly (no libc wrapper to hide the result):
/// every one must fail with EPERM from the seccomp filter or the missing capabilities.
@Suite("Attacks: forbidden system calls", .realSandboxes)
struct SyscallAttackTests {
    @Test("mount(2) of a tmpfs is refused, and the setuid mount binary does not help")
    func mount() async throws {
        let r = try await Attack.python("""
            os.makedirs('/tmp/m', exist_ok=True)
            rc, e = sc(\(NR.mount), ctypes.addressof(ctypes.create_string_buffer(b'none')), ctypes.addressof(ctypes.create_string_buffer(b'/tmp/m')), ctypes.addressof(ctypes.create_string_buffer(b'tmpfs')), 0, 0)
            verdict(rc == -1 and e == errno.EPERM, f'mount rc={rc} errno={e}')
            import subprocess
            p = subprocess.run(['/usr/bin/mount', '-t', 'tmpfs', 'none', '/tmp/m'], capture_output=True, text=True)
            verdict(p.returncode != 0 and ' /tmp/m ' not in open('/proc/self/mounts').read(), 'setuid mount: ' + p.stderr.strip())
            """)
        Attack.expectBlocked(r, count: 2)
    }

    @Test("unshare of a user namespace (the first step of most escapes) is refused")
    func unshareUser() async throws {
        let r = try await Attack.python("""
            rc, e = sc(\(NR.unshare), 0x10000000)
            verdict(rc == -1 and e == errno.EPERM, f'unshare(CLONE_NEWUSER) errno={e}')
            rc, e = sc(\(NR.unshare), 0x20000000 | 0x40000000)
            verdict(rc == -1 and e == errno.EPERM, f'unshare(NEWNET|NEWPID) errno={e}')
            import subprocess
            p = subprocess.run(['unshare', '-Ur', 'id'], capture_output=True, text=True)
            verdict(p.returncode != 0, 'unshare -Ur: ' + p.stderr.strip())
            """)
        Attack.expectBlocked(r, count: 3)
    }

    @Test("ptrace of another process in the sandbox is refused")
    func ptrace() async throws {
        let r = try await Attack.python("""
            pid = os.fork()
            if pid == 0:
                import time; time.sleep(5); os._exit(0)
            rc, e = sc(\(NR.ptrace), 16, pid, 0, 0)  # PTRACE_ATTACH
            verdict(rc == -1 and e == errno.EPERM, f'ptrace attach errno={e}')
            rc, e = sc(\(NR.ptrace), 0, 0, 0, 0)  # PTRACE_TRACEME
            verdict(rc == -1 and e == errno.EPERM, f'ptrace traceme errno={e}')
            os.kill(pid, 9)
            """)
        Attack.expectBlocked(r, count: 2)
    }

    @Test("dangerous syscalls all answer EPERM", arguments: [
        ("bpf", NR.bpf, [0, 0, 0]),
        ("perf_event_open", NR.perfEventOpen, [0, 0, -1, -1, 0]),
        ("keyctl", NR.keyctl, [0, -1, 0]),
        ("add_key", NR.addKey, [0, 0, 0, 0, 0]),
        ("request_key", NR.requestKey, [0, 0, 0, 0]),
        ("io_uring_setup", NR.ioUringSetup, [8, 0]),
        ("open_by_handle_at", NR.openByHandleAt, [-100, 0, 0]),
        ("name_to_handle_at", NR.nameToHandleAt, [-100, 0, 0, 0, 0]),
        ("setns", NR.setns, [0, 0]),
        ("userfaultfd", NR.userfaultfd, [0]),
        ("kexec_load", NR.kexecLoad, [0, 0, 0, 0]),
        ("init_module", NR.initModule, [0, 0, 0]),
        ("reboot", NR.reboot, [0xfee1dead, 0x28121969, 0x4321fedc, 0]),
        ("clock_settime", NR.clockSettime, [0, 0]),
        ("settimeofday", NR.settimeofday, [0, 0]),
        ("swapon", NR.swapon, [0, 0]),
        ("pivot_root", NR.pivotRoot, [0, 0]),
        ("chroot", NR.chroot, [0]),
        ("sethostname", NR.sethostname, [0, 4]),
        ("acct", NR.acct, [0]),
    ])
    func forbidden(name: String, nr: Int, args: [Int]) async throws {
        let r = try await Attack.python("""
            rc, e = sc(\(nr), \(args.map(String.init).joined(separator: ", ")))
            verdict(rc == -1 and e == errno.EPERM, f'\(name) rc={rc} errno={e}')
            """)
        Attack.expectBlocked(r)
    }

    @Test("raw and packet sockets cannot be opened")
    func rawSocket() async throws {
        let r = try await Attack.python("""
            for fam, typ, proto, what in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, 'raw icmp'), (socket.AF_PACKET, socket.SOCK_RAW, 0, 'packet')]:
                try:
                    socket.socket(fam, typ, proto); verdict(False, what)
                except PermissionError as ex:
                    verdict(True, f'{what}: {ex}')
            """)
        Attack.expectBlocked(r, count: 2)
    }

    /// Socket families opened by `abi.c`: the first four the 64-bit profile refuses (AF_VSOCK by the
    /// seccomp `socket` rule, the others for lack of CAP_NET_RAW), the last three it allows.
    static let refusedFamilies = ["AF_VSOCK", "AF_PACKET", "AF_INET-raw", "AF_INET6-raw"]
    static let allowedFamilies = ["AF_INET", "AF_UNIX", "AF_NETLINK-route"]
    static let abis = ["x86_64", "i386-socketcall", "i386-socket", "x32"]

    @Test("every socket family the 64-bit profile refuses is refused through the i386 (int 0x80) and x32 ABIs too, which are denied outright",
          .requires("requires gcc on the host (its /usr is visible inside)") {
              Requirement.file("/usr/bin/gcc", "gcc", buildWith: "make test installs it (TEST_PACKAGES)")
          })
    func compatABIs() async throws {
        // The host template: its /usr (with gcc) is the host's.
        let r = try await Attack.sh("cat > /tmp/abi.c <<'EOF'\n\(Self.abiProgram)\nEOF\ngcc -O1 -o /tmp/abi /tmp/abi.c && /tmp/abi",
                                    profile: TestSandbox.profile { $0.template = "host" })
        var opened: [String: [String: Bool]] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3 else { continue }
            opened[String(f[0]), default: [:]][String(f[1])] = f[2] == "opened"
        }
        #expect(r.stdout.hasSuffix("done\n"), "the program did not finish: stdout \(r.stdout) stderr \(r.stderr)")
        for abi in Self.abis {
            for family in Self.refusedFamilies + Self.allowedFamilies {
                #expect(opened[abi]?[family] != nil, "no result for \(abi) \(family): \(r.stdout)")
            }
        }
        // The 64-bit baseline: the refused families are refused, and the harness can open sockets.
        for family in Self.refusedFamilies { #expect(opened["x86_64"]?[family] == false, "x86_64 opened \(family)") }
        for family in Self.allowedFamilies { #expect(opened["x86_64"]?[family] == true, "x86_64 could not open \(family): \(r.stdout)") }
        // Every family the 64-bit path refuses is refused through every other ABI...
        let refused64 = (opened["x86_64"] ?? [:]).filter { !$0.value }.keys.sorted()
        for abi in Self.abis.dropFirst() {
            for family in refused64 { #expect(opened[abi]?[family] == false, "\(abi) opened \(family), which x86_64 refuses") }
            // ...and those ABIs are gone altogether: not even the families 64-bit code may open.
            for family in Self.allowedFamilies { #expect(opened[abi]?[family] == false, "\(abi) syscalls still run: \(family) opened") }
        }
    }

    /// Opens each socket family through each ABI in a forked child (a child killed by SIGSYS counts
    /// as refused) and prints `ABI FAMILY opened` or `ABI FAMILY refused errno=N|signal=N`.
    static let abiProgram = #"""
        #define _GNU_SOURCE
        #include <errno.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <sys/socket.h>
        #include <sys/syscall.h>
        #include <sys/wait.h>
        #include <unistd.h>

        /* An i386 system call from 64-bit code: int 0x80 takes the number in eax, arguments in ebx, ecx, edx. */
        static long int80(long nr, long a, long b, long c) {
            long ret;
            __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
            return ret;
        }

        static unsigned int *args32; /* socketcall's argument block, below 4 GiB */

        static long open_socket(const char *abi, int fam, int type, int proto) {
            long r;
            if (!strcmp(abi, "x86_64")) {
                r = syscall(SYS_socket, fam, type, proto);
                return r < 0 ? -errno : r;
            }
            if (!strcmp(abi, "i386-socketcall")) { /* socketcall(SYS_SOCKET, {fam, type, proto}) = i386 102 */
                args32[0] = fam; args32[1] = type; args32[2] = proto;
                return int80(102, 1, (long)(unsigned long)args32, 0);
            }
            if (!strcmp(abi, "i386-socket")) return int80(359, fam, type, proto); /* i386 socket */
            r = syscall(0x40000000L | SYS_socket, fam, type, proto); /* x32: __X32_SYSCALL_BIT | 41 */
            return r < 0 ? -errno : r;
        }

        int main(void) {
            args32 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
            if (args32 == MAP_FAILED) { perror("mmap"); return 2; }
            struct { const char *name; int fam, type, proto; } fams[] = {
                {"AF_VSOCK", 40, SOCK_STREAM, 0}, {"AF_PACKET", 17, SOCK_RAW, 0}, {"AF_INET-raw", 2, SOCK_RAW, 1},
                {"AF_INET6-raw", 10, SOCK_RAW, 58}, {"AF_INET", 2, SOCK_STREAM, 0}, {"AF_UNIX", 1, SOCK_STREAM, 0},
                {"AF_NETLINK-route", 16, SOCK_RAW, 0},
            };
            const char *abis[] = {"x86_64", "i386-socketcall", "i386-socket", "x32"};
            for (unsigned a = 0; a < 4; a++) {
                for (unsigned f = 0; f < sizeof fams / sizeof fams[0]; f++) {
                    fflush(stdout);
                    pid_t pid = fork();
                    if (pid < 0) { perror("fork"); return 2; }
                    if (pid == 0) {
                        long r = open_socket(abis[a], fams[f].fam, fams[f].type, fams[f].proto);
                        _exit(r >= 0 ? 0 : (int)(-r > 250 ? 250 : -r));
                    }
                    int st = 0;
                    if (waitpid(pid, &st, 0) != pid) { perror("waitpid"); return 2; }
                    if (WIFSIGNALED(st)) printf("%s %s refused signal=%d\n", abis[a], fams[f].name, WTERMSIG(st));
                    else if (WEXITSTATUS(st) == 0) printf("%s %s opened\n", abis[a], fams[f].name);
                    else printf("%s %s refused errno=%d\n", abis[a], fams[f].name, WEXITSTATUS(st));
                }
            }
            printf("done\n");
            return 0;
        }
        """#
}
