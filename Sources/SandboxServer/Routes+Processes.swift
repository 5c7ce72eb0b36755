import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// Background processes: start, list, follow output (SSE), stdin, signals, PTY size.
    func addProcessRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let store = self.store
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/sandboxes/{id}/processes") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let body = try await BodyReader.decode(ProcessStartBody.self, request, limit: maxJSON)
            let exec = try body.request(try await manager.get(tenantId: caller.tenantId, id: id))
            let process = try await manager.startProcess(tenantId: caller.tenantId, id: id, exec, options: body.options, actor: caller.keyId)
            return try APIJSON.response(process, status: .created)
        }

        routes.add(.get, "/v1/sandboxes/{id}/processes") { _, context in
            let caller = try context.requireCaller()
            let list = try await manager.processes(tenantId: caller.tenantId, id: try context.parameters.require("id"))
            return try APIJSON.response(ProcessList(items: list))
        }

        routes.add(.get, "/v1/sandboxes/{id}/processes/{pid}/output") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let pid = try Self.pid(context)
            // Fails fast (404) before the stream starts when the sandbox or process is unknown.
            guard try await manager.processes(tenantId: caller.tenantId, id: id).contains(where: { $0.pid == pid }) else {
                throw SandboxError(.notFound, "no process \(pid) in sandbox \(id)")
            }
            let key = KeyWatch.key(of: request)
            return Streaming.sse { output in
                try await KeyWatch.whileValid(store, key: key) { try await manager.connect(tenantId: caller.tenantId, id: id, pid: pid, output: output) }
            }
        }

        routes.add(.post, "/v1/sandboxes/{id}/processes/{pid}/input") { request, context in
            let caller = try context.requireCaller()
            let data = try await BodyReader.decode(ProcessInputBody.self, request, limit: maxJSON).data
            try await manager.sendInput(tenantId: caller.tenantId, id: try context.parameters.require("id"), pid: try Self.pid(context), data: data)
            return APIJSON.noContent
        }

        routes.add(.post, "/v1/sandboxes/{id}/processes/{pid}/close-stdin") { request, context in
            let caller = try context.requireCaller()
            _ = try await BodyReader.decode(EmptyBody.self, request, limit: maxJSON)
            try await manager.closeInput(tenantId: caller.tenantId, id: try context.parameters.require("id"), pid: try Self.pid(context))
            return APIJSON.noContent
        }

        routes.add(.post, "/v1/sandboxes/{id}/processes/{pid}/signal") { request, context in
            let caller = try context.requireCaller()
            let signal = try await BodyReader.decode(SignalBody.self, request, limit: maxJSON).signal
            try await manager.signal(tenantId: caller.tenantId, id: try context.parameters.require("id"), pid: try Self.pid(context), signal: signal)
            return APIJSON.noContent
        }

        routes.add(.post, "/v1/sandboxes/{id}/processes/{pid}/resize") { request, context in
            let caller = try context.requireCaller()
            let size = try await BodyReader.decode(ResizeBody.self, request, limit: maxJSON).size
            try await manager.resize(tenantId: caller.tenantId, id: try context.parameters.require("id"), pid: try Self.pid(context), size: size)
            return APIJSON.noContent
        }
    }

    static func pid(_ context: APIRequestContext) throws -> Int32 {
        guard let text = context.parameters.get("pid"), let pid = Int32(text), pid > 0 else {
            throw Problem.invalid("pid", "pid: must be a positive integer")
        }
        return pid
    }
}

/// Signal names the API accepts (with or without `SIG`).
enum Signals {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "WINCH": SIGWINCH, "ALRM": SIGALRM,
    ]
    static func number(_ name: String) -> Int32? {
        var n = name.uppercased()
        if n.hasPrefix("SIG") { n.removeFirst(3) }
        return names[n] ?? Int32(n).flatMap { (1...64).contains($0) ? $0 : nil }
    }
}
