import CSandboxLinux
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// What this host supports, for `sandboxer doctor`: each check says yes/no and why.
public struct HostReport: Sendable, Codable {
    /// One line of the report.
    public struct Check: Sendable, Codable, Equatable {
        public var name: String
        public var ok: Bool
        public var detail: String

        public init(name: String, ok: Bool, detail: String) {
            self.name = name
            self.ok = ok
            self.detail = detail
        }
    }
    public var checks: [Check]

    /// Runs every check. `runtimes` maps runtime names to their binary path (nil = missing).
    public static func collect(runtimes: [String: String?]) -> HostReport {
        var c: [Check] = []
        c.append(Check(name: "root", ok: geteuid() == 0, detail: geteuid() == 0 ? "running as root" : "not root: isolation container needs root"))
        let host = CgroupHost.detect()
        let prep = HostPreparation().plan(host)
        let cgDetail: String
        switch host.mode {
        case .v2: cgDetail = "cgroup v2 at \(host.v2Mount ?? "?") (controllers: \(host.v2Controllers.joined(separator: " ")))"
        case .v1: cgDetail = "cgroup v1 controllers (\(host.v1Mounts.keys.filter { !$0.hasPrefix("name=") }.sorted().joined(separator: ", ")))" + (host.v2Mount.map { "; empty cgroup2 at \($0)" } ?? "")
        case .hybridWithV2Controllers: cgDetail = "hybrid: cgroup2 at \(host.v2Mount ?? "?") holds \(host.v2Controllers.joined(separator: ", ")); crun refuses this until `sandboxer doctor --fix` runs: \(prep.joined(separator: "; "))"
        }
        c.append(Check(name: "cgroups", ok: host.mode != .hybridWithV2Controllers, detail: cgDetail))
        let needed = host.mode == .v2 ? CgroupHost.v2Wanted.filter { !host.v2Controllers.contains($0) } : CgroupHost.v1Controllers.filter { host.v1Mounts[$0] == nil }
        c.append(Check(name: "cgroup controllers", ok: needed.isEmpty, detail: needed.isEmpty ? "memory, pids, cpu available" : "missing: \(needed.joined(separator: ", "))"))
        for (name, path) in runtimes.sorted(by: { $0.key < $1.key }) {
            if let path {
                c.append(Check(name: "runtime \(name)", ok: true, detail: "\(path) \(firstLine(of: [path, "--version"]))"))
            } else {
                let why = name == "runsc" ? "not installed: gVisor's runsc is not packaged in Debian or on PyPI; the gvisor tier is unavailable here" : "not installed: apt-get install \(name) (make does this)"
                c.append(Check(name: "runtime \(name)", ok: false, detail: why))
            }
        }
        c.append(userNamespaces())
        let seccompActions = SysFile.read("/proc/sys/kernel/seccomp/actions_avail")?.trimmingCharacters(in: .whitespacesAndNewlines)
        c.append(Check(name: "seccomp", ok: seccompActions != nil, detail: seccompActions.map { "filter mode available (actions: \($0))" } ?? "kernel has no seccomp filter support"))
        let lsm = SysFile.read("/sys/kernel/security/lsm")?.trimmingCharacters(in: .whitespacesAndNewlines)
        let landlock = lsm?.split(separator: ",").contains("landlock") ?? false
        c.append(Check(name: "landlock", ok: landlock, detail: landlock ? "enabled (LSMs: \(lsm ?? ""))" : "not enabled (LSMs: \(lsm ?? "unknown; securityfs not mounted"))"))
        c.append(kvm(KVMProbe.run()))
        return HostReport(checks: c)
    }

    /// The `kvm` line: the microvm isolation needs a vCPU that runs what a 64-bit guest kernel needs, not
    /// only a /dev/kvm that opens.
    static func kvm(_ probe: KVMProbe) -> Check {
        switch probe.verdict {
        case .ran: return Check(name: "kvm", ok: true, detail: "isolation microvm possible (\(probe.message); booting a guest kernel is not tried)")
        case .vcpuFailed: return Check(name: "kvm", ok: false, detail: "isolation microvm impossible: KVM opens but a vCPU does not run what a 64-bit guest kernel needs (\(probe.message))")
        case .unavailable: return Check(name: "kvm", ok: false, detail: "isolation microvm impossible: \(probe.message)")
        }
    }

    /// Whether KVM runs a guest the way a 64-bit guest kernel runs (`sbx_kvm_probe` in CSandboxLinux):
    /// stage 1 a tiny real-mode guest; stage 2 64-bit code in long mode set up from the host side
    /// (page tables, CR0/CR4/EFER, a 64-bit code segment); stage 3 an INT3 taken through the guest's
    /// own IDT, as a Linux kernel does at boot. Each stage is a new VM with one vCPU whose first exit
    /// must be an OUT of 0x42 to port 0x10. The message names the stage that failed and how, and
    /// notes a kvm_pvm module; the verdict comes only from running the vCPU. One 2 s deadline covers
    /// all stages: blocks the calling thread for about that long at most.
    public struct KVMProbe: Sendable, Equatable {
        /// The probe's answer.
        public enum Verdict: Sendable, Equatable {
            /// A vCPU ran every stage's test guest and each exited with its I/O.
            case ran
            /// /dev/kvm opened, but creating or running a test guest failed.
            case vcpuFailed
            /// /dev/kvm cannot be opened.
            case unavailable
        }
        /// The mode a test guest starts in.
        enum GuestMode {
            /// As the vCPU comes out of reset.
            case real
            /// 64-bit long mode, code at 0xffffffff80001000 (the kernel map; physical 0x1000 is
            /// identity-mapped too), an IDT whose #BP gate runs `inc %rbx; iretq`.
            case long

            var code: Int32 { self == .real ? SBX_KVM_REAL_MODE : SBX_KVM_LONG_MODE }
        }
        /// The answer.
        public var verdict: Verdict
        /// What ran, or which step failed and how.
        public var message: String

        /// Runs the standard probe.
        public static func run() -> KVMProbe {
            answer { sbx_kvm_probe($0, $1) }
        }

        /// Runs other guest code in one mode, as one stage (tests: a guest that never exits, a wrong
        /// value, 64-bit-only code in real mode).
        static func run(mode: GuestMode, guest: [UInt8], timeoutMilliseconds: UInt32) -> KVMProbe {
            answer { msg, len in guest.withUnsafeBufferPointer { sbx_kvm_run_guest(mode.code, $0.baseAddress, $0.count, timeoutMilliseconds, msg, len) } }
        }

        private static func answer(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> KVMProbe {
            var buf = [CChar](repeating: 0, count: 1024)
            let rc = buf.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
            let message = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            switch rc {
            case SBX_KVM_RAN: return KVMProbe(verdict: .ran, message: message)
            case SBX_KVM_UNAVAILABLE: return KVMProbe(verdict: .unavailable, message: message)
            default: return KVMProbe(verdict: .vcpuFailed, message: message)
            }
        }
    }

    static func userNamespaces() -> Check {
        let maxNS = SysFile.read("/proc/sys/user/max_user_namespaces")?.trimmingCharacters(in: .whitespacesAndNewlines)
        let unpriv = SysFile.read("/proc/sys/kernel/unprivileged_userns_clone")?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let maxNS, maxNS != "0" else {
            return Check(name: "user namespaces", ok: false, detail: "disabled (user.max_user_namespaces = \(maxNS ?? "absent")); sandboxes run without a user namespace, as an unprivileged uid with no capabilities; enable with sysctl user.max_user_namespaces=15000")
        }
        let note = "available (max \(maxNS)\(unpriv.map { ", unprivileged_userns_clone=\($0)" } ?? "")); used by default: each sandbox maps its ids 0-65535 to a private range of host ids above 100000"
        return Check(name: "user namespaces", ok: true, detail: note)
    }

    /// The first line a command prints on stdout (stdin /dev/null, stderr dropped); "" when it cannot run.
    public static func firstLine(of argv: [String]) -> String {
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        guard let p = try? Pipe2() else { return "" }
        guard let child = try? ChildProcess.spawn(argv, stdin: devnull, stdout: p.writeEnd, stderr: devnull) else { p.closeBoth(); return "" }
        p.closeWrite()
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(p.readEnd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        p.closeRead()
        _ = child.waitBlocking()
        return String(decoding: out, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }
}
