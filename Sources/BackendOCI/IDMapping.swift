import Foundation
import SandboxCore
import SandboxLinux

/// How a sandbox's uids/gids appear on the host. With a user namespace, container ids 0…65535 map to
/// a private range of host ids picked from the sandbox id, so two sandboxes rarely share host ids and
/// none of them is host root; without one, ids are the host's.
public struct IDMapping: Sendable, Equatable {
    /// First host id of the range (container id 0), or nil when no user namespace is used.
    public let hostBase: UInt32?
    public static let size: UInt32 = 65536
    /// Host ids below this are never handed out (the host's own users live there).
    static let firstBase: UInt32 = 100_000
    static let slots: UInt32 = 16384

    public init(spec: SandboxSpec, hostSupportsUserNamespaces: Bool = UserNamespaces.available) {
        guard spec.profile.userNamespace && hostSupportsUserNamespaces else {
            hostBase = nil
            return
        }
        var h: UInt32 = 2_166_136_261  // FNV-1a over the id
        for b in spec.id.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        hostBase = Self.firstBase + (h % Self.slots) * Self.size
    }

    /// The host id that container id `id` shows up as. Profiles keep ids inside the mapped range
    /// (``Profile/uidRange``); an id beyond it maps to the range's last id rather than trapping.
    public func host(_ id: UInt32) -> UInt32 { hostBase.map { $0 + min(id, Self.size - 1) } ?? id }

    /// OCI `uidMappings`/`gidMappings` (nil without a user namespace).
    var ociMappings: [OCIConfig.IDMapping]? {
        hostBase.map { [OCIConfig.IDMapping(containerID: 0, hostID: $0, size: Self.size)] }
    }
}

/// Whether this host lets sandboxer create user namespaces.
public enum UserNamespaces {
    public static let available: Bool = {
        let text = SysFile.read("/proc/sys/user/max_user_namespaces")?.trimmingCharacters(in: .whitespacesAndNewlines)
        return (Int(text ?? "0") ?? 0) > 0
    }()
}
