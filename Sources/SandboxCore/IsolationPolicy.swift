/// Which isolation-weakening profile settings tenants may use: they are the operator's (issue 17,
/// item 6). A tenant's inline profile may not switch off the user namespace, run as group 0, pick
/// an OCI runtime other than gVisor's, or ask for an isolation below the operator's floor — unless the
/// operator trusts that tenant (`serve --trusted-tenant NAME`). Open network has its own server-wide
/// switch (`serve --allow-open-network`). Refusals are `forbidden` (403) naming the field.
public struct IsolationPolicy: Sendable, Equatable {
    /// The weakest isolation tenants may ask for (nil: any isolation this server has).
    public var floor: IsolationLevel?
    /// Names of tenants allowed to set the operator's fields.
    public var trustedTenants: Set<String>

    public init(floor: IsolationLevel? = nil, trustedTenants: Set<String> = []) {
        self.floor = floor
        self.trustedTenants = trustedTenants
    }

    /// How strong an isolation is: the WASM engine alone (in the server's own worker) is the
    /// weakest, a container next, WASM inside a container and gVisor above it, a microVM strongest.
    public static func rank(_ level: IsolationLevel) -> Int {
        switch level {
        case .wasm: return 0
        case .container: return 1
        case .wasmContainer, .gvisor: return 2
        case .microvm: return 3
        }
    }

    /// Refuses a tenant's profile that weakens isolation. `inline`: the tenant wrote the profile
    /// (an object in the request) rather than naming one of the operator's; `isolationField` is the
    /// request field that chose the isolation (`isolation` or `profile.isolation`).
    public func check(_ profile: Profile, inline: Bool, tenantName: String, isolationField: String = "isolation") throws(SandboxError) {
        if trustedTenants.contains(tenantName) { return }
        if let floor, Self.rank(profile.isolation) < Self.rank(floor) {
            throw Self.forbidden(isolationField, "isolation '\(profile.isolation.rawValue)' is below this server's isolation floor ('\(floor.rawValue)'); ask for '\(floor.rawValue)' or a stronger one")
        }
        guard inline else { return }
        if !profile.userNamespace {
            throw Self.forbidden("profile.user.namespace", "switching off the user namespace would run the sandbox's agent as host root and its code as a real host account")
        }
        if profile.gid == 0 {
            throw Self.forbidden("profile.user.gid", "group 0 is the sandbox's root group; pick a gid from 1 to 65535")
        }
        if let runtime = profile.runtime, runtime != "runsc" {
            throw Self.forbidden("profile.runtime", "the OCI runtime ('\(runtime)') is the operator's choice; leave runtime out (or ask for runsc, gVisor)")
        }
    }

    static func forbidden(_ field: String, _ why: String) -> SandboxError {
        SandboxError(.forbidden, "\(field): \(why). This setting is the operator's: it is allowed only for tenants the server trusts (serve --trusted-tenant NAME)", field: field)
    }
}
