import Foundation
import SandboxCore
import Testing
@testable import BackendWasm

#if canImport(Glibc)
import Glibc
#endif

/// The kv tools' store on its own: size accounting, the file round trip, refusing files it did not write.
@Suite("WASM backend: kv store")
struct KVStoreTests {
    @Test func sizesAreWhatTheFileTakesAndReplacingAKeyDoesNotGrowTheStore() {
        var store = KVStore()
        var stored = store.set("k", "v")
        #expect(stored)
        #expect(store.bytes == KVStore.size(key: "k", value: "v"))
        for _ in 0..<1000 { stored = stored && store.set("k", "w") }
        #expect(stored)
        #expect(store.bytes == KVStore.size(key: "k", value: "w"))
        let big = String(repeating: "x", count: KVStore.maxBytes - 10)
        stored = store.set("big", big)
        #expect(!stored, "over the cap")
        #expect(store.value("big") == nil && store.value("k") as? String == "w")
        #expect(store.changed)
    }

    @Test func saveAndLoadRoundTripAtomically() throws {
        let dir = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/kv.json"
        #expect(try KVStore.load(path: path).entries.isEmpty, "no file yet: an empty store")
        var store = KVStore()
        let stored = store.set("n", 42) && store.set("obj", ["a": [1, 2], "s": "é"] as [String: Any]) && store.set("null", NSNull())
        #expect(stored)
        try store.save(path: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["kv.json"], "no temp file is left")
        let back = try KVStore.load(path: path)
        #expect(!back.changed && back.bytes == store.bytes)
        #expect(back.value("n") as? Int == 42 && back.value("null") is NSNull)
        #expect((back.value("obj") as? [String: Any])?["s"] as? String == "é")
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? -1
        #expect(size > 0 && size <= Int64(store.bytes + 2))
    }

    @Test func filesItDidNotWriteAreRefused() throws {
        let dir = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("[1,2]".utf8).write(to: URL(fileURLWithPath: dir + "/array"))
        #expect(throws: SandboxError.self) { try KVStore.load(path: dir + "/array") }
        try Data(count: KVStore.maxBytes + 2048).write(to: URL(fileURLWithPath: dir + "/huge"))
        #expect(throws: SandboxError.self) { try KVStore.load(path: dir + "/huge") }
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/array")
        #expect(throws: SandboxError.self) { try KVStore.load(path: dir + "/link") }
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        #expect(throws: SandboxError.self) { try KVStore.load(path: dir + "/fifo") }
    }
}
