import Foundation
import NIOCore
import SandboxCore
import SandboxManager
import Synchronization

/// The code interpreter's driver inside a sandbox (`interpreter.py` of the `code-interpreter-v1`
/// template, templates/code-interpreter-v1/): each call of port 49999 is one run of it through the
/// sandbox's agent (``SandboxManager/exec(tenantId:id:_:actor:output:)``: quotas, limits, audit), the
/// request as JSON on its stdin, JSON lines back on its stdout. The kernels it starts outlive it.
struct InterpreterDriver: Sendable {
    static let path = "/opt/sandboxer-interpreter/interpreter.py"
    /// The most a driver's request may carry (the code of one execution).
    static let maxRequestBytes = 16 << 20
    /// The longest line the driver may send (a result with a large image).
    static let maxLineBytes = 32 << 20

    let manager: SandboxManager
    let target: E2BTarget

    /// Runs a control command (create, list, remove, restart, resolve, interrupt) and returns
    /// what it answered (nil for `{"ok": null}`), or throws the HTTP status and message it refused with.
    func call<Answer: Decodable & Sendable>(_ command: String, _ request: some Encodable, as: Answer.Type) async throws -> Answer? {
        let collected = LineCollector()
        let result = try await run(command, request) { collected.add($0) }
        guard let first = collected.lines.first else { throw failure(result) }
        return try Self.answer(first, as: Answer.self)
    }

    /// Runs `execute`: `line` gets each line of the driver's output as it comes (the first is its
    /// answer, see ``answer(_:as:)``); returns how the driver's run ended.
    func execute(_ request: some Encodable, line: @escaping @Sendable ([UInt8]) -> Void) async throws -> ExecResult {
        try await run("execute", request, line: line)
    }

    private func run(_ command: String, _ request: some Encodable, line: @escaping @Sendable ([UInt8]) -> Void) async throws -> ExecResult {
        let stdin = try JSONEncoder().encode(request)
        let exec = ExecRequest(argv: ["python3", Self.path, command], stdin: .bytes(Array(stdin)), cwd: "/")
        let splitter = LineSplitter(limit: Self.maxLineBytes, line: line)
        let result = try await manager.exec(tenantId: target.tenantId, id: target.sandboxId, exec, actor: target.actor) { stream, bytes in
            if stream == .stdout { splitter.add(bytes) }
        }
        splitter.finish()
        return result
    }

    /// A refusal of the driver: the HTTP status and message to answer with.
    struct Refusal: Error, Sendable, Decodable {
        var status: Int
        var message: String
    }

    /// A driver's first line: `{"ok": …}` or `{"error": {"status": N, "message": "…"}}`.
    static func answer<Answer: Decodable>(_ line: [UInt8], as: Answer.Type) throws -> Answer? {
        guard let decoded = try? JSONDecoder().decode(DriverLine<Answer>.self, from: Data(line)) else {
            throw SandboxError(.system, "the code interpreter's driver answered with something unexpected; restart the context or the sandbox")
        }
        if var refusal = decoded.error {
            if !(400...599).contains(refusal.status) { refusal.status = 500 }
            throw refusal
        }
        return decoded.ok
    }

    /// A driver's first line as JSON.
    struct DriverLine<Answer: Decodable>: Decodable {
        var ok: Answer?
        var error: Refusal?
    }

    /// Why the driver gave no answer: the template has no interpreter, or the run ended early.
    func failure(_ result: ExecResult) -> Error {
        if result.stderr.contains(Self.path) || result.stderr.contains("No such file") {
            return E2BPlaneFailure(status: 502, message: "sandbox \(target.sandboxId) has no code interpreter (port 49999): create it with the template code-interpreter-v1", sandboxId: target.sandboxId)
        }
        let why = result.outcome == .exitNonzero ? "exit \(result.exitCode.map(String.init) ?? "?")" : result.outcome.rawValue
        return SandboxError(.system, "the code interpreter's driver ended without an answer (\(why)): \(result.stderr.suffix(400))")
    }
}

/// Splits a byte stream into lines (without their newline); a line over `limit` is dropped whole.
final class LineSplitter: Sendable {
    private struct State { var pending: [UInt8] = []; var skipping = false }
    private let state = Mutex(State())
    private let limit: Int
    private let line: @Sendable ([UInt8]) -> Void

    init(limit: Int, line: @escaping @Sendable ([UInt8]) -> Void) {
        self.limit = limit
        self.line = line
    }

    func add(_ bytes: [UInt8]) {
        let complete: [[UInt8]] = state.withLock { s in
            var out: [[UInt8]] = []
            var rest = bytes[...]
            while !rest.isEmpty {
                let newline = rest.firstIndex(of: UInt8(ascii: "\n"))
                let piece = rest[..<(newline ?? rest.endIndex)]
                if !s.skipping {
                    s.pending += piece
                    if s.pending.count > limit { s.pending = []; s.skipping = true }
                }
                guard let newline else { break }
                if !s.skipping && !s.pending.isEmpty { out.append(s.pending) }
                s.pending = []
                s.skipping = false
                rest = rest[(newline + 1)...]
            }
            return out
        }
        for l in complete { line(l) }
    }

    func finish() { add([UInt8(ascii: "\n")]) }
}

/// Lines kept in memory (a control command's few lines).
final class LineCollector: Sendable {
    private let kept = Mutex<[[UInt8]]>([])
    func add(_ line: [UInt8]) { kept.withLock { $0.append(line) } }
    var lines: [[UInt8]] { kept.withLock { $0 } }
}
