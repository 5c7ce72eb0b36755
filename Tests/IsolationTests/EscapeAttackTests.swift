import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore
import BackendOCI
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Attempts to read, write or signal the host from inside.
@Suite("Attacks: reaching the host", .realSandboxes)
struct EscapeAttackTests {
    @Test("the host's /etc/shadow cannot be read")
    func hostShadow() async throws {
        let hostShadow = (try? String(contentsOfFile: "/etc/shadow", encoding: .utf8)) ?? ""
        let r = try await Attack.python("""
            try:
                data = open('/etc/shadow').read(); verdict(data == '', 'read /etc/shadow: %d bytes' % len(data))
            except PermissionError as ex:
                verdict(True, str(ex))
            """)
        Attack.expectBlocked(r)
        if let firstLine = hostShadow.split(separator: "\n").first { #expect(!r.stdout.contains(firstLine)) }
    }

    @Test("/usr and the root are read-only")
    func writeUsr() async throws {
        let r = try await Attack.python("""
            for path in ['/usr/bin/evil-sbx', '/evil-sbx', '/etc/evil-sbx', '/bin/evil-sbx']:
                try:
                    open(path, 'w').write('x'); verdict(False, path)
                except OSError as ex:
                    verdict(ex.errno in (errno.EROFS, errno.EACCES), f'{path}: {ex}')
            """)
        Attack.expectBlocked(r, count: 4)
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/evil-sbx"))
    }

    @Test("/proc/sysrq-trigger, /proc/sys and /sys cannot be written")
    func procAndSysWrites() async throws {
        let r = try await Attack.python("""
            for path, value in [('/proc/sysrq-trigger', 'b'), ('/proc/sys/kernel/hostname', 'pwned'), ('/proc/sys/vm/drop_caches', '3'), ('/sys/kernel/mm/transparent_hugepage/enabled', 'never')]:
                try:
                    with open(path, 'w') as f: f.write(value)
                    verdict(False, path)
                except OSError as ex:
                    verdict(True, f'{path}: {ex}')
            """)
        Attack.expectBlocked(r, count: 4)
        #expect((try? String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)) != "pwned\n")
    }

    @Test("/proc/interrupts and the other host-wide /proc files read empty (masked)")
    func maskedProcFiles() async throws {
        let paths = ["/proc/interrupts", "/proc/timer_list", "/proc/sched_debug", "/proc/kcore", "/proc/keys"]
            .filter { FileManager.default.fileExists(atPath: $0) }
        let hostInterrupts = (try? String(contentsOfFile: "/proc/interrupts", encoding: .utf8)) ?? ""
        let r = try await Attack.python("""
            for path in \(paths):
                try:
                    with open(path, 'rb') as f: data = f.read(4096)
                    verdict(data == b'', f'{path}: {len(data)} bytes {data[:60]!r}')
                except OSError as ex:
                    verdict(True, f'{path}: {ex}')
            """)
        Attack.expectBlocked(r, count: paths.count)
        #expect(paths.contains("/proc/interrupts"))
        if let header = hostInterrupts.split(separator: "\n").first { #expect(!r.stdout.contains(header)) }
    }

    @Test("host processes are invisible: only the sandbox's own pids are in /proc")
    func hostPids() async throws {
        let r = try await Attack.python("""
            pids = [p for p in os.listdir('/proc') if p.isdigit()]
            cmdlines = ' '.join(open(f'/proc/{p}/cmdline').read() for p in pids if os.path.exists(f'/proc/{p}/cmdline'))
            verdict(len(pids) <= 3 and 'swift' not in cmdlines and 'sandboxer' not in cmdlines, f'pids={pids}')
            """)
        Attack.expectBlocked(r)
    }

    @Test("a host process cannot be signalled from inside")
    func killHostPid() async throws {
        let devnull = open("/dev/null", O_RDWR)
        defer { close(devnull) }
        let victim = try ChildProcessLauncher.sleep(marker: "987640")
        defer { kill(victim, SIGKILL); var s: Int32 = 0; waitpid(victim, &s, 0) }
        let r = try await Attack.python("""
            for sig in (9, 15):
                try:
                    os.kill(\(victim), sig); verdict(False, 'signalled host pid')
                except ProcessLookupError as ex:
                    verdict(True, f'kill host pid: {ex}')
            rc, e = sc(62, -1, 9)  # kill(-1, SIGKILL): everything this uid may signal
            print('kill(-1) rc', rc, e)
            """)
        Attack.expectBlocked(r, count: 2)
        #expect(kill(victim, 0) == 0, "the host process was killed")
    }

    @Test("TCP to a listener on the host's loopback fails: the sandbox has its own network namespace")
    func hostLoopback() async throws {
        let listener = try LoopbackListener()
        defer { listener.close() }
        let r = try await Attack.python("""
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect(('127.0.0.1', \(listener.port))); verdict(False, 'connected to host loopback')
            except OSError as ex:
                verdict(True, f'connect: {ex}')
            """)
        Attack.expectBlocked(r)
        #expect(!listener.hadConnection(), "the host listener received a connection")
    }

    @Test("DNS lookups fail: no resolver, no route")
    func dns() async throws {
        let r = try await Attack.python("""
            try:
                socket.getaddrinfo('example.com', 80); verdict(False, 'resolved')
            except socket.gaierror as ex:
                verdict(True, f'getaddrinfo: {ex}')
            # An empty mount point: only sandboxes with a network get the egress resolver bound there.
            verdict(not os.path.exists('/etc/resolv.conf') or open('/etc/resolv.conf').read().strip() == '', 'no resolver in resolv.conf')
            ifs = os.listdir('/sys/class/net')
            verdict(ifs == ['lo'], f'interfaces {ifs}')
            """)
        Attack.expectBlocked(r, count: 3)
    }

    @Test("setuid binaries do not raise privileges (no_new_privs, nosuid)")
    func setuidEscalation() async throws {
        let r = try await Attack.python("""
            import subprocess, stat
            st = os.stat('/usr/bin/su')
            print('su is setuid:', bool(st.st_mode & stat.S_ISUID))
            status = open('/proc/self/status').read()
            verdict('NoNewPrivs:\\t1' in status, 'no_new_privs set')
            p = subprocess.run(['/usr/bin/su', '-c', 'id -u', 'root'], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
            verdict(p.returncode != 0 and p.stdout.strip() != '0', f'su: rc={p.returncode} {p.stderr.strip()}')
            p = subprocess.run(['/usr/bin/newgrp', 'root'], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
            verdict(p.returncode != 0, f'newgrp: rc={p.returncode} {p.stderr.strip()}')
            verdict(os.geteuid() == 1000, 'euid stays 1000')
            """)
        Attack.expectBlocked(r, count: 4)
    }

    @Test("/proc/self/exe and the runtime binary cannot be overwritten (CVE-2019-5736 style)")
    func procSelfExe() async throws {
        let before = try HostFile.digest("/usr/bin/python3.11")
        let crun = OCIRuntimeBinary.path
        let crunBefore = try crun.map(HostFile.digest)
        let r = try await Attack.python("""
            for path in ['/proc/self/exe', '/proc/1/exe']:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_TRUNC); os.write(fd, b'#!/bin/sh'); verdict(False, path)
                except OSError as ex:
                    verdict(True, f'{path}: {ex}')
            """)
        Attack.expectBlocked(r, count: 2)
        #expect(try HostFile.digest("/usr/bin/python3.11") == before)
        #expect(try crun.map(HostFile.digest) == crunBefore)
    }

    @Test("a descriptor the host leaked (no CLOEXEC) is not inherited")
    func leakedFd() async throws {
        let secretPath = NSTemporaryDirectory() + "sbx-secret-\(UUID().uuidString)"
        try "TOP-SECRET-987".write(toFile: secretPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secretPath) }
        let fd = open(secretPath, O_RDONLY)  // deliberately without O_CLOEXEC
        defer { close(fd) }
        let r = try await Attack.python("""
            fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))
            leaked = []
            for f in range(3, 256):
                try:
                    leaked.append(os.read(f, 100))
                except OSError:
                    pass
            verdict(fds[:3] == [0, 1, 2] and len(fds) <= 4 and not leaked, f'fds={fds} leaked={leaked}')
            """)
        Attack.expectBlocked(r)
        #expect(!r.stdout.contains("TOP-SECRET"))
    }

    @Test("devices cannot be created or opened raw")
    func devices() async throws {
        let r = try await Attack.python("""
            try:
                os.mknod('/tmp/sda', 0o600 | 0o60000, os.makedev(8, 0)); verdict(False, 'mknod')
            except PermissionError as ex:
                verdict(True, f'mknod: {ex}')
            verdict(not os.path.exists('/dev/sda') and not os.path.exists('/dev/mem') and not os.path.exists('/dev/kmsg'), 'no host devices: ' + ' '.join(sorted(os.listdir('/dev'))))
            """)
        Attack.expectBlocked(r, count: 2)
    }

    @Test("host directories outside the template are not there, on the host template and on the default (debian) one",
          arguments: ["host", "debian"])
    func hostFiles(template: String) async throws {
        // Markers only the host has: an image's own /root or /var/lib must not be the host's.
        let marker = "sbx-host-marker-\(UUID().uuidString.prefix(8))"
        let planted = ["/root/\(marker)", "/var/lib/\(marker)", "/home/\(marker)", "/etc/\(marker)"]
        for path in planted { try SysFile.create(path, Array("host only".utf8)) }
        defer { planted.forEach { unlink($0) } }
        let r = try await Attack.python("""
            for path in ['/opt/swift', '/work', '/run/sandboxer'] + \(planted.map { "'\($0)'" }):
                verdict(not os.path.exists(path) or os.listdir(path) == [], path)
            """, profile: TestSandbox.profile { $0.template = template })
        Attack.expectBlocked(r, count: 3 + planted.count)
    }
}

/// Small host-side helpers for the attacks.
enum ChildProcessLauncher {
    /// A host `sleep` carrying a marker in its arguments.
    static func sleep(marker: String) throws -> pid_t {
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        return try SandboxLinuxSpawn.spawn(["/bin/sleep", marker], devnull)
    }
}

enum HostFile {
    static func digest(_ path: String) throws -> Int {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        var h = Hasher()
        h.combine(d)
        return h.finalize()
    }
}

enum OCIRuntimeBinary {
    static var path: String? { ["/usr/bin/crun", "/usr/bin/runc", "/usr/sbin/runc"].first { FileManager.default.fileExists(atPath: $0) } }
}

/// A TCP listener on 127.0.0.1 of the host, on a kernel-chosen port.
final class LoopbackListener: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw SandboxError(.system, "cannot listen on loopback")
        }
        withUnsafeMutablePointer(to: &addr) { p in _ = p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
    }

    func hadConnection() -> Bool { accept(fd, nil, nil) >= 0 }
    func close() { Glibc.close(fd) }
}

@Suite("Attacks: identity", .realSandboxes)
struct IdentityAttackTests {
    @Test("the sandbox's uid is not a host uid: inside 1000, outside a private id above 100000", .enabled(if: UserNamespaces.available))
    func userNamespaceMapping() async throws {
        let r = try await Attack.sh("id -u; cat /proc/self/uid_map; sleep 986701 & wait")
        let map = r.stdout.split(separator: "\n").dropFirst().first.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(r.stdout.hasPrefix("1000\n"))
        #expect(map.count == 3 && map[0] == "0" && (UInt32(map[1]) ?? 0) >= 100_000 && map[2] == "65536", "\(r.stdout)")
    }
}
