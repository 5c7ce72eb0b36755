import Foundation
import SandboxCore
import SandboxStore

/// An agent upload as it arrives at `POST /v1/agents/{id}/versions`, by `Content-Type`.
public enum AgentUpload: Sendable {
    /// `application/json`: `{"files": {"main.py": "<text>", …}, "manifest": {…}}`.
    case json([UInt8])
    /// `application/x-tar` (gzip-compressed too): the files and a `sandboxer.yaml` manifest.
    case tar([UInt8])
    /// `application/zip`: the same, stored or deflated entries.
    case zip([UInt8])
}

/// Every code the upload scan reports; each one blocks the version (status `blocked`).
public enum AgentScanCode: String, Sendable, CaseIterable {
    /// The files together are over the profile's `code` limit (an archive is not inflated past it).
    case bundleTooLarge = "bundle_too_large"
    /// One file alone is over the profile's `code` limit.
    case fileTooLarge = "file_too_large"
    /// More files than the profile's `workspace_files`.
    case tooManyFiles = "too_many_files"
    /// A path with a `..` component.
    case pathTraversal = "path_traversal"
    /// A path starting with `/`.
    case absolutePath = "absolute_path"
    /// A path that is empty, holds NUL or `\`, is too long, or is a file and a directory at once.
    case invalidPath = "invalid_path"
    /// The same path twice in an archive.
    case duplicatePath = "duplicate_path"
    /// A symbolic or hard link in an archive.
    case link
    /// A character or block device, FIFO or socket in an archive.
    case deviceFile = "device_file"
    /// An archive member of another kind (sparse file, volume label, …).
    case unsupportedEntry = "unsupported_entry"
    /// The body is not a readable tar / zip archive (truncated, bad checksum, CRC mismatch).
    case invalidArchive = "invalid_archive"
    /// A zip archive or entry that needs zip64 (refused: a bundle never needs it).
    case zip64Unsupported = "zip64_unsupported"
    /// An encrypted zip entry.
    case encryptedEntry = "encrypted_entry"
    /// A zip entry neither stored nor deflated.
    case unsupportedCompression = "unsupported_compression"
    /// No manifest, one that does not parse, or a field of the wrong type or missing.
    case invalidManifest = "invalid_manifest"
    /// A manifest key other than lang, entrypoint, isolation, tools, limits.
    case unknownManifestKey = "unknown_manifest_key"
    /// `lang` other than python, js, sh.
    case unknownLang = "unknown_lang"
    /// `entrypoint` is not one of the files.
    case entrypointMissing = "entrypoint_missing"
    /// `isolation` other than container, wasm, wasm+container.
    case unknownIsolation = "unknown_isolation"
    /// A WASM isolation for a language it cannot run (the WASM lane runs js only).
    case isolationLangMismatch = "isolation_lang_mismatch"
    /// A tool the profile does not allow.
    case toolNotAllowed = "tool_not_allowed"
    /// A limit the profile does not know, or a value it cannot read.
    case invalidLimit = "invalid_limit"
    /// A limit above the profile's.
    case limitTooHigh = "limit_too_high"
}

/// What the upload scan made of an upload: the canonical files and manifest, their digest, and
/// every finding (none: accepted).
public struct AgentScanResult: Sendable, Equatable {
    /// Relative path → content (the manifest file is not among them).
    public var files: [String: [UInt8]]
    public var manifest: AgentManifest
    public var digest: String
    public var sizeBytes: Int
    public var findings: [ScanFinding]
    /// The profile scanned against.
    public var profile: String

    public var status: AgentVersionStatus { findings.isEmpty ? .accepted : .blocked }

    /// The version record of this result for an agent.
    public func version(agentId: String, tenantId: String, createdAt: Date = Date()) -> AgentVersionRecord {
        AgentVersionRecord(digest: digest, agentId: agentId, tenantId: tenantId, manifest: manifest, files: files, sizeBytes: sizeBytes,
                           status: status, findings: findings, profile: profile, createdAt: createdAt)
    }
}

/// The upload scan of the agent registry: a pure function of the upload and the profile it is
/// scanned against. It never stops at the first problem — every finding is listed — and never
/// touches the disk: archives are parsed in memory, links and devices are reported, never made.
public struct AgentScan: Sendable {
    public let profile: Profile

    /// The manifest's name at an archive's root.
    public static let manifestName = "sandboxer.yaml"
    /// The largest manifest read.
    public static let maximumManifestBytes = 64 << 10

    public init(profile: Profile) {
        self.profile = profile
    }

    /// The most body bytes an upload may have: 4× the profile's code limit, so a bundle somewhat
    /// over the limit reaches the scan and is blocked with a finding (above it: 413).
    public static func bodyLimit(_ profile: Profile) -> Int64 { profile.limits.codeBytes * 4 }

    /// Scans `upload`. Throws (`invalid_request`) only for a JSON body that is not an upload at
    /// all; everything wrong with a bundle is a finding.
    public func scan(_ upload: AgentUpload) throws(SandboxError) -> AgentScanResult {
        var bundle = BundleBuilder(limits: profile.limits)
        var manifestText: [UInt8]?
        var manifestValue: ManifestValue?
        switch upload {
        case .json(let bytes):
            let body = try JSONUpload.decode(bytes)
            for (path, text) in body.files.sorted(by: { $0.key < $1.key }) { bundle.add(path, Array(text.utf8)) }
            manifestText = bundle.takeManifest()
            if let given = body.manifest {
                if manifestText != nil {
                    bundle.findings.add(.invalidManifest, "the upload has both a \"manifest\" object and a \(Self.manifestName) file; give the manifest once",
                                        path: Self.manifestName)
                    manifestText = nil
                }
                manifestValue = given
            }
        case .tar(let bytes):
            ArchiveReading.tar(bytes, into: &bundle)
            manifestText = bundle.takeManifest()
        case .zip(let bytes):
            ArchiveReading.zip(bytes, into: &bundle)
            manifestText = bundle.takeManifest()
        }
        if let text = manifestText {
            manifestValue = ManifestCheck.parse(text, findings: &bundle.findings)
            // A manifest that cannot be read stays in the content, so its bytes still make the digest.
            if manifestValue == nil { bundle.files[Self.manifestName] = text }
        }
        bundle.checkSizes()
        let manifest = ManifestCheck(profile: profile).read(manifestValue, files: Set(bundle.files.keys), findings: &bundle.findings)
        let size = bundle.files.values.reduce(0) { $0 + $1.count }
        let findings = bundle.findings.list
        return AgentScanResult(files: bundle.files, manifest: manifest,
                               digest: AgentDigest.of(files: bundle.files, manifest: manifest, profile: profile.name, findings: findings),
                               sizeBytes: size, findings: findings, profile: profile.name)
    }
}

/// Findings in the order found; the same one twice is listed once.
struct ScanFindings {
    private(set) var list: [ScanFinding] = []

    mutating func add(_ code: AgentScanCode, _ message: String, path: String? = nil) {
        let finding = ScanFinding(code: code.rawValue, message: message, path: path)
        if !list.contains(finding) { list.append(finding) }
    }

    func contains(_ code: AgentScanCode) -> Bool { list.contains { $0.code == code.rawValue } }
}

/// A JSON upload's body: `files` (path → text) and an optional `manifest`; any other field is a 400.
struct JSONUpload: Decodable {
    var files: [String: String]
    var manifest: ManifestValue?

    init(from decoder: any Decoder) throws {
        var f = try BodyFields(decoder)
        guard let files = try f.stringMap("files") else {
            throw Problem.invalid("files", "files is required: an object of path → file text, e.g. {\"main.py\": \"print(1)\"}")
        }
        self.files = files
        manifest = try f.value("manifest", ManifestValue.self, "must be an object")
        try f.finish()
    }

    static func decode(_ bytes: [UInt8]) throws(SandboxError) -> JSONUpload {
        do { return try BodyReader.decode(JSONUpload.self, bytes: bytes) } catch let p as Problem {
            throw SandboxError(.invalidRequest, p.detail, field: p.field)
        } catch {
            throw SandboxError(.invalidRequest, "the upload is not a JSON agent bundle: \(error)")
        }
    }
}
