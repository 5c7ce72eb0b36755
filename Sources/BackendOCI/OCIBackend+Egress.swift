import Foundation
import SandboxCore
import SandboxLinux

/// How a sandbox's bundle joins the egress proxy: the namespace to join, the variables to add and
/// the files bound read-only (resolv.conf, the trust bundle).
public struct EgressWiring: Sendable {
    public var attachment: EgressAttachment
    public var mounts: [OCIConfig.Mount]
}

extension OCIBackend {
    /// Wires a sandbox whose profile reaches the network (in any phase) or holds secrets to the
    /// process's egress proxy; nil for a sandbox that stays on loopback.
    func attachEgress(_ spec: SandboxSpec, layout: ContainerLayout) async throws(SandboxError) -> EgressWiring? {
        guard spec.profile.needsEgress || !spec.secrets.isEmpty else { return nil }
        guard let egress = configuration.egress else {
            throw SandboxError(.hostUnsupported, "profile '\(spec.profile.name)' reaches the network (network mode \(spec.profile.network(for: spec.phase).mode.rawValue)); only `sandboxer serve` and `sandboxer run` carry the egress proxy it needs")
        }
        let attachment = try await egress.attach(EgressRequest(sandboxId: spec.id, profile: spec.profile, phase: spec.phase, secrets: spec.secrets))
        do {
            let dir = layout.directory + "/egress"
            try SysFile.makeDirectory(dir, mode: 0o755)
            chmod(dir, 0o755)
            var mounts: [OCIConfig.Mount] = []
            for (i, f) in attachment.files.enumerated() {
                let source = "\(dir)/\(i)-\((f.destination as NSString).lastPathComponent)"
                try SysFile.create(source, f.contents, mode: 0o644)
                chmod(source, 0o644)
                mounts.append(.init(destination: f.destination, type: "bind", source: source, options: ["bind", "ro", "nosuid", "nodev", "noexec"]))
            }
            return EgressWiring(attachment: attachment, mounts: mounts)
        } catch {
            await egress.detach(sandboxId: spec.id)
            throw error
        }
    }

    /// The environment of a process started in a live sandbox: the base, the profile's, the egress
    /// proxy's variables (none without egress), then the request's.
    func processEnvironment(_ sandbox: SandboxHandle, _ request: [String: String]) -> [String] {
        let egress = configuration.egress?.environment(sandboxId: sandbox.id) ?? [:]
        return BundleBuilder.environment(profile: sandbox.spec.profile, request: egress.merging(request) { $1 })
    }

    /// Stops serving a sandbox's egress (no-op for one without).
    func detachEgress(_ id: String) async {
        await configuration.egress?.detach(sandboxId: id)
    }
}
