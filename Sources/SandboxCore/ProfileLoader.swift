import Foundation
import Yams

/// Finds profiles by name (built-ins) or path (`./p.yaml`, `/etc/…json`) and validates them strictly:
/// an unknown field or value is an error that names it.
public struct ProfileLoader: Sendable {
    public var builtins: [Profile]
    /// Directories searched for `<name>.yaml|.yml|.json` after the built-ins.
    public var searchPaths: [String]

    public init(builtins: [Profile] = Profile.builtins, searchPaths: [String] = ["/etc/sandboxer/profiles"]) {
        self.builtins = builtins
        self.searchPaths = searchPaths
    }

    /// Names of every profile that `load` accepts by name.
    public func knownNames() -> [String] {
        var names = builtins.map(\.name)
        for dir in searchPaths {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for f in files.sorted() where f.hasSuffix(".yaml") || f.hasSuffix(".yml") || f.hasSuffix(".json") {
                let name = (f as NSString).deletingPathExtension
                if !names.contains(name) { names.append(name) }
            }
        }
        return names
    }

    /// Whether ``load(_:)`` reads `nameOrPath` as a file rather than looking a name up.
    public func isPath(_ nameOrPath: String) -> Bool {
        !builtins.contains { $0.name == nameOrPath }
            && (nameOrPath.contains("/") || nameOrPath.hasSuffix(".yaml") || nameOrPath.hasSuffix(".yml") || nameOrPath.hasSuffix(".json"))
    }

    /// Refuses a file path where only a name may be given (an API client must not make the server
    /// read its files): `not_found`, naming the profiles there are.
    public func requireName(_ name: String) throws(SandboxError) {
        guard isPath(name) else { return }
        throw SandboxError(.notFound, "unknown profile '\(name.prefix(200))'; known profiles: \(knownNames().joined(separator: ", ")) (a profile name or a profile object; not a file path)")
    }

    /// Loads a profile by built-in name, search-path name, or file path.
    public func load(_ nameOrPath: String) throws(SandboxError) -> Profile {
        if let p = builtins.first(where: { $0.name == nameOrPath }) { return p }
        if isPath(nameOrPath) {
            return try loadFile(nameOrPath)
        }
        for dir in searchPaths {
            for ext in ["yaml", "yml", "json"] {
                let path = "\(dir)/\(nameOrPath).\(ext)"
                if FileManager.default.fileExists(atPath: path) { return try loadFile(path) }
            }
        }
        throw SandboxError(
            .notFound,
            "unknown profile '\(nameOrPath)'; known profiles: \(knownNames().joined(separator: ", ")) (or pass a file path such as ./profile.yaml)"
        )
    }

    /// Loads and validates a YAML or JSON profile file.
    public func loadFile(_ path: String) throws(SandboxError) -> Profile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SandboxError(.notFound, "profile file \(path) cannot be read; check the path")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SandboxError(.invalidRequest, "profile file \(path) is not UTF-8 text")
        }
        let defaultName = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try parse(text, defaultName: defaultName, source: path)
    }

    /// Parses profile text (YAML; JSON is YAML too).
    public func parse(_ text: String, defaultName: String, source: String = "profile") throws(SandboxError) -> Profile {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw SandboxError(.invalidRequest, "\(source): not valid YAML/JSON: \(error)")
        }
        guard let node, let map = node.mapping else {
            throw SandboxError(.invalidRequest, "\(source): a profile must be a mapping of fields")
        }
        return try ProfileDecoder(source: source).decode(map, defaultName: defaultName, builtins: builtins)
    }
}

/// Walks a YAML mapping field by field, so that every unknown key or bad value is reported by its path.
struct ProfileDecoder {
    let source: String

    func fail(_ path: String, _ why: String) -> SandboxError {
        SandboxError(.invalidRequest, "\(source): \(path): \(why)", field: path.isEmpty ? nil : path)
    }

    func fields(_ map: Node.Mapping, at path: String, allowed: [String]) throws(SandboxError) -> [String: Node] {
        var out: [String: Node] = [:]
        for (k, v) in map {
            guard let key = k.string else { throw fail(path, "keys must be strings") }
            let full = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                throw fail(full, "unknown field '\(key)'; allowed here: \(allowed.joined(separator: ", "))")
            }
            out[key] = v
        }
        return out
    }

    func string(_ n: Node, _ path: String) throws(SandboxError) -> String {
        guard let s = n.scalar?.string else { throw fail(path, "must be a string") }
        return s
    }

    func choice<E: RawRepresentable & CaseIterable>(_ n: Node, _ path: String, _: E.Type) throws(SandboxError) -> E
    where E.RawValue == String {
        let s = try string(n, path)
        guard let v = E(rawValue: s) else {
            throw fail(path, "unknown value '\(s)'; one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    /// A whole number in `range` (refused naming the range otherwise).
    func int(_ n: Node, _ path: String, _ range: ClosedRange<Int>) throws(SandboxError) -> Int {
        guard let s = n.scalar?.string, let v = Int(s), range.contains(v) else {
            throw fail(path, "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \(n.scalar?.string.prefix(40) ?? "no number"))")
        }
        return v
    }

    /// A uid or gid inside the sandbox's user namespace (its 65,536 mapped ids).
    func id(_ n: Node, _ path: String, _ range: ClosedRange<UInt32>) throws(SandboxError) -> UInt32 {
        UInt32(try int(n, path, Int(range.lowerBound)...Int(range.upperBound)))
    }

    func size(_ n: Node, _ path: String) throws(SandboxError) -> Int64 {
        do { return try ByteSize.parse(try string(n, path), field: "\(source): \(path)") } catch {
            throw SandboxError(.invalidRequest, error.message + " (sizes from 0 to \(ByteSize.compact(Limits.maximumBytes)))", field: path)
        }
    }

    func duration(_ n: Node, _ path: String) throws(SandboxError) -> Duration {
        do { return try DurationText.parse(try string(n, path), field: "\(source): \(path)") } catch {
            throw SandboxError(.invalidRequest, error.message, field: path)
        }
    }

    func decode(_ map: Node.Mapping, defaultName: String, builtins: [Profile]) throws(SandboxError) -> Profile {
        let top = try fields(
            map, at: "",
            allowed: [
                "name", "description", "extends", "isolation", "runtime", "resources", "network", "persistence", "ttl",
                "tools", "env", "user", "template", "root", "secrets", "phases", "on_idle", "idle_timeout", "on_timeout",
            ])
        var p = Profile.default
        if let base = top["extends"] {
            let name = try string(base, "extends")
            guard let b = builtins.first(where: { $0.name == name }) else {
                throw fail("extends", "unknown profile '\(name)'; known: \(builtins.map(\.name).joined(separator: ", "))")
            }
            p = b
        }
        p.name = try top["name"].map { (n) throws(SandboxError) in try string(n, "name") } ?? defaultName
        if let n = top["description"] { p.description = try string(n, "description") }
        if let n = top["isolation"] { p.isolation = try choice(n, "isolation", IsolationLevel.self) }
        if let n = top["runtime"] {
            let r = try string(n, "runtime")
            guard ["crun", "runc", "runsc"].contains(r) else {
                throw fail("runtime", "unknown value '\(r)'; one of: crun, runc, runsc")
            }
            p.runtime = r
        }
        if let n = top["persistence"] { p.persistence = try choice(n, "persistence", Persistence.self) }
        if let n = top["ttl"] { p.ttl = try duration(n, "ttl") }
        if let n = top["idle_timeout"] {
            let d = try duration(n, "idle_timeout")
            guard d > .zero else { throw fail("idle_timeout", "must be longer than 0s, e.g. 10m") }
            p.idleTimeout = d
        }
        if let n = top["on_timeout"] { p.onTimeout = try choice(n, "on_timeout", IdleAction.self) }
        if let n = top["on_idle"] {
            p.onIdle = try choice(n, "on_idle", IdleAction.self)
            if p.idleTimeout == nil && p.onIdle != .delete {
                throw fail("on_idle", "'\(p.onIdle.rawValue)' needs idle_timeout (how long idle before it), e.g. idle_timeout: 10m")
            }
        }
        if let n = top["template"] { p.template = try string(n, "template") }
        if let n = top["root"] { p.root = try choice(n, "root", RootMode.self) }
        if p.root == .writable && p.template == "host" {
            throw fail("root", "a writable root needs an image template (template 'host' is the host's own /usr, always read-only); use template: debian or another image")
        }
        if let n = top["tools"] {
            guard let seq = n.sequence else { throw fail("tools", "must be a list of tool names") }
            var tools: [String] = []
            for (i, t) in seq.enumerated() { tools.append(try string(t, "tools[\(i)]")) }
            p.tools = tools
        }
        if let n = top["env"] {
            guard let m = n.mapping else { throw fail("env", "must be a mapping of NAME: value") }
            for (k, v) in m {
                guard let key = k.string else { throw fail("env", "bad variable name") }
                if let problem = EnvironmentCheck.problem(name: key) { throw fail("env", problem) }
                p.env[key] = try string(v, "env.\(key)")
            }
        }
        if let n = top["user"] {
            guard let m = n.mapping else { throw fail("user", "must be a mapping with uid and gid") }
            let f = try fields(m, at: "user", allowed: ["uid", "gid", "namespace"])
            if let u = f["uid"] { p.uid = try id(u, "user.uid", Profile.uidRange) }
            if let g = f["gid"] { p.gid = try id(g, "user.gid", Profile.gidRange) }
            if let n = f["namespace"] {
                guard let b = n.scalar.flatMap({ Bool.construct(from: $0) }) else { throw fail("user.namespace", "must be true or false") }
                p.userNamespace = b
            }
            if p.uid == 0 { throw fail("user.uid", "the sandbox never runs as root; pick a uid above 0") }
        }
        if let n = top["resources"] {
            guard let m = n.mapping else { throw fail("resources", "must be a mapping") }
            try decodeResources(m, into: &p.limits)
        }
        if let n = top["network"] { try decodeNetwork(n, into: &p.network) }
        if let n = top["secrets"] {
            guard let seq = n.sequence else { throw fail("secrets", "must be a list of secret names") }
            var names: [String] = []
            for (i, t) in seq.enumerated() {
                let name = try string(t, "secrets[\(i)]")
                if let problem = EnvironmentCheck.problem(name: name) { throw fail("secrets[\(i)]", problem) }
                if !names.contains(name) { names.append(name) }
            }
            p.secrets = names
        }
        if let n = top["phases"] {
            guard let m = n.mapping else { throw fail("phases", "must be a mapping with setup and/or run") }
            let f = try fields(m, at: "phases", allowed: ["setup", "run"])
            for (key, node) in f {
                guard let pm = node.mapping else { throw fail("phases.\(key)", "must be a mapping with network") }
                let pf = try fields(pm, at: "phases.\(key)", allowed: key == "setup" ? ["network", "keep_processes"] : ["network"])
                var net = NetworkPolicy.deny
                if let nn = pf["network"] { try decodeNetwork(nn, into: &net, at: "phases.\(key).network") }
                if let keep = pf["keep_processes"] {
                    guard let b = keep.scalar.flatMap({ Bool.construct(from: $0) }) else { throw fail("phases.setup.keep_processes", "must be true or false") }
                    p.phases.keepSetupProcesses = b
                }
                // `keep_processes` alone leaves the setup phase on the profile's network.
                if pf["network"] == nil && pf["keep_processes"] != nil { continue }
                if key == "setup" { p.phases.setup = net } else { p.phases.run = net }
            }
        }
        try p.limits.validate()
        return p
    }

    func decodeNetwork(_ n: Node, into net: inout NetworkPolicy, at path: String = "network") throws(SandboxError) {
        guard let m = n.mapping else { throw fail(path, "must be a mapping with mode and allow") }
        let f = try fields(m, at: path, allowed: ["mode", "allow"])
        if let mode = f["mode"] { net.mode = try choice(mode, "\(path).mode", NetworkPolicy.Mode.self) }
        if let allow = f["allow"] {
            guard let seq = allow.sequence else { throw fail("\(path).allow", "must be a list of domains") }
            var list: [String] = []
            for (i, a) in seq.enumerated() {
                let entry = try string(a, "\(path).allow[\(i)]")
                // Checked here so a bad entry fails at load, naming it (the egress rules' own parser).
                do { _ = try AllowRule(entry) } catch { throw fail("\(path).allow[\(i)]", error.message) }
                list.append(entry)
            }
            net.allow = list
        }
        if net.mode != .allowlist && !net.allow.isEmpty {
            throw fail("\(path).allow", "is only valid with mode: allowlist")
        }
    }

    func decodeResources(_ m: Node.Mapping, into l: inout Limits) throws(SandboxError) {
        let f = try fields(
            m, at: "resources",
            allowed: [
                "timeout", "memory", "pids", "cpus", "output", "workspace", "tmp", "code", "input", "open_files",
                "file_size", "workspace_files", "disk",
            ])
        if let n = f["timeout"] { l.timeout = try duration(n, "resources.timeout") }
        if let n = f["memory"] { l.memoryBytes = try size(n, "resources.memory") }
        if let n = f["pids"] { l.pids = try int(n, "resources.pids", Limits.pidsRange) }
        if let n = f["cpus"] {
            guard let s = n.scalar?.string, let v = Double(s), v.isFinite else {
                throw fail("resources.cpus", "must be a number from \(Limits.cpuRange.lowerBound) to \(Int(Limits.cpuRange.upperBound))")
            }
            l.cpus = v
        }
        if let n = f["output"] { l.outputBytes = try size(n, "resources.output") }
        if let n = f["workspace"] { l.workspaceBytes = try size(n, "resources.workspace") }
        if let n = f["tmp"] { l.tmpBytes = try size(n, "resources.tmp") }
        if let n = f["code"] { l.codeBytes = try size(n, "resources.code") }
        if let n = f["input"] { l.inputBytes = try size(n, "resources.input") }
        if let n = f["open_files"] { l.openFiles = try int(n, "resources.open_files", Limits.openFilesRange) }
        if let n = f["file_size"] { l.fileSizeBytes = try size(n, "resources.file_size") }
        if let n = f["workspace_files"] { l.workspaceFiles = try int(n, "resources.workspace_files", Limits.workspaceFilesRange) }
        if let n = f["disk"] { l.diskBytes = try size(n, "resources.disk") }
    }
}
