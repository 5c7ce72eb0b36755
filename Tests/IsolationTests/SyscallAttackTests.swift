import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore

/// Kernel interfaces an escape would need, called directly (no libc wrapper to hide the result):
/// every one must fail with EPERM from the seccomp filter or the missing capabilities.
@Suite("Attacks: forbidden system calls", .enabled(if: TestSandbox.available, "requires root, crun/runc and a prepared host"))
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
}
