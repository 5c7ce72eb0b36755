import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

/// A long-lived sandbox for one test, always destroyed afterwards, with its leftovers checked.
enum Live {
    static func with<T>(
        _ edit: (inout Profile) -> Void = { _ in }, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (OCIBackend, SandboxHandle) async throws -> T
    ) async throws -> T {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile(edit)))
        do {
            let r = try await body(backend, box)
            try await backend.destroy(box)
            #expect(HostHealth.leftovers(of: box.id) == [], sourceLocation: sourceLocation)
            return r
        } catch {
            await backend.collect(id: box.id)
            throw error
        }
    }

    static func sh(_ backend: OCIBackend, _ box: SandboxHandle, _ script: String, stdin: ExecRequest.StdinSource = .none,
                   timeout: Duration? = nil) async throws -> ExecResult {
        try await backend.exec(box, ExecRequest(argv: ["/bin/sh", "-c", script], stdin: stdin, timeout: timeout), output: nil)
    }
}

/// Collects output chunks from an ``OutputHandler`` (thread-safe).
final class Chunks: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [StdStream: [UInt8]] = [:]
    func add(_ s: StdStream, _ b: [UInt8]) { lock.withLock { bytes[s, default: []] += b } }
    func get(_ s: StdStream) -> [UInt8] { lock.withLock { bytes[s] ?? [] } }
    var text: String { String(decoding: get(.stdout), as: UTF8.self) }
}
