import Foundation
import SandboxCore

/// The seccomp filter every container sandbox runs under, kept as data in
/// `Sources/SandboxLinux/Resources/seccomp.json` (OCI `linux.seccomp` format).
///
/// An allowlist that starts from what Docker's default permits to a container without capabilities
/// and removes what agents never need: io_uring, ptrace and cross-process memory access, keyrings,
/// userfaultfd, mount/namespace creation, BPF, perf, module loading, clock setting, reboot, swap,
/// `open_by_handle_at`. `clone` is allowed only without namespace flags; `clone3` answers ENOSYS so
/// libc falls back to `clone`.
///
/// Only the host's native 64-bit syscall ABI is listed (``hostArchitectures``): i386 (`int 0x80`),
/// x32 (`nr | 0x40000000`) and 32-bit ARM calls hit the filter's bad-architecture action, which
/// kills the calling thread with SIGSYS. Otherwise the i386 `socketcall` multiplexer, whose
/// arguments seccomp cannot inspect, would open sockets the 64-bit `socket` rule refuses (AF_VSOCK).
public enum SeccompProfile {
    /// The raw JSON bytes, embedded at build time.
    public static var json: [UInt8] { PackageResources.seccomp_json }

    /// The seccomp architectures a sandbox on this host may use: the native 64-bit ABI alone.
    public static var hostArchitectures: [String] {
        #if arch(x86_64)
        return ["SCMP_ARCH_X86_64"]
        #elseif arch(arm64)
        return ["SCMP_ARCH_AARCH64"]
        #else
        return []
        #endif
    }

    /// The parsed profile.
    public static func load() throws(SandboxError) -> Document {
        do {
            return try JSONDecoder().decode(Document.self, from: Data(json))
        } catch {
            throw SandboxError(.setupFailed, "embedded seccomp.json is invalid: \(error)")
        }
    }

    /// Every syscall name allowed unconditionally or conditionally.
    public static func allowedNames(_ doc: Document) -> Set<String> {
        Set(doc.syscalls.filter { $0.action == "SCMP_ACT_ALLOW" }.flatMap(\.names))
    }

    /// OCI `linux.seccomp`.
    public struct Document: Codable, Sendable, Equatable {
        public var defaultAction: String
        public var defaultErrnoRet: UInt32?
        public var architectures: [String]
        public var syscalls: [Rule]
    }

    /// One OCI seccomp rule.
    public struct Rule: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [Arg]?
    }

    /// A syscall argument condition.
    public struct Arg: Codable, Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String
    }
}
