import Yams

/// A manifest as a plain tree (an agent's `sandboxer.yaml`, or the `manifest` object of a JSON
/// upload), so one checker reads both: YAML scalars and JSON numbers are text, `null` and
/// `true`/`false` in JSON are ``other``. Reading is bounded (nodes, depth): a manifest is a few
/// lines, and YAML aliases could otherwise expand a small text into a huge tree.
public enum ManifestValue: Sendable, Equatable, Decodable {
    case text(String)
    case list([ManifestValue])
    case map([String: ManifestValue])
    /// JSON `null`, `true`, `false` (described, for messages).
    case other(String)

    /// The most nodes ``parseYAML(_:)`` builds.
    public static let maximumNodes = 10_000

    /// Parses YAML (JSON is YAML too) into a tree; a syntax error, or a text that would build more
    /// than ``maximumNodes`` nodes or nest deeper than 64, is an `invalid_request` saying so.
    public static func parseYAML(_ text: String) throws(SandboxError) -> ManifestValue {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw SandboxError(.invalidRequest, "not valid YAML: \(error)")
        }
        guard let node else { return .other("an empty document") }
        var budget = maximumNodes
        return try tree(node, depth: 0, budget: &budget)
    }

    private static func tree(_ node: Node, depth: Int, budget: inout Int) throws(SandboxError) -> ManifestValue {
        budget -= 1
        guard budget >= 0, depth < 64 else {
            throw SandboxError(.invalidRequest, "the manifest is too large or too deeply nested (more than \(maximumNodes) values or 64 levels)")
        }
        switch node {
        case .scalar(let s): return .text(s.string)
        case .sequence(let seq):
            var out: [ManifestValue] = []
            for n in seq { out.append(try tree(n, depth: depth + 1, budget: &budget)) }
            return .list(out)
        case .mapping(let map):
            var out: [String: ManifestValue] = [:]
            for (k, v) in map {
                guard let key = k.scalar?.string else { throw SandboxError(.invalidRequest, "a manifest key is not text") }
                out[key] = try tree(v, depth: depth + 1, budget: &budget)
            }
            return .map(out)
        default:
            return .other("a YAML alias")
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .other("null"); return }
        if let s = try? c.decode(String.self) { self = .text(s); return }
        if let b = try? c.decode(Bool.self) { self = .other(b ? "true" : "false"); return }
        if let i = try? c.decode(Int64.self) { self = .text(String(i)); return }
        if let d = try? c.decode(Double.self) { self = .text(String(d)); return }
        if let l = try? c.decode([ManifestValue].self) { self = .list(l); return }
        self = .map(try c.decode([String: ManifestValue].self))
    }

    /// The text of a scalar, nil for anything else.
    public var text: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// What kind of value this is, for messages (`a list`, `text`).
    public var kind: String {
        switch self {
        case .text: "text"
        case .list: "a list"
        case .map: "a mapping"
        case .other(let d): d
        }
    }
}
