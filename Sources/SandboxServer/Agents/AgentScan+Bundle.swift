import Foundation
import SandboxCore
import SandboxStore

/// The bundle being assembled from an upload's entries: every path normalised (a leading `./`
/// and empty or `.` components dropped) or refused with a finding, sizes counted against the
/// profile's limits.
struct BundleBuilder {
    let limits: Limits
    var files: [String: [UInt8]] = [:]
    var findings = ScanFindings()
    /// Bytes of file content taken so far.
    private(set) var taken: Int64 = 0

    init(limits: Limits) {
        self.limits = limits
    }

    /// The longest path accepted, in bytes, and its most components.
    static let maximumPathBytes = 1024
    static let maximumComponents = 64

    /// Adds a file; a refused path is a finding and the file is left out.
    mutating func add(_ raw: String, _ bytes: [UInt8]) {
        guard let path = normalise(raw) else { return }
        guard !path.isEmpty else {
            findings.add(.invalidPath, "a file has no name ('\(raw)')", path: raw)
            return
        }
        if files[path] != nil {
            findings.add(.duplicatePath, "'\(path)' is in the upload more than once; each path may appear once", path: path)
            return
        }
        files[path] = bytes
        taken += Int64(bytes.count)
    }

    /// Checks the path of an entry that is not a file (a directory, link, device): its findings
    /// count, nothing is added.
    mutating func check(_ raw: String) {
        _ = normalise(raw)
    }

    /// The normalised path, or nil after adding the findings that refuse it.
    mutating func normalise(_ raw: String) -> String? {
        var refused = false
        if raw.utf8.contains(0) || raw.contains("\\") {
            findings.add(.invalidPath, "'\(Self.shown(raw))' holds a NUL or a backslash; use '/'-separated relative paths", path: Self.shown(raw))
            refused = true
        }
        if raw.utf8.count > Self.maximumPathBytes {
            findings.add(.invalidPath, "a path is \(raw.utf8.count) bytes long; at most \(Self.maximumPathBytes)", path: Self.shown(raw))
            refused = true
        }
        if raw.hasPrefix("/") {
            findings.add(.absolutePath, "'\(Self.shown(raw))' is absolute; paths in a bundle are relative to its root", path: Self.shown(raw))
            refused = true
        }
        let parts = raw.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        if parts.contains("..") {
            findings.add(.pathTraversal, "'\(Self.shown(raw))' has a '..' component, which would leave the bundle", path: Self.shown(raw))
            refused = true
        }
        if parts.count > Self.maximumComponents {
            findings.add(.invalidPath, "'\(Self.shown(raw))' is nested more than \(Self.maximumComponents) levels deep", path: Self.shown(raw))
            refused = true
        }
        return refused ? nil : parts.joined(separator: "/")
    }

    /// Removes the manifest file from the files and returns its bytes. An archive whose files are
    /// all inside one directory holding the manifest (`zip -r agent.zip agent/`) is that directory.
    mutating func takeManifest() -> [UInt8]? {
        if files[AgentScan.manifestName] == nil, let first = files.keys.first, let slash = first.firstIndex(of: "/") {
            let top = first[...slash]
            if files[top + AgentScan.manifestName] != nil, files.keys.allSatisfy({ $0.hasPrefix(top) }) {
                files = Dictionary(uniqueKeysWithValues: files.map { (String($0.key.dropFirst(top.count)), $0.value) })
            }
        }
        guard let bytes = files.removeValue(forKey: AgentScan.manifestName) else { return nil }
        taken -= Int64(bytes.count)
        return bytes
    }

    /// The size and count checks, once every file is in; and no path may be a file and a
    /// directory at once (`a` and `a/b`).
    mutating func checkSizes() {
        let code = limits.codeBytes
        for (path, bytes) in files.sorted(by: { $0.key < $1.key }) where Int64(bytes.count) > code {
            findings.add(.fileTooLarge, "'\(path)' is \(ByteSize.format(Int64(bytes.count))), over the profile's code limit of \(ByteSize.format(code))",
                         path: path)
        }
        if taken > code, !findings.contains(.bundleTooLarge) {
            findings.add(.bundleTooLarge, "the files add up to \(ByteSize.format(taken)) (\(taken) bytes), over the profile's code limit of \(ByteSize.format(code)) (\(code) bytes)")
        }
        if files.count > limits.workspaceFiles {
            findings.add(.tooManyFiles, "the bundle has \(files.count) files; the profile allows \(limits.workspaceFiles)")
        }
        for path in files.keys.sorted() {
            var prefix = ""
            for part in path.split(separator: "/").dropLast() {
                prefix += prefix.isEmpty ? String(part) : "/" + part
                if files[prefix] != nil {
                    findings.add(.invalidPath, "'\(prefix)' is a file and also the directory of '\(path)'", path: path)
                }
            }
        }
    }

    /// A path as a message shows it: NULs visible, at most 200 characters.
    static func shown(_ raw: String) -> String {
        String(raw.replacingOccurrences(of: "\0", with: "\\0").prefix(200))
    }
}
