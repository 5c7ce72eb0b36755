import Foundation
import SandboxCore
import SandboxStore

/// Reads a manifest tree into an ``AgentManifest`` and checks it against the files and the
/// profile, adding a finding for each problem (what can be read is kept, for the record).
struct ManifestCheck {
    let profile: Profile

    static let keys = ["lang", "entrypoint", "isolation", "tools", "limits"]
    static let langs = ["python", "js", "sh"]
    static let isolations = ["container", "wasm", "wasm+container"]

    /// Parses manifest text (YAML or JSON); nil after a finding when it cannot be read.
    static func parse(_ bytes: [UInt8], findings: inout ScanFindings) -> ManifestValue? {
        let name = AgentScan.manifestName
        guard bytes.count <= AgentScan.maximumManifestBytes else {
            findings.add(.invalidManifest, "\(name) is \(bytes.count) bytes; a manifest is at most \(AgentScan.maximumManifestBytes)", path: name)
            return nil
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            findings.add(.invalidManifest, "\(name) is not UTF-8 text", path: name)
            return nil
        }
        do { return try ManifestValue.parseYAML(text) } catch {
            findings.add(.invalidManifest, "\(name): \(error.message)", path: name)
            return nil
        }
    }

    func read(_ value: ManifestValue?, files: Set<String>, findings: inout ScanFindings) -> AgentManifest {
        var manifest = AgentManifest(lang: "", entrypoint: "")
        guard let value else {
            if !findings.contains(.invalidManifest) {
                findings.add(.invalidManifest, "the upload has no manifest: add \(AgentScan.manifestName) at the bundle's root (or \"manifest\" in a JSON upload) with at least lang and entrypoint")
            }
            return manifest
        }
        guard case .map(let fields) = value else {
            findings.add(.invalidManifest, "the manifest must be a mapping with lang, entrypoint (and isolation, tools, limits); it is \(value.kind)")
            return manifest
        }
        for key in fields.keys.sorted() where !Self.keys.contains(key) {
            findings.add(.unknownManifestKey, "unknown manifest key '\(key.prefix(100))'; allowed: \(Self.keys.joined(separator: ", "))")
        }
        if let lang = text(fields, "lang", required: true, &findings) {
            manifest.lang = lang
            if !Self.langs.contains(lang) {
                findings.add(.unknownLang, "lang '\(lang.prefix(100))' is not one sandboxer runs; one of: \(Self.langs.joined(separator: ", "))")
            }
        }
        if let entry = text(fields, "entrypoint", required: true, &findings) {
            // Relative to the bundle's root, as the files are: `./main.py` is `main.py`, `/main.py` no file.
            let parts = entry.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
            let path = entry.hasPrefix("/") || parts.contains("..") ? entry : parts.joined(separator: "/")
            manifest.entrypoint = path.isEmpty ? entry : path
            if !files.contains(path) {
                findings.add(.entrypointMissing, "entrypoint '\(entry.prefix(200))' is not one of the bundle's files", path: String(entry.prefix(200)))
            }
        }
        if let isolation = text(fields, "isolation", required: false, &findings) {
            manifest.isolation = isolation
            if !Self.isolations.contains(isolation) {
                findings.add(.unknownIsolation, "isolation '\(isolation.prefix(100))' is not one agents run in; one of: \(Self.isolations.joined(separator: ", "))")
            }
        }
        if manifest.isolation.hasPrefix("wasm"), Self.langs.contains(manifest.lang), manifest.lang != "js" {
            findings.add(.isolationLangMismatch, "isolation '\(manifest.isolation)' runs JavaScript only; lang '\(manifest.lang)' needs isolation: container")
        }
        manifest.tools = tools(fields["tools"], &findings)
        manifest.limits = limits(fields["limits"], &findings)
        return manifest
    }

    private func text(_ fields: [String: ManifestValue], _ key: String, required: Bool, _ findings: inout ScanFindings) -> String? {
        guard let value = fields[key] else {
            if required { findings.add(.invalidManifest, "the manifest has no \(key); it is required") }
            return nil
        }
        guard let text = value.text else {
            findings.add(.invalidManifest, "manifest \(key) must be text; it is \(value.kind)")
            return nil
        }
        return text
    }

    private func tools(_ value: ManifestValue?, _ findings: inout ScanFindings) -> [String] {
        guard let value else { return [] }
        guard case .list(let items) = value else {
            findings.add(.invalidManifest, "manifest tools must be a list of tool names; it is \(value.kind)")
            return []
        }
        var tools: [String] = []
        for item in items {
            guard let name = item.text else {
                findings.add(.invalidManifest, "manifest tools must be a list of tool names; one is \(item.kind)")
                continue
            }
            tools.append(name)
            if !profile.tools.contains(name) {
                let allowed = profile.tools.isEmpty ? "none" : profile.tools.joined(separator: ", ")
                findings.add(.toolNotAllowed, "tool '\(name.prefix(100))' is not allowed by profile \(profile.name) (it allows: \(allowed))")
            }
        }
        return tools
    }

    private func limits(_ value: ManifestValue?, _ findings: inout ScanFindings) -> [String: String] {
        guard let value else { return [:] }
        guard case .map(let fields) = value else {
            findings.add(.invalidManifest, "manifest limits must be a mapping of limit → value (timeout: 10s); it is \(value.kind)")
            return [:]
        }
        var out: [String: String] = [:]
        for (name, item) in fields.sorted(by: { $0.key < $1.key }) {
            guard let text = item.text else {
                findings.add(.invalidLimit, "limits.\(name.prefix(100)) must be a value such as 10s or 128M; it is \(item.kind)")
                continue
            }
            out[name] = text
            do {
                let asked = try profile.limits.setting(name, to: text, source: "manifest limits")
                for over in asked.exceeding(profile.limits) {
                    findings.add(.limitTooHigh, "limits.\(over) \(text) is above profile \(profile.name)'s \(profile.limits.text(of: over) ?? "?")")
                }
            } catch {
                findings.add(.invalidLimit, error.message)
            }
        }
        return out
    }
}
