import Foundation
import SandboxCore
import SandboxLinux
import SandboxStore
import Templates
import Testing
@testable import SandboxServer

/// The upload scan of the agent registry, as a pure function: each finding code from an upload
/// that has exactly that problem, every finding of a bad upload at once, one digest for one
/// content whatever its form, and archives (tar, zip) read in memory without ever making a link
/// or inflating a bomb.
@Suite("Agent upload scan")
struct AgentScanTests {
    static let bounty = AgentScan(profile: .bounty)
    static let main = "import sys\nprint(sorted(map(int, sys.stdin.read().split())))\n"

    /// A JSON upload: `files` as text, the manifest as given (nil: none).
    static func json(_ files: [String: String], manifest: [String: Any]? = ["lang": "python", "entrypoint": "main.py"]) -> AgentUpload {
        var body: [String: Any] = ["files": files]
        if let manifest { body["manifest"] = manifest }
        return .json(Array(try! JSONSerialization.data(withJSONObject: body)))
    }

    /// Bytes Python builds (`out` is an io.BytesIO the script fills; tarfile, zipfile, io imported).
    static func python(_ script: String) async throws -> [UInt8] {
        let program = "import tarfile, zipfile, io, base64, sys\nout = io.BytesIO()\n" + script
            + "\nsys.stdout.write(base64.b64encode(out.getvalue()).decode())\n"
        let (status, stdout, stderr) = try await ChildProcess.run(["/usr/bin/python3", "-c", program])
        try #require(status == .exited(0), "python3: \(stderr)")
        return Array(try #require(Data(base64Encoded: stdout)))
    }

    /// A tar of `members` made by Python's tarfile: (name, type, content or link target).
    static func tar(_ members: [(String, String, String)]) async throws -> [UInt8] {
        let list = members.map { "(\(pyString($0.0)), \(pyString($0.1)), \(pyString($0.2)))" }.joined(separator: ", ")
        return try await python("""
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
                for name, kind, data in [\(list)]:
                    info = tarfile.TarInfo(name)
                    if kind == "file":
                        info.size = len(data.encode())
                        t.addfile(info, io.BytesIO(data.encode()))
                        continue
                    info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                                 "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE, "label": b"V"}[kind]
                    info.linkname = data
                    t.addfile(info)
            """)
    }

    /// A zip of `members` (name, content, "stored" | "deflated" | "bzip2") made by Python's zipfile.
    static func zip(_ members: [(String, String, String)]) async throws -> [UInt8] {
        let list = members.map { "(\(pyString($0.0)), \(pyString($0.1)), \(pyString($0.2)))" }.joined(separator: ", ")
        return try await python("""
            methods = {"stored": zipfile.ZIP_STORED, "deflated": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2}
            with zipfile.ZipFile(out, "w") as z:
                for name, data, method in [\(list)]:
                    z.writestr(name, data, compress_type=methods[method])
            """)
    }

    static func pyString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    static let manifestYAML = "lang: python\nentrypoint: main.py\n"

    /// An upload that has exactly one problem, for each code (and the profile it is scanned against).
    static func upload(for code: AgentScanCode) async throws -> (AgentUpload, Profile) {
        var bounty = Profile.bounty
        switch code {
        case .bundleTooLarge:
            let part = String(repeating: "#", count: 200 << 10)
            return (json(["main.py": main, "a.txt": part, "b.txt": part, "c.txt": part]), bounty)
        case .fileTooLarge:
            return (json(["main.py": main, "big.txt": String(repeating: "#", count: 600 << 10)]), bounty)
        case .tooManyFiles:
            bounty.limits.workspaceFiles = 16
            var files = ["main.py": main]
            for i in 0..<16 { files["f\(i).txt"] = "\(i)" }
            return (json(files), bounty)
        case .pathTraversal: return (json(["main.py": main, "lib/../../escape.py": "x"]), bounty)
        case .absolutePath: return (json(["main.py": main, "/etc/cron.d/evil": "x"]), bounty)
        case .invalidPath: return (json(["main.py": main, "dir\\file.py": "x"]), bounty)
        case .duplicatePath:
            return (.tar(try await tar([("main.py", "file", main), ("sandboxer.yaml", "file", manifestYAML), ("./main.py", "file", "evil")])), bounty)
        case .link:
            return (.tar(try await tar([("main.py", "file", main), ("sandboxer.yaml", "file", manifestYAML), ("secret", "symlink", "/etc/shadow")])), bounty)
        case .deviceFile:
            return (.tar(try await tar([("main.py", "file", main), ("sandboxer.yaml", "file", manifestYAML), ("mem", "chr", "")])), bounty)
        case .unsupportedEntry:
            return (.tar(try await tar([("main.py", "file", main), ("sandboxer.yaml", "file", manifestYAML), ("VOLUME", "label", "")])), bounty)
        case .invalidArchive:
            var bytes = try await tar([("main.py", "file", main), ("sandboxer.yaml", "file", manifestYAML), ("extra.txt", "file", "x")])
            bytes[2048 + 148] ^= 0x01  // the third header's checksum
            return (.tar(bytes), bounty)
        case .zip64Unsupported:
            var bytes = try await zip([("main.py", main, "stored"), ("sandboxer.yaml", manifestYAML, "stored"), ("extra.txt", "x", "stored")])
            let entry = try centralEntry(bytes, 2)
            for i in (entry + 20)..<(entry + 24) { bytes[i] = 0xFF }  // extra.txt's compressed size: zip64's marker
            return (.zip(bytes), bounty)
        case .encryptedEntry:
            var bytes = try await zip([("main.py", main, "stored"), ("sandboxer.yaml", manifestYAML, "stored"), ("extra.txt", "x", "stored")])
            bytes[try centralEntry(bytes, 2) + 8] |= 1  // extra.txt's flags: encrypted
            return (.zip(bytes), bounty)
        case .unsupportedCompression:
            return (.zip(try await zip([("main.py", main, "stored"), ("sandboxer.yaml", manifestYAML, "stored"), ("extra.txt", "x", "bzip2")])), bounty)
        case .invalidManifest:
            return (.tar(try await tar([("main.py", "file", main)])), bounty)
        case .unknownManifestKey:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "network": "open"]), bounty)
        case .unknownLang:
            return (json(["main.py": main], manifest: ["lang": "ruby", "entrypoint": "main.py"]), bounty)
        case .entrypointMissing:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "run.py"]), bounty)
        case .unknownIsolation:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "isolation": "gvisor"]), bounty)
        case .isolationLangMismatch:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "isolation": "wasm"]), bounty)
        case .toolNotAllowed:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "tools": ["http_get"]]), bounty)
        case .invalidLimit:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "limits": ["gpus": "1"]]), bounty)
        case .limitTooHigh:
            return (json(["main.py": main], manifest: ["lang": "python", "entrypoint": "main.py", "limits": ["timeout": "60s"]]), bounty)
        }
    }

    /// The offset of the `index`th entry of a zip's central directory.
    static func centralEntry(_ bytes: [UInt8], _ index: Int) throws -> Int {
        var at = Int(ZipReader.u32(bytes, try #require(ZipReader.endRecord(bytes)) + 16))
        for _ in 0..<index {
            at += 46 + Int(ZipReader.u16(bytes, at + 28)) + Int(ZipReader.u16(bytes, at + 30)) + Int(ZipReader.u16(bytes, at + 32))
        }
        return at
    }

    @Test("each finding code blocks the version, and is the only finding of an upload with only that problem", arguments: AgentScanCode.allCases)
    func eachCode(_ code: AgentScanCode) async throws {
        let (upload, profile) = try await Self.upload(for: code)
        let result = try AgentScan(profile: profile).scan(upload)
        #expect(result.status == .blocked)
        // A file over the code limit makes the bundle over it too.
        let expected: Set<String> = code == .fileTooLarge ? [code.rawValue, "bundle_too_large"] : [code.rawValue]
        #expect(Set(result.findings.map(\.code)) == expected, "\(result.findings)")
        #expect(result.findings.allSatisfy { !$0.message.isEmpty })
    }

    @Test("a clean upload is accepted with no findings; limits at or under the profile's are fine")
    func accepted() throws {
        let result = try Self.bounty.scan(Self.json(
            ["main.py": Self.main, "lib/util.py": "X = 1\n"],
            manifest: ["lang": "python", "entrypoint": "./main.py", "limits": ["timeout": "10s", "memory": "128M", "pids": 64]]))
        #expect(result.status == .accepted && result.findings.isEmpty)
        #expect(result.files.keys.sorted() == ["lib/util.py", "main.py"])
        #expect(result.manifest == AgentManifest(lang: "python", entrypoint: "main.py", limits: ["memory": "128M", "pids": "64", "timeout": "10s"]))
        #expect(result.sizeBytes == Self.main.utf8.count + 6 && result.profile == "bounty")
        #expect(AgentDigest.isWellFormed(result.digest))
    }

    @Test("every finding of an upload is listed at once, not only the first")
    func allFindings() async throws {
        let upload = Self.json(
            ["main.py": Self.main, "../up.py": "x", "/abs.py": "x", "big.bin": String(repeating: "x", count: 600 << 10)],
            manifest: ["lang": "ruby", "entrypoint": "gone.rb", "isolation": "vm", "tools": ["http_get", "kv"], "extra": true,
                       "limits": ["timeout": "5m", "memory": "1G", "gpus": "2"]])
        let result = try Self.bounty.scan(upload)
        #expect(result.status == .blocked)
        #expect(Set(result.findings.map(\.code)) == [
            "path_traversal", "absolute_path", "file_too_large", "bundle_too_large", "unknown_manifest_key", "unknown_lang",
            "entrypoint_missing", "unknown_isolation", "tool_not_allowed", "limit_too_high", "invalid_limit",
        ])
        #expect(result.findings.filter { $0.code == "tool_not_allowed" }.count == 2)
        #expect(result.findings.filter { $0.code == "limit_too_high" }.map(\.message).sorted() == [
            "limits.memory 1G is above profile bounty's 256M", "limits.timeout 5m is above profile bounty's 30s",
        ])
        #expect(result.findings.first { $0.code == "path_traversal" }?.path == "../up.py")
        #expect(result.files.keys.sorted() == ["big.bin", "main.py"], "refused paths are left out")
    }

    @Test("a tar with a symlink, a hard link, a device, a FIFO, a ../ path and an absolute path: each is a finding, none is a file")
    func hostileTar() async throws {
        let bytes = try await Self.tar([
            ("main.py", "file", Self.main), ("sandboxer.yaml", "file", Self.manifestYAML),
            ("etc", "symlink", "/etc"), ("passwd", "hardlink", "/etc/passwd"), ("sda", "blk", ""), ("pipe", "fifo", ""),
            ("../../root/.ssh/authorized_keys", "file", "ssh-ed25519 AAAA"), ("/etc/cron.d/x", "file", "* * * * * root sh"),
            ("lib/", "dir", ""), ("lib/ok.py", "file", "1"),
        ])
        let result = try Self.bounty.scan(.tar(bytes))
        #expect(result.findings.map(\.code) == ["link", "link", "device_file", "device_file", "path_traversal", "absolute_path"])
        #expect(result.findings.map(\.path) == ["etc", "passwd", "sda", "pipe", "../../root/.ssh/authorized_keys", "/etc/cron.d/x"])
        #expect(result.files.keys.sorted() == ["lib/ok.py", "main.py"])
        #expect(result.manifest == AgentManifest(lang: "python", entrypoint: "main.py"))
    }

    @Test("the same content as JSON, as a tar made by TarWriter, as a gzip'd tar and as a zip has one digest; other content another")
    func oneDigest() async throws {
        let dir = NSTemporaryDirectory() + "agent-digest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        try Self.main.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        try "X = 1\n".write(toFile: dir + "/lib/util.py", atomically: true, encoding: .utf8)
        try "lang: python\nentrypoint: main.py\nlimits:\n  timeout: 10s\n".write(toFile: dir + "/sandboxer.yaml", atomically: true, encoding: .utf8)
        var tarBytes: [UInt8] = []
        try TarWriter { tarBytes += $0 }.write(directory: dir)

        let fromJSON = try Self.bounty.scan(Self.json(
            ["lib/util.py": "X = 1\n", "main.py": Self.main], manifest: ["entrypoint": "main.py", "lang": "python", "limits": ["timeout": "10s"]]))
        let fromTar = try Self.bounty.scan(.tar(tarBytes))
        let fromGzip = try Self.bounty.scan(.tar(Gzip.compress(tarBytes)))
        let fromZip = try Self.bounty.scan(.zip(try await Self.zip([
            ("sandboxer.yaml", "lang: python\nentrypoint: main.py\nlimits: {timeout: 10s}\n", "deflated"),
            ("main.py", Self.main, "deflated"), ("lib/util.py", "X = 1\n", "stored"),
        ])))
        #expect(fromJSON.status == .accepted && fromTar.status == .accepted && fromZip.status == .accepted, "\(fromTar.findings) \(fromZip.findings)")
        #expect(fromTar.digest == fromJSON.digest && fromGzip.digest == fromJSON.digest && fromZip.digest == fromJSON.digest)
        #expect(try Self.bounty.scan(.tar(tarBytes)).digest == fromTar.digest, "the same bytes again: the same digest")
        let changed = try Self.bounty.scan(Self.json(
            ["lib/util.py": "X = 2\n", "main.py": Self.main], manifest: ["entrypoint": "main.py", "lang": "python", "limits": ["timeout": "10s"]]))
        #expect(changed.digest != fromJSON.digest)
        let otherManifest = try Self.bounty.scan(Self.json(
            ["lib/util.py": "X = 1\n", "main.py": Self.main], manifest: ["entrypoint": "main.py", "lang": "python", "limits": ["timeout": "9s"]]))
        #expect(otherManifest.digest != fromJSON.digest)
        #expect(try AgentScan(profile: .default).scan(.tar(tarBytes)).digest != fromTar.digest, "another profile: another version")
        // The same files plus a refused member are another version (blocked), never the accepted one.
        try FileManager.default.createSymbolicLink(atPath: dir + "/secret", withDestinationPath: "/etc/shadow")
        var withLink: [UInt8] = []
        try TarWriter { withLink += $0 }.write(directory: dir)
        let linked = try Self.bounty.scan(.tar(withLink))
        #expect(linked.files == fromTar.files && linked.status == .blocked && linked.digest != fromTar.digest)
    }

    @Test("a zip's stored and deflated entries are read byte for byte, directories skipped")
    func zipEntries() async throws {
        let text = String(repeating: "sort the numbers; ", count: 500)
        let bytes = try await Self.zip([
            ("sandboxer.yaml", "lang: js\nentrypoint: src/main.js\nisolation: wasm\n", "stored"),
            ("src/", "", "stored"), ("src/main.js", text, "deflated"), ("README", "plain", "stored"),
        ])
        let result = try Self.bounty.scan(.zip(bytes))
        #expect(result.status == .accepted, "\(result.findings)")
        #expect(result.files == ["src/main.js": Array(text.utf8), "README": Array("plain".utf8)])
        #expect(result.manifest == AgentManifest(lang: "js", entrypoint: "src/main.js", isolation: "wasm"))
    }

    @Test("an archive of one directory holding the manifest (zip -r agent.zip agent/) is that directory")
    func oneTopDirectory() async throws {
        let nested = try Self.bounty.scan(.zip(try await Self.zip([
            ("agent/sandboxer.yaml", Self.manifestYAML, "stored"), ("agent/main.py", Self.main, "deflated"), ("agent/lib/x.py", "1", "stored"),
        ])))
        let flat = try Self.bounty.scan(.zip(try await Self.zip([
            ("sandboxer.yaml", Self.manifestYAML, "stored"), ("main.py", Self.main, "deflated"), ("lib/x.py", "1", "stored"),
        ])))
        #expect(nested.status == .accepted && nested.files.keys.sorted() == ["lib/x.py", "main.py"] && nested.digest == flat.digest)
        // Files outside that directory: no manifest at the root, nothing renamed.
        let mixed = try Self.bounty.scan(.zip(try await Self.zip([
            ("agent/sandboxer.yaml", Self.manifestYAML, "stored"), ("agent/main.py", Self.main, "stored"), ("other.py", "1", "stored"),
        ])))
        #expect(mixed.findings.map(\.code) == ["invalid_manifest"] && mixed.files["agent/main.py"] != nil)
    }

    @Test("a zip bomb (64 MiB of zeros in a few KiB) is stopped at the code limit and blocked as bundle_too_large")
    func zipBomb() async throws {
        let bytes = try await Self.python("""
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr("main.py", "print(1)\\n")
                z.writestr("sandboxer.yaml", "lang: python\\nentrypoint: main.py\\n")
                z.writestr("zeros.bin", bytes(64 << 20))
                z.writestr("after.txt", "never inflated")
            """)
        #expect(bytes.count < 200 << 10)
        let result = try Self.bounty.scan(.zip(bytes))
        #expect(result.status == .blocked)
        #expect(result.findings.map(\.code) == ["bundle_too_large"], "\(result.findings)")
        #expect(result.files.keys.sorted() == ["main.py"], "neither the bomb nor what follows it is kept")
        #expect(result.sizeBytes <= Int(Profile.bounty.limits.codeBytes))
    }

    @Test("a gzip'd tar bomb is stopped while inflating and blocked as bundle_too_large")
    func gzipBomb() throws {
        let result = try Self.bounty.scan(.tar(Gzip.compress([UInt8](repeating: 0, count: 8 << 20))))
        #expect(result.findings.map(\.code) == ["bundle_too_large", "invalid_manifest"], "nothing of it is read, the manifest neither")
    }

    @Test("a zip in zip64 form, or not a zip at all, is refused as a whole (no manifest then)")
    func wholeZipRefused() async throws {
        var bytes = try await Self.zip([("main.py", Self.main, "stored"), ("sandboxer.yaml", Self.manifestYAML, "stored")])
        for i in (bytes.count - 14)..<(bytes.count - 10) { bytes[i] = 0xFF }  // the entry counts: zip64's marker
        #expect(try Self.bounty.scan(.zip(bytes)).findings.map(\.code) == ["zip64_unsupported", "invalid_manifest"])
        #expect(try Self.bounty.scan(.zip(Array("PK not really".utf8))).findings.map(\.code) == ["invalid_archive", "invalid_manifest"])
    }

    @Test("a manifest that is not YAML, not a mapping, or a YAML alias bomb is invalid_manifest; the body not JSON is a 400")
    func badManifests() async throws {
        for text in ["lang: [python\n", "- a\n- b\n", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"] {
            let result = try Self.bounty.scan(.tar(try await Self.tar([("main.py", "file", Self.main), ("sandboxer.yaml", "file", text)])))
            #expect(result.findings.map(\.code) == ["invalid_manifest"], "\(text.prefix(20)): \(result.findings)")
        }
        #expect(throws: SandboxError.self) { try Self.bounty.scan(.json(Array("not json".utf8))) }
        #expect(throws: SandboxError.self) { try Self.bounty.scan(.json(Array(#"{"files": {"a": 1}}"#.utf8))) }
        #expect(throws: SandboxError.self) { try Self.bounty.scan(.json(Array(#"{"files": {}, "other": 1}"#.utf8))) }
    }
}
