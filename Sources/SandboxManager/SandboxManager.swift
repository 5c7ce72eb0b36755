import Foundation
import Logging
import SandboxCore
import SandboxStore

/// The one layer between every surface (CLI, HTTP, later the queue and MCP) and the isolation
/// backends: lane routing and layering, persisted sandbox records with their state machine
/// (``SandboxState``), TTL and idle reaper, the warm pool, and start-up reconciliation.
///
/// Every call that names a sandbox takes the caller's tenant: another tenant's sandbox is
/// `not_found`, never `forbidden`.
public actor SandboxManager {
    /// Settings that are the server's, not a profile's.
    public struct Configuration: Sendable {
        /// Where the store and logs live (`/var/lib/sandboxer`, `--data`).
        public var dataDirectory: String
        /// Host-side state of the container lane (bundles, runtime state, agent sockets).
        public var stateDirectory: String
        /// TTL of sandboxes whose request and profile name none.
        public var defaultTTL: Duration
        /// Longest TTL a request may ask for.
        public var maxTTL: Duration
        /// How often the TTL/idle reaper looks.
        public var reaperInterval: Duration
        /// Sandboxes kept ready per profile name (created ahead, handed out on create).
        public var warmPool: [String: Int]
        /// Names profiles by name (built-ins, `/etc/sandboxer/profiles`).
        public var profiles: ProfileLoader
        /// Identifies this server process in records.
        public var node: String

        public init(
            dataDirectory: String, stateDirectory: String? = nil, defaultTTL: Duration = .seconds(600),
            maxTTL: Duration = .seconds(86_400), reaperInterval: Duration = .seconds(1), warmPool: [String: Int] = [:],
            profiles: ProfileLoader = ProfileLoader(), node: String? = nil
        ) {
            self.dataDirectory = dataDirectory
            self.stateDirectory = stateDirectory ?? dataDirectory + "/state"
            self.defaultTTL = defaultTTL
            self.maxTTL = maxTTL
            self.reaperInterval = reaperInterval
            self.warmPool = warmPool
            self.profiles = profiles
            self.node = node ?? ProcessInfo.processInfo.hostName + ":" + dataDirectory
        }
    }

    public let configuration: Configuration
    public nonisolated let store: any SandboxStore
    let logger: Logger

    public init(store: any SandboxStore, configuration: Configuration, logger: Logger = Logger(label: "sandboxer.manager")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }
}
