import Foundation
import Yams

/// A YAML configuration file whose keys are a command's long flag names, turned into that
/// command's arguments — so every flag, including ones added later, can be set in the file
/// without code for it (`serve` reads `/etc/sandboxer/config.yaml` this way).
///
/// Values: a scalar for an option (`port: 7070` → `--port=7070`); a list or a mapping for a
/// repeatable option (`warm-pool: [default=2]` or `warm-pool: {default: 2}` → `--warm-pool=default=2`);
/// `true`/`false` for a flag (`allow-open-network: true` → `--allow-open-network`); `null` sets nothing.
public enum FlagFile {
    /// One long flag of the command the file configures.
    public struct Flag: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// Takes a value (`--name VALUE`).
            case option
            /// Takes a value and may be given more than once.
            case repeatingOption
            /// Takes no value (`--name`).
            case flag
        }
        public var name: String
        public var kind: Kind
        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }
    }

    /// The arguments (`--name=value`, in the file's order) that `yaml` sets. `file` names the
    /// file in errors.
    /// - Throws: `invalid_request` for a file that is not a mapping, an unknown key (naming it and
    ///   listing the known ones), or a value of the wrong shape for its flag.
    public static func arguments(yaml: String, flags: [Flag], file: String) throws(SandboxError) -> [String] {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw SandboxError(.invalidRequest, "\(file) is not valid YAML: \(error)")
        }
        guard let root else { return [] }
        if root.null != nil { return [] }
        guard let mapping = root.mapping else {
            throw SandboxError(.invalidRequest, "\(file) must be a mapping of flag names to values, e.g. `port: 7070`")
        }
        let known = Dictionary(flags.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                throw SandboxError(.invalidRequest, "\(file): a key is not a string; keys are flag names, e.g. `port`")
            }
            let name = key.hasPrefix("--") ? String(key.dropFirst(2)) : key
            guard let flag = known[name] else {
                throw SandboxError(.invalidRequest, "\(file): unknown key '\(key)'; the known keys are: \(flags.map(\.name).sorted().joined(separator: ", "))")
            }
            if value.null != nil { continue }
            out += try arguments(for: flag, value: value, file: file)
        }
        return out
    }

    private static func arguments(for flag: Flag, value: Node, file: String) throws(SandboxError) -> [String] {
        let where_ = "\(file): \(flag.name)"
        switch flag.kind {
        case .flag:
            guard let on = value.bool else { throw SandboxError(.invalidRequest, "\(where_) is a switch: true or false") }
            return on ? ["--\(flag.name)"] : []
        case .option:
            guard let text = value.scalar?.string else {
                throw SandboxError(.invalidRequest, "\(where_) takes one value, not a list or a mapping")
            }
            return ["--\(flag.name)=\(text)"]
        case .repeatingOption:
            if let text = value.scalar?.string { return ["--\(flag.name)=\(text)"] }
            if let items = value.sequence {
                return try items.map { (item) throws(SandboxError) -> String in
                    guard let text = item.scalar?.string else { throw SandboxError(.invalidRequest, "\(where_): each item is one value") }
                    return "--\(flag.name)=\(text)"
                }
            }
            if let pairs = value.mapping {
                return try pairs.map { (pair) throws(SandboxError) -> String in
                    guard let k = pair.key.string, let v = pair.value.scalar?.string else {
                        throw SandboxError(.invalidRequest, "\(where_): each entry is NAME: VALUE")
                    }
                    return "--\(flag.name)=\(k)=\(v)"
                }
            }
            throw SandboxError(.invalidRequest, "\(where_) takes a value, a list or a mapping")
        }
    }

    /// The long flag names `arguments` gives (`--name` or `--name=value`), up to a `--`.
    public static func givenNames(_ arguments: [String]) -> Set<String> {
        var names = Set<String>()
        for a in arguments {
            if a == "--" { break }
            guard a.hasPrefix("--") else { continue }
            names.insert(String(a.dropFirst(2).prefix { $0 != "=" }))
        }
        return names
    }
}
