import Foundation
import SandboxCore
import Templates

/// The template builds of this server (`POST /v1/templates`): each a job with its state, its
/// steps, and its log as NDJSON lines that any number of readers follow from the start until the
/// build ends. Kept in memory (the newest 200 finished ones); a build belongs to its tenant.
actor TemplateBuilds {
    /// One step as `GET /v1/templates/builds/{id}` lists it.
    struct StepView: Encodable, Sendable {
        var index: Int
        var instruction: String
        var cached: Bool
    }

    /// `GET /v1/templates/builds/{id}` (and the 202 of `POST /v1/templates`).
    struct View: Encodable, Sendable {
        var id: String
        var name: String
        var state: String
        var digest: String?
        var error: String?
        var steps: [StepView]
    }

    private struct Build {
        var tenantId: String
        var view: View
        var lines: [String] = []
        var logBytes = 0
        var readers: [UUID: AsyncStream<String>.Continuation] = [:]
        var task: Task<Void, Never>?
        var finished: Bool { view.state != "running" }
    }

    private var builds: [String: Build] = [:]
    /// The most RUN output kept per build (later output is dropped, once noted in the log).
    static let logCap = 16 << 20
    private var finishedOrder: [String] = []
    static let keepFinished = 200

    /// Running builds a tenant may have, and the server: each RUN step is a sandbox of up to 4 GiB.
    static let perTenant = 2
    static let perServer = 4

    /// Refuses a build over the limits (`quota_exceeded`, 429 with Retry-After).
    func admit(tenantId: String) throws(SandboxError) {
        let running = builds.values.filter { !$0.finished }
        if running.filter({ $0.tenantId == tenantId }).count >= Self.perTenant {
            var e = SandboxError(.quotaExceeded, "this tenant already runs \(Self.perTenant) template builds; wait until one ends (GET /v1/templates/builds/{id})")
            e.retryAfterSeconds = 30
            throw e
        }
        if running.count >= Self.perServer {
            var e = SandboxError(.quotaExceeded, "this server already runs \(Self.perServer) template builds; try again later")
            e.retryAfterSeconds = 30
            throw e
        }
    }

    /// Registers a running build and starts `work` for it (owned here: ``cancelAll()`` ends it),
    /// within the limits of ``admit(tenantId:)``.
    func start(id: String, name: String, tenantId: String, work: @escaping @Sendable () async -> Void) throws(SandboxError) -> View {
        try admit(tenantId: tenantId)
        let view = View(id: id, name: name, state: "running", steps: [])
        builds[id] = Build(tenantId: tenantId, view: view)
        builds[id]?.task = Task { await work() }
        return view
    }

    /// The build `id` as its tenant sees it; another tenant's is `not_found`.
    func view(_ id: String, tenantId: String) throws(SandboxError) -> View {
        guard let b = builds[id], b.tenantId == tenantId else { throw SandboxError(.notFound, "no template build '\(id)' (builds are kept in memory while the server runs)") }
        return b.view
    }

    /// A step started (or came from the cache).
    func step(_ id: String, index: Int, of total: Int, instruction: String, cached: Bool) {
        if let i = builds[id]?.view.steps.firstIndex(where: { $0.index == index }) {
            builds[id]?.view.steps[i].cached = cached
        } else {
            builds[id]?.view.steps.append(StepView(index: index, instruction: instruction, cached: cached))
        }
        append(id, Self.line(["type": "step", "index": index, "of": total, "instruction": instruction, "cached": cached]))
    }

    func log(_ id: String, _ bytes: [UInt8]) {
        guard let before = builds[id]?.logBytes, before <= Self.logCap else { return }
        builds[id]?.logBytes = before + bytes.count
        if before + bytes.count > Self.logCap {
            append(id, Self.line(["type": "log", "data": "[sandboxer: more than \(Self.logCap >> 20) MiB of output; the rest of this build's output is not kept]\n"]))
            return
        }
        append(id, Self.line(["type": "log", "data": String(decoding: bytes, as: UTF8.self)]))
    }

    /// The build ended: its state, digest or error; readers get the `done` line and their stream ends.
    func finish(_ id: String, digest: String?, error: String?) {
        guard builds[id] != nil else { return }
        builds[id]?.view.state = error == nil ? "succeeded" : "failed"
        builds[id]?.view.digest = digest
        builds[id]?.view.error = error
        var done: [String: Any] = ["type": "done", "state": builds[id]!.view.state]
        if let digest { done["digest"] = digest }
        if let error { done["error"] = error }
        append(id, Self.line(done))
        for reader in builds[id]!.readers.values { reader.finish() }
        builds[id]?.readers = [:]
        builds[id]?.task = nil
        finishedOrder.append(id)
        while finishedOrder.count > Self.keepFinished { builds[finishedOrder.removeFirst()] = nil }
    }

    /// The build's log from its start; the stream ends when the build does.
    func follow(_ id: String, tenantId: String) throws(SandboxError) -> AsyncStream<String> {
        guard let b = builds[id], b.tenantId == tenantId else { throw SandboxError(.notFound, "no template build '\(id)'") }
        let (stream, continuation) = AsyncStream<String>.makeStream()
        for line in b.lines { continuation.yield(line) }
        if b.finished {
            continuation.finish()
        } else {
            let key = UUID()
            builds[id]?.readers[key] = continuation
            continuation.onTermination = { _ in Task { await self.dropReader(id, key) } }
        }
        return stream
    }

    private func dropReader(_ id: String, _ key: UUID) { builds[id]?.readers[key] = nil }

    /// Ends every running build and waits until each has cleaned up (server shutdown).
    func cancelAll() async {
        let tasks = builds.values.compactMap(\.task)
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    private func append(_ id: String, _ line: String) {
        builds[id]?.lines.append(line)
        for reader in builds[id]?.readers.values ?? [:].values { reader.yield(line) }
    }

    static func line(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
