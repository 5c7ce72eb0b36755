import Foundation
import SandboxCore

extension SecretVault {
    /// One secret of an import file.
    public struct FileEntry: Sendable, Equatable {
        public var name: String
        public var value: [UInt8]
        public var hosts: [String]
        public var header: String?
        /// The tenant (by name) it belongs to; nil: shared with every tenant.
        public var tenant: String? = nil
    }

    /// Sets every secret of a file of lines `NAME=VALUE [tenant=NAME] hosts=a.example.com,*.b.example.com
    /// [header=Authorization: Bearer {value}]` (blank lines and `#` comments skipped; the value
    /// runs up to ` tenant=` or ` hosts=`, the header to the end of the line). A line with
    /// `tenant=` sets that tenant's secret (`tenantId` maps the name to the id); one without it sets
    /// a shared secret: the file is the operator's explicit act. Every line is checked before any
    /// secret is stored; an error names the file and line. A file others can read is refused.
    /// Returns what was set.
    @discardableResult
    public func importFile(_ path: String, tenantId: (String) async throws -> String) async throws -> [SecretInfo] {
        // The file holds values in the clear: it must be the operator's alone, like the key file.
        let text = String(decoding: try PrivateFile.readPrivate(path, what: "secrets file"), as: UTF8.self)
        let entries = try Self.parseFile(text, path: path)
        for e in entries {
            do {
                try SecretRules.checkName(e.name)
                _ = try SecretRules.normalizedHosts(e.hosts)
                if let h = e.header { try SecretRules.checkHeader(h) }
                try SecretRules.checkValue(e.value, name: e.name)
            } catch {
                throw SandboxError(error.code, "\(path), secret \(e.name): \(error.message)")
            }
        }
        var out: [SecretInfo] = []
        for e in entries {
            var scope = SecretScope.shared
            if let tenant = e.tenant { scope = .tenant(try await tenantId(tenant)) }
            out.append(try await set(e.name, value: e.value, hosts: e.hosts, header: e.header, scope: scope))
        }
        return out
    }

    /// The entries of an import file's text (see ``importFile(_:)``).
    public static func parseFile(_ text: String, path: String) throws(SandboxError) -> [FileEntry] {
        var entries: [FileEntry] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let bad = SandboxError(
                .invalidRequest,
                "\(path):\(index + 1): expected NAME=VALUE [tenant=NAME] hosts=a.example.com[,b.example.com] [header=Name: template with {value}]")
            guard let eq = trimmed.firstIndex(of: "="), let hostsAt = trimmed.range(of: " hosts=", options: .backwards),
                  eq < hostsAt.lowerBound
            else { throw bad }
            let name = String(trimmed[..<eq])
            var valueEnd = hostsAt.lowerBound
            var tenant: String?
            if let tenantAt = trimmed.range(of: " tenant=", range: trimmed.index(after: eq)..<hostsAt.lowerBound) {
                valueEnd = tenantAt.lowerBound
                tenant = String(trimmed[tenantAt.upperBound..<hostsAt.lowerBound])
                guard let t = tenant, !t.isEmpty, !t.contains(" ") else { throw bad }
            }
            let value = Array(trimmed[trimmed.index(after: eq)..<valueEnd].utf8)
            var rest = trimmed[hostsAt.upperBound...]
            var header: String?
            if let headerAt = rest.range(of: " header=") {
                header = String(rest[headerAt.upperBound...])
                rest = rest[..<headerAt.lowerBound]
            }
            let hosts = rest.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !name.isEmpty, !hosts.isEmpty else { throw bad }
            entries.append(FileEntry(name: name, value: value, hosts: hosts, header: header, tenant: tenant))
        }
        return entries
    }
}
