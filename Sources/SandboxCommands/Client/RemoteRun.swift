import Foundation
import SandboxCore

/// `sandboxer run --server URL`: the same run executed by a sandboxer server — a sandbox of the
/// profile (from the server's warm pool when it keeps one of that profile), one streamed exec,
/// and the sandbox deleted afterwards, also when the run is interrupted or fails.
struct RemoteRun: Sendable {
    /// What the server is asked to run.
    struct Request: Sendable {
        /// A profile name the server knows, or a profile read from a local file (sent inline: no
        /// warm pool, and the server's policy on inline profiles applies).
        var profile: JSONValue
        var isolation: String?
        /// The exec body: `cmd`, or `code` + `lang` (+ `args`); `env`, `stdin_base64`, `timeout`.
        var exec: [String: JSONValue]
        /// Lifetime asked for the sandbox (bounds what a killed CLI leaves behind), or nil: the profile's.
        var ttl: String?
        var setup: String?
    }

    let api: APIClient
    let request: Request

    /// Runs it; `output` gets stdout/stderr chunks as they arrive (nil: no streaming, for `--json`).
    /// Problems the server answers with are thrown as ``SandboxError`` with the server's code and
    /// detail, so they end the CLI with the same status a local refusal or setup failure has.
    func run(output: OutputHandler?) async throws -> ExecResult {
        let id = try await create()
        // Deleted whatever happens, in a task of its own: an interrupted (cancelled) run must not skip it.
        // After a finished exec the server's teardown is not waited for (`wait=false`): the result
        // is in hand, and the sandbox takes no call once it is `stopping`. A failed or interrupted
        // run waits, so its process is gone when the CLI exits.
        func delete(wait: Bool) async {
            let api = self.api
            _ = try? await Task { try await api.send("DELETE", "/v1/sandboxes/\(id)" + (wait ? "" : "?wait=false")) }.value
        }
        do {
            let result = try await exec(id, output: output)
            await delete(wait: false)
            return result
        } catch {
            await delete(wait: true)
            throw error
        }
    }

    /// Creates the sandbox; not cut short by an interruption (the id is needed to delete it), which
    /// then throws `CancellationError` once the sandbox is gone.
    func create() async throws -> String {
        var body: [String: JSONValue] = ["profile": request.profile]
        if let isolation = request.isolation { body["isolation"] = .string(isolation) }
        if let ttl = request.ttl { body["ttl"] = .string(ttl) }
        if let setup = request.setup { body["setup"] = .string(setup) }
        let payload = try JSONValue.object(body).encoded()
        let api = self.api
        let reply = try await Task { try await api.send("POST", "/v1/sandboxes", body: payload) }.value
        guard reply.status < 400 else { throw Self.error(APIProblem(status: reply.status, body: reply.body)) }
        struct Created: Decodable { var id: String }
        let id = try JSONDecoder().decode(Created.self, from: Data(reply.body)).id
        if Task.isCancelled {
            _ = try? await Task { try await api.send("DELETE", "/v1/sandboxes/\(id)") }.value
            throw CancellationError()
        }
        return id
    }

    /// One exec in sandbox `id`: the whole result (`output` nil), or output streamed as server-sent
    /// events and then the result. A cancelled caller closes the stream, which kills the process.
    func exec(_ id: String, output: OutputHandler?) async throws -> ExecResult {
        let path = "/v1/sandboxes/\(id)/exec"
        let payload = try JSONValue.object(request.exec).encoded()
        let decoder = JSONDecoder()
        guard let output else {
            let reply = try await api.send("POST", path, body: payload)
            guard reply.status < 400 else { throw Self.error(APIProblem(status: reply.status, body: reply.body)) }
            return try decoder.decode(ExecResult.self, from: Data(reply.body))
        }
        var parser = SSEParser()
        var errorBody: [UInt8] = []
        var result: ExecResult?
        var streamProblem: APIProblem?
        let status = try await api.stream("POST", path, body: payload, accept: "text/event-stream", onHead: { _, _ in }) { bytes in
            try Task.checkCancellation()
            if errorBody.count < 1 << 16 { errorBody += bytes }
            for event in parser.feed(bytes) {
                switch event.event {
                case "stdout": output(.stdout, SSEParser.chunk(event.data))
                case "stderr": output(.stderr, SSEParser.chunk(event.data))
                case "result": result = try decoder.decode(ExecResult.self, from: Data(event.data.utf8))
                case "error": streamProblem = APIProblem(status: 500, body: Array(event.data.utf8))
                default: break
                }
            }
        }
        try Task.checkCancellation()
        guard status < 400 else { throw Self.error(APIProblem(status: status, body: errorBody)) }
        if let streamProblem { throw Self.error(streamProblem) }
        guard let result else { throw SandboxError(.system, "the server's exec stream ended without a result; see the server's log") }
        return result
    }

    /// The exit status a local run gives a failed setup command, from the server's
    /// `setup_command_failed` detail ("the setup command failed (OUTCOME[, exit N]); …"), or nil.
    static func setupStatus(_ detail: String) -> Int32? {
        guard let open = detail.range(of: "the setup command failed ("),
              let close = detail[open.upperBound...].firstIndex(of: ")") else { return nil }
        let parts = detail[open.upperBound..<close].components(separatedBy: ", exit ")
        guard let outcome = Outcome(rawValue: parts[0]) else { return nil }
        let code = parts.count > 1 ? Int32(parts[1]) : nil
        return ExecResult(sandboxId: "", outcome: outcome, exitCode: code, signal: nil).cliExitStatus
    }

    /// A server problem as the error a local run would have thrown (same code, so the same exit
    /// status: 2 refused, 125 setup failed); an unknown code counts as refused for 4xx, else setup failed.
    static func error(_ p: APIProblem) -> SandboxError {
        if let code = SandboxError.Code(rawValue: p.code) { return SandboxError(code, "server: \(p.detail)") }
        return SandboxError(p.status >= 400 && p.status < 500 ? .invalidRequest : .setupFailed, "server: \(p.code): \(p.detail)")
    }
}

/// A JSON value for request bodies built from CLI options.
enum JSONValue: Sendable, Encodable {
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    case profile(Profile)

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        case .profile(let p): try c.encode(p)
        }
    }

    func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    static func strings(_ items: [String]) -> JSONValue { .array(items.map(JSONValue.string)) }
    static func map(_ items: [String: String]) -> JSONValue { .object(items.mapValues(JSONValue.string)) }
}
