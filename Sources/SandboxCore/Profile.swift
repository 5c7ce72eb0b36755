/// Which isolation runs a sandbox.
public enum IsolationLevel: String, Sendable, Codable, CaseIterable {
    /// An OCI bundle under crun/runc: namespaces, cgroups, seccomp, no capabilities.
    case container
    /// The same bundle under gVisor's runsc (a user-space kernel).
    case gvisor
    /// WasmKit in-process (QuickJS for JavaScript, WASI modules).
    case wasm
    /// The WASM engine itself inside the container backend.
    case wasmContainer = "wasm+container"
    /// A QEMU microVM (planned).
    case microvm
}

extension IsolationLevel {
    /// The isolation `text` names (`wasm+container`, …), or an `invalid_request` naming `field` and
    /// listing every isolation: one rule for `sandboxer run --isolation`, the CLI's bodies and the API.
    public static func named(_ text: String, field: String = "isolation") throws(SandboxError) -> IsolationLevel {
        guard let level = IsolationLevel(rawValue: text) else {
            throw SandboxError(.invalidRequest, "unknown isolation '\(text)'; one of: \(allCases.map(\.rawValue).joined(separator: ", "))", field: field)
        }
        return level
    }
}

/// Network policy of a sandbox. Default: deny (a fresh network namespace with only loopback).
public struct NetworkPolicy: Sendable, Equatable {
    public enum Mode: String, Sendable, Codable, CaseIterable {
        /// Only loopback inside a private network namespace.
        case deny
        /// Egress only to `allow` through the host-side egress proxy (a later milestone).
        case allowlist
        /// Any public host through the egress proxy (never the always-blocked ranges); only where
        /// the operator enables it on the server (`serve --allow-open-network`).
        case open
    }
    public var mode: Mode
    /// Domains (or `host:port`) reachable in `allowlist` mode.
    public var allow: [String]
    public init(mode: Mode = .deny, allow: [String] = []) {
        self.mode = mode
        self.allow = allow
    }
    public static let deny = NetworkPolicy()
}

/// Per-phase overrides of a profile's network policy: the setup command (`run --setup`, `setup`
/// on runs and sandboxes) runs under `setup`, the user's code under `run`.
public struct Phases: Sendable, Equatable {
    public var setup: NetworkPolicy?
    public var run: NetworkPolicy?
    /// `phases.setup.keep_processes`: processes the setup command left running (servers, daemons)
    /// live on into the run phase. Off by default: the switch to `run` ends every process but the
    /// sandbox's agent, so nothing started under the setup policy keeps a connection (or a
    /// tunnel) it made then.
    public var keepSetupProcesses: Bool
    public init(setup: NetworkPolicy? = nil, run: NetworkPolicy? = nil, keepSetupProcesses: Bool = false) {
        self.setup = setup
        self.run = run
        self.keepSetupProcesses = keepSetupProcesses
    }
    public var isEmpty: Bool { setup == nil && run == nil && !keepSetupProcesses }
}

extension Profile {
    /// The network policy of a phase.
    public func network(for phase: Phase) -> NetworkPolicy {
        switch phase {
        case .setup: return phases.setup ?? network
        case .run: return phases.run ?? network
        }
    }
    /// Whether any phase of this profile reaches the network (and so needs the egress proxy).
    public var needsEgress: Bool {
        [network, phases.setup, phases.run].contains { $0.map { $0.mode != .deny } ?? false }
    }
}

/// The two phases of a sandbox's life.
public enum Phase: String, Sendable, Codable {
    case setup, run
}

/// Whether a sandbox may write to its root filesystem (`root:` in a profile).
public enum RootMode: String, Sendable, Codable, CaseIterable {
    /// The template as it is; only `/workspace`, `/tmp` and `/dev/shm` are writable.
    case readonly
    /// An overlay's upper directory on the template: `apt-get install`, `pip install` into the
    /// system Python work; what is written counts against `resources.disk` with the workspace.
    case writable
}

/// What happens to a sandbox's state when it ends.
public enum Persistence: String, Sendable, Codable, CaseIterable {
    case ephemeral, persistent, checkpoint
}

/// What happens to a sandbox left idle for its `idle_timeout` (no exec, file, process or API call
/// on it and no foreground exec running): `delete` (the default) destroys it, `pause` freezes it,
/// `hibernate` ends its processes and keeps its filesystem on disk. The next call resumes a paused
/// or hibernated one.
public enum IdleAction: String, Sendable, Codable, CaseIterable {
    case pause, hibernate, delete
}

/// A named set of isolation, resource, network and lifetime settings; the unit users pick with
/// `--profile`. Its Codable form is the profile file format (see `ProfileWire.swift`).
public struct Profile: Sendable, Equatable {
    public var name: String
    public var description: String
    public var isolation: IsolationLevel
    /// OCI runtime binary name for container isolations (`crun`, `runc`, `runsc`); nil = auto.
    public var runtime: String?
    public var limits: Limits
    public var network: NetworkPolicy
    public var persistence: Persistence
    /// Lifetime of a long-lived sandbox; nil = until killed.
    public var ttl: Duration?
    /// Host tools the sandboxed code may call (WASM backend's tool bridge).
    public var tools: [String]
    /// Extra environment variables; nothing of the host's environment is passed.
    public var env: [String: String]
    /// uid/gid the code runs as inside the sandbox.
    public var uid: UInt32
    public var gid: UInt32
    /// The ids a profile may name: inside the user namespace's 65,536 mapped ids, never root's uid.
    public static let uidRange: ClosedRange<UInt32> = 1...65_535
    public static let gidRange: ClosedRange<UInt32> = 0...65_535
    /// Run inside a user namespace whose ids map to a private range of host ids (where the host
    /// supports user namespaces): even a kernel bug that yields "root" inside yields nobody outside.
    public var userNamespace: Bool
    /// Template (root filesystem) name.
    public var template: String
    /// `root:` as the profile says it; nil = the template's default (see ``rootIsWritable``).
    public var root: RootMode?
    /// Names of server-held secrets the sandbox gets as placeholders (`secrets: [OPENAI_API_KEY]`).
    public var secrets: [String] = []
    /// Network policy per phase: `setup` (before the user's code) and `run`; nil keeps `network`.
    public var phases: Phases = Phases()
    /// How long a long-lived sandbox may sit idle before ``onIdle`` (nil: never; a create's
    /// `idle_timeout` overrides it).
    public var idleTimeout: Duration?
    /// What idleness does to it.
    public var onIdle: IdleAction = .delete
    /// What the end of its TTL does to it (`on_timeout`): delete it (the default), or pause or
    /// hibernate it (E2B's `autoPause`, with or without memory). A paused or hibernated sandbox is
    /// not deleted by its TTL; woken (a call, `resume`, E2B's connect), it gets its TTL again.
    public var onTimeout: IdleAction = .delete

    public init(
        name: String, description: String = "", isolation: IsolationLevel = .container, runtime: String? = nil,
        limits: Limits = .default, network: NetworkPolicy = .deny, persistence: Persistence = .ephemeral,
        ttl: Duration? = nil, tools: [String] = [], env: [String: String] = [:], uid: UInt32 = 1000,
        gid: UInt32 = 1000, userNamespace: Bool = true, template: String = "host"
    ) {
        self.name = name
        self.description = description
        self.isolation = isolation
        self.runtime = runtime
        self.limits = limits
        self.network = network
        self.persistence = persistence
        self.ttl = ttl
        self.tools = tools
        self.env = env
        self.uid = uid
        self.gid = gid
        self.userNamespace = userNamespace
        self.template = template
    }
}

extension Profile {
    /// General-purpose profile: seed defaults (30 s, 512 KiB code, 1 MiB input, network denied).
    public static let `default` = Profile(
        name: "default", description: "general purpose: 30s, 512M memory, 256 pids, 1 cpu, network denied", template: "debian")

    /// The bounty marketplace's profile for uploaded agents: seed limits, tighter resources, no tools.
    public static let bounty = Profile(
        name: "bounty",
        description: "untrusted agents: 30s, 512K code, 1M input, 256M memory, 64 pids, 1 cpu, network denied",
        limits: Limits(
            timeout: .seconds(30), memoryBytes: 256 << 20, pids: 64, cpus: 1.0, outputBytes: 1 << 20,
            workspaceBytes: 64 << 20, tmpBytes: 32 << 20, codeBytes: 512 << 10, inputBytes: 1 << 20,
            openFiles: 256, fileSizeBytes: 64 << 20, diskBytes: 256 << 20),
        template: "debian")

    /// Profiles that exist without any file.
    public static let builtins: [Profile] = [.default, .bounty]
}

extension Profile {
    /// Whether the sandbox's root is writable: as `root:` says, else writable for every template
    /// but `host` (the host's own `/usr`, never writable).
    public var rootIsWritable: Bool { template != "host" && (root ?? .writable) == .writable }
}
