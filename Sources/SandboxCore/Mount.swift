/// One mount of a sandbox, in the OCI runtime spec's shape (`config.json`'s `mounts[]`): the one
/// mount type of the project — templates contribute them, specs ask for read-only binds with
/// them, and the container backend writes them into bundles as they are.
public struct Mount: Sendable, Equatable, Codable {
    /// Where it appears inside the sandbox.
    public var destination: String
    /// `bind`, `tmpfs`, `proc`, …
    public var type: String
    /// Host path for binds; the filesystem name otherwise.
    public var source: String
    public var options: [String]

    public init(destination: String, type: String, source: String, options: [String]) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
    }

    /// A bind (or another type) given destination first, as templates list them.
    public init(destination: String, source: String, type: String = "bind", options: [String]) {
        self.init(destination: destination, type: type, source: source, options: options)
    }

    /// A read-only, `nosuid`, `nodev` bind of a host directory (what layering binds in).
    public init(source: String, destination: String) {
        self.init(destination: destination, type: "bind", source: source, options: ["rbind", "ro", "nosuid", "nodev"])
    }
}

/// A read-only bind of a host directory into a sandbox (a ``Mount`` made by ``Mount/init(source:destination:)``).
public typealias BindMount = Mount
