import Crypto
import Foundation
import SandboxCore

/// What one attempt of a run ran on, as the worker saw it when the attempt ended (issue 21's
/// replay records): the root filesystem, the lane and its engines' versions, and digests of the
/// output. Kept in the run's document (``RunAttempt/environment``), so both engines store it as is.
public struct AttemptEnvironment: Sendable, Equatable, Codable {
    /// The template the profile names (`debian`, `host`, an image template).
    public var template: String
    /// Its manifest digest as the backend resolved it; nil for the built-in `host` (the host's own
    /// `/usr`, no image) and for the WASM lane (no root filesystem).
    public var templateDigest: String?
    public var isolation: IsolationLevel
    /// The OCI runtime (`crun`, `runc`, `runsc`) of the container lanes; nil for `wasm`.
    public var runtime: String?
    public var runtimeVersion: String?
    /// WasmKit's and QuickJS's versions for the WASM lanes (`wasm`, `wasm+container`).
    public var wasmKit: String?
    public var quickJS: String?
    /// sandboxer's version on the worker that ran the attempt.
    public var sandboxer: String
    /// `sha256:` + the SHA-256 of stdout as the program produced it (up to the profile's output
    /// limit; the stored log may be capped shorter), and its length.
    public var stdoutDigest: String
    public var stdoutBytes: Int64
    public var stderrDigest: String
    public var stderrBytes: Int64

    public init(template: String, templateDigest: String?, isolation: IsolationLevel, runtime: String? = nil, runtimeVersion: String? = nil,
                wasmKit: String? = nil, quickJS: String? = nil, sandboxer: String = SandboxerVersion.current,
                stdoutDigest: String = ContentDigest.empty, stdoutBytes: Int64 = 0, stderrDigest: String = ContentDigest.empty, stderrBytes: Int64 = 0) {
        self.template = template
        self.templateDigest = templateDigest
        self.isolation = isolation
        self.runtime = runtime
        self.runtimeVersion = runtimeVersion
        self.wasmKit = wasmKit
        self.quickJS = quickJS
        self.sandboxer = sandboxer
        self.stdoutDigest = stdoutDigest
        self.stdoutBytes = stdoutBytes
        self.stderrDigest = stderrDigest
        self.stderrBytes = stderrBytes
    }

    enum CodingKeys: String, CodingKey {
        case template, templateDigest = "template_digest", isolation, runtime, runtimeVersion = "runtime_version"
        case wasmKit = "wasmkit", quickJS = "quickjs", sandboxer
        case stdoutDigest = "stdout_digest", stdoutBytes = "stdout_bytes", stderrDigest = "stderr_digest", stderrBytes = "stderr_bytes"
    }

    // Absent values are written as null (the record's documented form).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(template, forKey: .template)
        try c.encode(templateDigest, forKey: .templateDigest)
        try c.encode(isolation, forKey: .isolation)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(runtimeVersion, forKey: .runtimeVersion)
        try c.encode(wasmKit, forKey: .wasmKit)
        try c.encode(quickJS, forKey: .quickJS)
        try c.encode(sandboxer, forKey: .sandboxer)
        try c.encode(stdoutDigest, forKey: .stdoutDigest)
        try c.encode(stdoutBytes, forKey: .stdoutBytes)
        try c.encode(stderrDigest, forKey: .stderrDigest)
        try c.encode(stderrBytes, forKey: .stderrBytes)
    }

    /// What a missing digest means for this lane and template (shown beside a null digest).
    public var templateDigestNote: String? {
        guard templateDigest == nil else { return nil }
        if isolation == .wasm { return "the WASM lane has no root filesystem: no template digest" }
        if template == "host" { return "the built-in host template is the host's own /usr, not an image: it has no digest" }
        return "the backend reported no digest for this template"
    }
}

/// A replay's link to the run it replays: the original's id and what its last attempt ran on
/// (copied when the replay is made, so the comparison needs no second read).
public struct ReplayLink: Sendable, Equatable, Codable {
    /// The replayed run.
    public var of: String
    /// The original's last attempt's environment (nil: it never ran an attempt to its end).
    public var original: AttemptEnvironment?

    public init(of: String, original: AttemptEnvironment?) {
        self.of = of
        self.original = original
    }
}

/// One way the environment of a replay differs from the original's (`template_digest`:
/// `sha256:a…` → `sha256:b…`).
public struct EnvironmentChange: Sendable, Equatable, Codable {
    /// `template`, `template_digest`, `isolation`, `runtime`, `runtime_version`, `wasmkit`, `quickjs`, `sandboxer`.
    public var field: String
    public var original: String?
    public var replay: String?

    public init(field: String, original: String?, replay: String?) {
        self.field = field
        self.original = original
        self.replay = replay
    }

    /// `field: a → b` (`none` for an absent value).
    public var text: String { "\(field): \(original ?? "none") → \(replay ?? "none")" }

    // Absent sides are written as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(field, forKey: .field)
        try c.encode(original, forKey: .original)
        try c.encode(replay, forKey: .replay)
    }
}

/// How a replay compares with its original.
public enum ReplayComparison {
    /// Whether the replay's stdout is byte for byte the original's (their digests): nil while
    /// either side has no finished attempt to compare.
    public static func outputMatches(_ original: AttemptEnvironment?, _ replay: AttemptEnvironment?) -> Bool? {
        guard let original, let replay else { return nil }
        return original.stdoutDigest == replay.stdoutDigest && original.stdoutBytes == replay.stdoutBytes
    }

    /// What differs between the two environments, in a fixed order (empty: nothing).
    public static func changes(_ original: AttemptEnvironment, _ replay: AttemptEnvironment) -> [EnvironmentChange] {
        let fields: [(String, KeyPath<AttemptEnvironment, String?>)] = [
            ("template", \.templateName), ("template_digest", \.templateDigest), ("isolation", \.isolationName),
            ("runtime", \.runtime), ("runtime_version", \.runtimeVersion), ("wasmkit", \.wasmKit), ("quickjs", \.quickJS),
            ("sandboxer", \.sandboxerVersion),
        ]
        return fields.compactMap { name, path in
            original[keyPath: path] == replay[keyPath: path] ? nil : EnvironmentChange(field: name, original: original[keyPath: path], replay: replay[keyPath: path])
        }
    }
}

extension AttemptEnvironment {
    var templateName: String? { template }
    var isolationName: String? { isolation.rawValue }
    var sandboxerVersion: String? { sandboxer }
}

/// `sha256:<hex>` digests of what a run was given and produced.
public enum ContentDigest {
    /// The digest of no bytes.
    public static let empty = of([])

    public static func of(_ bytes: [UInt8]) -> String {
        text(SHA256.hash(data: bytes))
    }

    /// `sha256:` + the hex of a finished SHA-256.
    public static func text(_ digest: SHA256.Digest) -> String {
        let hex: [Character] = Array("0123456789abcdef")
        var out = "sha256:"
        for byte in digest {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xf)])
        }
        return out
    }

    /// A run's files (`RunSpec.files`), canonically: for each path in byte order, the path's UTF-8,
    /// a NUL, the content's length as 8 bytes big-endian, the content.
    public static func of(files: [String: [UInt8]]) -> String {
        var hash = SHA256()
        for path in files.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let content = files[path] ?? []
            hash.update(data: Array(path.utf8) + [0])
            withUnsafeBytes(of: UInt64(content.count).bigEndian) { hash.update(bufferPointer: $0) }
            hash.update(data: content)
        }
        return text(hash.finalize())
    }
}

extension RunRules {
    /// A new queued run that replays `original` (which must be final): the same spec (profile as
    /// applied, argv, code, files, stdin, env, cwd, setup, agent digest), priority and attempts,
    /// its labels plus `replay_of`, linked through ``RunRecord/replay``. No webhook (the caller
    /// sets an idempotency key). A run still queued or running is refused with `invalid_state`.
    public static func replay(of original: RunRecord, id: String = SandboxSpec.newID(prefix: "run-"), now: Date = Date()) throws(SandboxError) -> RunRecord {
        guard original.state.isFinal else {
            throw SandboxError(.invalidState, "run \(original.id) is \(original.state.rawValue); only a finished run can be replayed (wait for it, or cancel it first)")
        }
        var labels = original.labels
        labels["replay_of"] = original.id
        var run = RunRecord(id: id, tenantId: original.tenantId, spec: original.spec, priority: original.priority,
                            maxAttempts: original.maxAttempts, labels: labels, createdAt: now)
        run.replay = ReplayLink(of: original.id, original: original.attempts.last?.environment)
        return run
    }
}
