import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// The WebSocket routes on their own router (only upgrade requests reach it): interactive exec
    /// and the tenant's live events. Every matching request is upgraded; a missing key or an
    /// unknown sandbox is then an `{"type":"error","problem":…}` message and a close (code 1008).
    func addWebSocketRoutes(_ router: Router<APIRequestContext>) {
        let manager = self.manager
        let metrics = self.metrics
        let maxMessage = configuration.maxWebSocketMessageBytes
        let store = self.store
        let logger = self.logger

        router.ws("/v1/sandboxes/{id}/exec/ws") { inbound, outbound, ws in
            var context = ws.requestContext
            func fail(_ error: any Error) async throws {
                try await outbound.writeTextMessage(StreamEvent.failure(Problem(error)).webSocketText)
                try await outbound.close(.policyViolation, reason: Problem(error).code)
            }
            let caller: Caller
            let id = context.parameters.get("id") ?? ""
            do {
                caller = try await AuthMiddleware.caller(of: ws.request, store: store)
                context.caller = caller
                _ = try await manager.get(tenantId: caller.tenantId, id: id)
            } catch {
                try await fail(error)
                return
            }
            var messages = inbound.messages(maxSize: maxMessage).makeAsyncIterator()
            // First message: the exec request.
            let process: SandboxProcess
            let start = ContinuousClock.now
            do {
                guard let first = try await messages.next() else { return }
                let body = try BodyReader.decode(ProcessStartBody.self, bytes: WebSocketExec.bytes(first))
                var exec = try body.request(try await manager.get(tenantId: caller.tenantId, id: id))
                var options = body.options
                options.background = false
                let initialStdin = exec.stdin
                exec.stdin = .none
                process = try await manager.startProcess(tenantId: caller.tenantId, id: id, exec, options: options, actor: caller.keyId)
                try await outbound.writeTextMessage("{\"type\":\"started\",\"pid\":\(process.pid)}")
                if case let .bytes(b) = initialStdin {
                    try await manager.sendInput(tenantId: caller.tenantId, id: id, pid: process.pid, data: b)
                }
            } catch {
                try await fail(error)
                return
            }
            let pid = process.pid
            let key = KeyWatch.key(of: ws.request)
            let (events, continuation) = AsyncStream<StreamEvent>.makeStream()
            let finished = SharedValue(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    await Streaming.produce({ output in
                        let result = try await manager.connect(tenantId: caller.tenantId, id: id, pid: pid, output: output)
                        metrics.recordExec(outcome: result.outcome.rawValue, duration: ContinuousClock.now - start)
                        finished.withLock { $0 = true }
                        return result
                    }, into: continuation)
                }
                group.addTask {
                    for await event in events { try await outbound.writeTextMessage(event.webSocketText) }
                    try await outbound.close(.normalClosure, reason: nil)
                }
                // A revoked key ends the process and closes the socket.
                group.addTask {
                    try await KeyWatch.untilRevoked(store, key: key) { p in
                        try? await manager.signal(tenantId: caller.tenantId, id: id, pid: pid, signal: SIGKILL)
                        try await outbound.writeTextMessage(StreamEvent.failure(p).webSocketText)
                        try await outbound.close(.policyViolation, reason: p.code)
                    }
                }
                // Client messages until it closes: stdin, close-stdin, signals, resizes.
                while let message = try await messages.next() {
                    do {
                        try await WebSocketExec.handle(message, manager: manager, caller: caller, id: id, pid: pid)
                    } catch {
                        try await outbound.writeTextMessage(StreamEvent.failure(Problem(error)).webSocketText)
                    }
                }
                // The client went away before the result: the process goes with it.
                if !finished.withLock({ $0 }) {
                    try? await manager.signal(tenantId: caller.tenantId, id: id, pid: pid, signal: SIGKILL)
                }
                group.cancelAll()
            }
        }

        router.ws("/v1/events") { inbound, outbound, ws in
            let caller: Caller
            do {
                caller = try await AuthMiddleware.caller(of: ws.request, store: store)
            } catch {
                try await outbound.writeTextMessage(StreamEvent.failure(Problem(error)).webSocketText)
                try await outbound.close(.policyViolation, reason: Problem(error).code)
                return
            }
            let key = KeyWatch.key(of: ws.request)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in manager.events(tenantId: caller.tenantId) {
                        let json = try APIJSON.encoder.encode(event)
                        try await outbound.writeTextMessage(String(decoding: json, as: UTF8.self))
                    }
                }
                // A revoked key closes the socket (the client's close then ends the loop below).
                group.addTask {
                    try await KeyWatch.untilRevoked(store, key: key) { p in
                        try await outbound.writeTextMessage(StreamEvent.failure(p).webSocketText)
                        try await outbound.close(.policyViolation, reason: p.code)
                    }
                }
                for try await _ in inbound.messages(maxSize: maxMessage) {}
                group.cancelAll()
            }
        }
    }

    /// The WebSocket paths on the HTTP router: a request that was not upgraded (no key, unknown
    /// sandbox, or no `Upgrade` header) gets a problem here.
    func addWebSocketFallbacks(_ routes: RouteRegistry) {
        let manager = self.manager
        routes.add(.get, "/v1/sandboxes/{id}/exec/ws") { _, context in
            let caller = try context.requireCaller()
            _ = try await manager.get(tenantId: caller.tenantId, id: try context.parameters.require("id"))
            throw Problem(status: 426, code: "invalid_request", detail: "this endpoint is a WebSocket: send an Upgrade: websocket request")
        }
        routes.add(.get, "/v1/events") { _, context in
            _ = try context.requireCaller()
            throw Problem(status: 426, code: "invalid_request", detail: "this endpoint is a WebSocket: send an Upgrade: websocket request")
        }
    }
}

/// Client messages of the interactive exec WebSocket.
///
/// Text: `{"type":"stdin","data":"…"}` (or `"data_base64"`), `{"type":"close_stdin"}`,
/// `{"type":"signal","signal":"TERM"}`, `{"type":"resize","cols":…,"rows":…}`. Binary: raw stdin.
enum WebSocketExec {
    static func bytes(_ message: WebSocketMessage) -> [UInt8] {
        switch message {
        case let .text(s): return Array(s.utf8)
        case let .binary(b): return Array(b.readableBytesView)
        }
    }

    static func handle(_ message: WebSocketMessage, manager: SandboxManager, caller: Caller, id: String, pid: Int32) async throws {
        if case let .binary(buffer) = message {
            try await manager.sendInput(tenantId: caller.tenantId, id: id, pid: pid, data: Array(buffer.readableBytesView))
            return
        }
        switch try BodyReader.decode(WebSocketControl.self, bytes: bytes(message)) {
        case .stdin(let data): try await manager.sendInput(tenantId: caller.tenantId, id: id, pid: pid, data: data)
        case .closeStdin: try await manager.closeInput(tenantId: caller.tenantId, id: id, pid: pid)
        case .signal(let signal): try await manager.signal(tenantId: caller.tenantId, id: id, pid: pid, signal: signal)
        case .resize(let size): try await manager.resize(tenantId: caller.tenantId, id: id, pid: pid, size: size)
        }
    }
}
