import Foundation
import HTTPTypes
import SandboxCore
@testable import SandboxServer
import Testing

/// envd's filesystem messages as the E2B SDK parses them, and paths as envd resolves them.
@Suite struct EnvdFilesystemTests {
    func json(_ value: some Encodable) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: try Connect.encoder.encode(value)) as! [String: Any]
    }

    @Test func anEntryInfoIsProto3JSONWithEnvdsFields() throws {
        let entry = FileEntry(name: "me.txt", path: "/home/user/me.txt", type: .file, size: 5_000_000_000, mode: 0o644,
                              mtime: 1_700_000_000.25, uid: 1000, gid: 1000, metadata: ["purpose": "report"])
        let o = try json(EnvdEntryInfo(entry))
        #expect(o["name"] as? String == "me.txt")
        #expect(o["type"] as? String == "FILE_TYPE_FILE")
        #expect(o["path"] as? String == "/home/user/me.txt")
        #expect(o["size"] as? String == "5000000000", "int64 travels as a string")
        #expect(o["mode"] as? Int == 0o644)
        #expect(o["permissions"] as? String == "-rw-r--r--")
        #expect(o["owner"] as? String == "user" && o["group"] as? String == "user")
        #expect(o["modifiedTime"] as? String == "2023-11-14T22:13:20.250Z")
        #expect(o["metadata"] as? [String: String] == ["purpose": "report"])
        #expect(o["symlinkTarget"] == nil)
        #expect(Set(o.keys) == ["name", "type", "path", "size", "mode", "permissions", "owner", "group", "modifiedTime", "metadata"])
    }

    @Test func defaultsAreLeftOutAndASymlinkNamesItsTarget() throws {
        let empty = FileEntry(name: "e", path: "/e", type: .file, size: 0, mode: 0o600, mtime: 1_700_000_000, uid: 0, gid: 50)
        let o = try json(EnvdEntryInfo(empty))
        #expect(o["size"] == nil && o["metadata"] == nil)
        #expect(o["owner"] as? String == "root" && o["group"] as? String == "50", "an id with no name is its number, as envd answers")
        #expect(o["modifiedTime"] as? String == "2023-11-14T22:13:20Z")
        let link = FileEntry(name: "l", path: "/l", type: .symlink, size: 3, mode: 0o777, mtime: 0, target: "/etc")
        let l = try json(EnvdEntryInfo(link))
        #expect(l["type"] as? String == "FILE_TYPE_SYMLINK" && l["symlinkTarget"] as? String == "/etc")
        #expect(l["permissions"] as? String == "Lrwxrwxrwx")
        let made = try json(EnvdEntryInfo(name: "d", type: .directory, path: "/home/user/d"))
        #expect(Set(made.keys) == ["name", "type", "path"])
    }

    @Test func permissionsAreWrittenAsGoWritesAFileMode() {
        #expect(EnvdEntryInfo.permissions(.directory, 0o755) == "drwxr-xr-x")
        #expect(EnvdEntryInfo.permissions(.directory, 0o1777) == "dtrwxrwxrwx")
        #expect(EnvdEntryInfo.permissions(.file, 0o4755) == "urwxr-xr-x")
        #expect(EnvdEntryInfo.permissions(.file, 0) == "----------")
    }

    @Test func pathsResolveAgainstTheUsersHomeAndStayUnderRoot() throws {
        #expect(try EnvdPath.resolve("notes/a.txt", user: "user") == "/home/user/notes/a.txt")
        #expect(try EnvdPath.resolve("", user: "user") == "/home/user")
        #expect(try EnvdPath.resolve("~/x", user: "root") == "/root/x")
        #expect(try EnvdPath.resolve(".", user: "root") == "/root")
        #expect(try EnvdPath.resolve("/tmp//a/./b/", user: "user") == "/tmp/a/b")
        #expect(try EnvdPath.resolve("../../etc/shadow", user: "user") == "/etc/shadow")
        #expect(try EnvdPath.resolve("../../../../../../../x", user: "user") == "/x", "`..` never climbs above the sandbox's /")
        #expect(throws: ConnectError.self) { try EnvdPath.resolve("a\u{0}b", user: "user") }
        #expect(try EnvdPath.user(nil, default: "user") == "user")
        #expect(try EnvdPath.user("root", default: "user") == "root")
        #expect(throws: ConnectError.self) { try EnvdPath.user("postgres", default: "user") }
    }

    @Test func requestsReadCamelCaseProtoNamesAndStringIntegers() throws {
        let a = try Connect.decode(EnvdListDirRequest.self, Array(#"{"path":"/tmp","depth":"2"}"#.utf8))
        #expect(a.path == "/tmp" && a.depth == 2)
        let b = try Connect.decode(EnvdWatchRequest.self, Array(#"{"path":"d","include_entry":true}"#.utf8))
        #expect(b.includeEntry && !b.recursive)
        let c = try Connect.decode(EnvdWatcherIdRequest.self, Array(#"{"watcherId":"w1"}"#.utf8))
        #expect(c.watcherId == "w1")
        #expect(try Connect.decode(EnvdListDirRequest.self, []).depth == 0, "an empty body is the empty message")
        #expect(throws: ConnectError.self) { try Connect.decode(EnvdListDirRequest.self, Array(#"{"depth":"deep"}"#.utf8)) }
    }

    @Test func watchResponsesAreOneofsAndEventsNameTheirType() throws {
        let start = String(decoding: try Connect.encoder.encode(EnvdWatchDirResponse.start), as: UTF8.self)
        #expect(start == #"{"start":{}}"#)
        let event = try json(EnvdWatchDirResponse.filesystem(EnvdFilesystemEvent(name: "a/b.txt", type: .write)))
        let fs = event["filesystem"] as? [String: Any]
        #expect(fs?["name"] as? String == "a/b.txt" && fs?["type"] as? String == "EVENT_TYPE_WRITE")
        #expect(String(decoding: try Connect.encoder.encode(EnvdWatcherEventsResponse(events: [])), as: UTF8.self) == "{}")
    }

    @Test func theAgentsWatchEventsAreEnvdsEventTypes() {
        let batch = FileWatchBatch(events: [.init(name: "a", kind: .create), .init(name: "a", kind: .write), .init(name: "d/b", kind: .chmod),
                                            .init(name: "c", kind: .rename), .init(name: "c2", kind: .remove)], overflowed: false)
        #expect(EnvdWatch.events(batch).map { "\($0.name) \($0.type.rawValue)" } == [
            "a EVENT_TYPE_CREATE", "a EVENT_TYPE_WRITE", "d/b EVENT_TYPE_CHMOD", "c EVENT_TYPE_RENAME", "c2 EVENT_TYPE_REMOVE",
        ])
    }

    @Test func gzipRoundTripsAndRefusesBombsAndCorruption() throws {
        let text = Array(String(repeating: "the same line over and over\n", count: 5000).utf8) + Array(0...255)
        let packed = Gzip.compress(text)
        #expect(packed.count < text.count / 4, "repeats are matched, not stored")
        #expect(try Gzip.decompress(packed, limit: 1 << 20) == text)
        #expect(try Gzip.decompress(Gzip.compress([]), limit: 10) == [])
        #expect(try Gzip.decompress(Gzip.compress([1, 2]) + Gzip.compress([3]), limit: 10) == [1, 2, 3], "concatenated members")
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(packed, limit: 1000) }
        var corrupt = packed
        corrupt[corrupt.count - 5] ^= 0xFF
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(corrupt, limit: 1 << 20) }
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(Array("plain".utf8), limit: 100) }
        #expect(Gzip.accepted("gzip, deflate") && Gzip.accepted("br;q=1, *") && !Gzip.accepted("gzip;q=0") && !Gzip.accepted(nil))
    }

    @Test func uploadMetadataComesFromXMetadataHeadersLowercased() throws {
        var headers = HTTPFields()
        headers[HTTPField.Name("X-Metadata-Purpose")!] = "Report"
        headers[HTTPField.Name("x-metadata-run-id")!] = "42"
        headers[.contentType] = "application/octet-stream"
        #expect(try EnvdHTTPRoutes.metadata(headers) == ["purpose": "Report", "run-id": "42"])
    }

    @Test func multipartPartsKeepTheirFilenamesCase() throws {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/home/user/Mixed Case.TXT\"\r\n\r\nhello\r\n--XyZ--\r\n"
        let parts = try Multipart.parts(Array(body.utf8), contentType: "multipart/form-data; boundary=XyZ")
        #expect(parts.count == 1 && parts[0].name == "file" && parts[0].filename == "/home/user/Mixed Case.TXT")
        #expect(parts[0].content == Array("hello".utf8))
    }
}
