import Foundation
import Yams

// The one Codable form of `Profile`, `Limits` and `NetworkPolicy`: exactly the profile file format
// `ProfileLoader` reads (snake_case fields, durations such as "30s", sizes such as "512M").
// Encoding writes every field; decoding goes through the loader's own strict rules, so an unknown
// field or bad value throws a `SandboxError` (`invalid_request`) that names it.

extension Profile: Codable {
    enum WireKey: String, CodingKey {
        case name, description, isolation, runtime, resources, network, persistence, ttl, tools, env, user, template, root
        case secrets, phases, onIdle = "on_idle", idleTimeout = "idle_timeout", onTimeout = "on_timeout"
    }
    enum PhaseKey: String, CodingKey { case setup, run }
    struct PhaseWire: Encodable {
        var network: NetworkPolicy
        var keepProcesses: Bool?
        enum CodingKeys: String, CodingKey { case network, keepProcesses = "keep_processes" }
    }
    enum UserKey: String, CodingKey { case uid, gid, namespace }

    /// Decodes a profile object as `ProfileLoader` would parse it from a file (`extends` names a
    /// built-in). A missing `name` becomes `custom`.
    public init(from decoder: any Decoder) throws {
        self = try ProfileLoader(searchPaths: []).decode(from: decoder, defaultName: "custom")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKey.self)
        try c.encode(name, forKey: .name)
        try c.encode(description, forKey: .description)
        try c.encode(isolation, forKey: .isolation)
        try c.encodeIfPresent(runtime, forKey: .runtime)
        try c.encode(limits, forKey: .resources)
        try c.encode(network, forKey: .network)
        try c.encode(persistence, forKey: .persistence)
        try c.encodeIfPresent(ttl.map(DurationText.format), forKey: .ttl)
        try c.encode(tools, forKey: .tools)
        try c.encode(env, forKey: .env)
        var u = c.nestedContainer(keyedBy: UserKey.self, forKey: .user)
        try u.encode(uid, forKey: .uid)
        try u.encode(gid, forKey: .gid)
        try u.encode(userNamespace, forKey: .namespace)
        try c.encode(template, forKey: .template)
        try c.encodeIfPresent(root, forKey: .root)
        if !secrets.isEmpty { try c.encode(secrets, forKey: .secrets) }
        try c.encodeIfPresent(idleTimeout.map(DurationText.format), forKey: .idleTimeout)
        if onIdle != .delete { try c.encode(onIdle, forKey: .onIdle) }
        if onTimeout != .delete { try c.encode(onTimeout, forKey: .onTimeout) }
        if !phases.isEmpty {
            var ph = c.nestedContainer(keyedBy: PhaseKey.self, forKey: .phases)
            // keep_processes without a setup network: the setup phase's network is the profile's.
            let setup = phases.setup ?? (phases.keepSetupProcesses ? network : nil)
            try ph.encodeIfPresent(setup.map { PhaseWire(network: $0, keepProcesses: phases.keepSetupProcesses ? true : nil) }, forKey: .setup)
            try ph.encodeIfPresent(phases.run.map { PhaseWire(network: $0) }, forKey: .run)
        }
    }
}

extension ProfileLoader {
    /// Decodes a profile object straight from `decoder` (an inline profile in a JSON request body):
    /// no text in between, and the same walk, rules and messages as ``parse(_:defaultName:source:)``
    /// gives a file, so one bad profile is refused with the same words either way.
    public func decode(from decoder: any Decoder, defaultName: String, source: String = "profile") throws -> Profile {
        let map = try WireValue.mapping(from: decoder, what: "\(source): a profile")
        return try ProfileDecoder(source: source).decode(map, defaultName: defaultName, builtins: builtins)
    }
}

extension Limits: Codable {
    enum WireKey: String, CodingKey {
        case timeout, memory, pids, cpus, output, workspace, tmp, code, input
        case disk
        case openFiles = "open_files", fileSize = "file_size", workspaceFiles = "workspace_files"
    }

    /// Decodes a `resources` object: fields not given keep the defaults; the result is validated.
    public init(from decoder: any Decoder) throws {
        let map = try WireValue.mapping(from: decoder, what: "resources")
        var limits = Limits.default
        try ProfileDecoder(source: "profile").decodeResources(map, into: &limits)
        try limits.validate()
        self = limits
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKey.self)
        try c.encode(DurationText.format(timeout), forKey: .timeout)
        try c.encode(ByteSize.compact(memoryBytes), forKey: .memory)
        try c.encode(pids, forKey: .pids)
        try c.encode(cpus, forKey: .cpus)
        try c.encode(ByteSize.compact(outputBytes), forKey: .output)
        try c.encode(ByteSize.compact(workspaceBytes), forKey: .workspace)
        try c.encode(ByteSize.compact(tmpBytes), forKey: .tmp)
        try c.encode(ByteSize.compact(codeBytes), forKey: .code)
        try c.encode(ByteSize.compact(inputBytes), forKey: .input)
        try c.encode(openFiles, forKey: .openFiles)
        try c.encode(ByteSize.compact(fileSizeBytes), forKey: .fileSize)
        try c.encode(workspaceFiles, forKey: .workspaceFiles)
        try c.encode(ByteSize.compact(diskBytes), forKey: .disk)
    }
}

extension NetworkPolicy: Codable {
    enum WireKey: String, CodingKey { case mode, allow }

    /// Decodes a `network` object (`allow` only with `mode: allowlist`).
    public init(from decoder: any Decoder) throws {
        let map = try WireValue.mapping(from: decoder, what: "network")
        var policy = NetworkPolicy.deny
        try ProfileDecoder(source: "profile").decodeNetwork(.mapping(map), into: &policy)
        self = policy
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKey.self)
        try c.encode(mode, forKey: .mode)
        try c.encode(allow, forKey: .allow)
    }
}

/// Any decoded JSON-like value, turned into the YAML node the profile loader walks.
enum WireValue: Decodable {
    case null
    case scalar(String)
    case list([WireValue])
    case object([String: WireValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let s = try? c.decode(String.self) { self = .scalar(s) }
        else if let b = try? c.decode(Bool.self) { self = .scalar(b ? "true" : "false") }
        else if let i = try? c.decode(Int64.self) { self = .scalar(String(i)) }
        else if let d = try? c.decode(Double.self) { self = .scalar(String(d)) }
        else if let l = try? c.decode([WireValue].self) { self = .list(l) }
        else { self = .object(try c.decode([String: WireValue].self)) }
    }

    /// The YAML node of this value; `null` members of objects are left out (as if absent).
    var node: Node? {
        switch self {
        case .null: return nil
        case .scalar(let s): return .scalar(.init(s))
        case .list(let l): return .sequence(.init(l.compactMap(\.node)))
        case .object(let o):
            let pairs = o.sorted { $0.key < $1.key }.compactMap { k, v in v.node.map { (Node.scalar(.init(k)), $0) } }
            return .mapping(.init(pairs))
        }
    }

    /// Decodes an object from `decoder` as a mapping node; anything else is an `invalid_request`.
    static func mapping(from decoder: any Decoder, what: String) throws -> Node.Mapping {
        let value: WireValue
        do { value = try WireValue(from: decoder) } catch {
            throw SandboxError(.invalidRequest, "\(what) must be an object of fields")
        }
        guard case .object = value, let map = value.node?.mapping else {
            throw SandboxError(.invalidRequest, "\(what) must be an object of fields")
        }
        return map
    }
}
