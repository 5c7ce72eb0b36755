import Foundation
import NIOCore
import SandboxCore

/// One execution's stream: the driver's lines as they come, a keepalive line after
/// ``keepalive`` without one (so a client that went away is noticed by the next write), and the
/// kernel interrupted when the client goes away or the driver's run ends early (the profile's
/// time limit, the output cap, a kill).
enum InterpreterStream {
    static let keepalive = Duration.seconds(2)

    private enum Event: Sendable {
        case line([UInt8])
        case tick
        case done(ExecResult?, String?)
    }

    /// Streams the execution through `write`; returns whether it ended so that the stream may
    /// close with `end_of_execution` (false: the client went away).
    static func run(_ driver: InterpreterDriver, _ request: InterpreterService.ExecuteBody, contextId: String,
                    write: (ByteBuffer) async throws -> Void) async throws -> Bool {
        let (events, sink) = AsyncStream<Event>.makeStream()
        var ended: (ExecResult?, String?)?
        var answered = false
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        let result = try await driver.execute(request) { sink.yield(.line($0)) }
                        sink.yield(.done(result, nil))
                    } catch {
                        sink.yield(.done(nil, (error as? SandboxError)?.message ?? "\(error)"))
                    }
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: keepalive)
                        sink.yield(.tick)
                    }
                }
                var lastWrite = ContinuousClock.now
                loop: for await event in events {
                    switch event {
                    case .line(let line) where !answered:
                        // The driver's answer: the context it runs in, or why not.
                        answered = true
                        do {
                            _ = try InterpreterDriver.answer(line, as: InterpreterService.ContextView.self)
                        } catch let refusal as InterpreterDriver.Refusal {
                            try await write(errorLine("ContextNotFound", refusal.message))
                            lastWrite = .now
                        }
                    case .line(let line):
                        var buffer = ByteBuffer(bytes: line)
                        buffer.writeString("\n")
                        try await write(buffer)
                        lastWrite = .now
                    case .tick:
                        if ContinuousClock.now - lastWrite >= keepalive {
                            try await write(ByteBuffer(string: "{\"type\": \"keepalive\"}\n"))
                            lastWrite = .now
                        }
                    case .done(let result, let failure):
                        ended = (result, failure)
                        break loop
                    }
                }
                group.cancelAll()
            }
        } catch {
            // The client went away: the driver was killed with the group; stop the kernel too.
            await interrupt(driver, contextId)
            throw error
        }
        guard let (result, failure) = ended else {
            await interrupt(driver, contextId)
            return false
        }
        if let failure {
            await interrupt(driver, contextId)
            try await write(errorLine("UnexpectedEndOfExecution", failure))
        } else if let result, result.outcome != .ok {
            await interrupt(driver, contextId)
            let why = switch result.outcome {
            case .timeout: "the execution ran longer than the sandbox's time limit for one call and was interrupted"
            case .outputTruncated: "the execution's output went over the sandbox's output limit; it was interrupted"
            default: "the execution ended early (\(result.outcome.rawValue)\(result.reason.map { ": " + $0 } ?? ""))"
            }
            try await write(errorLine(result.outcome == .timeout ? "TimeoutError" : "UnexpectedEndOfExecution", why))
        }
        return true
    }

    /// Interrupts the context's kernel (SIGINT, then until it is idle), whatever becomes of the
    /// request that asked: a task of its own, awaited here, so a cancelled request still stops it.
    static func interrupt(_ driver: InterpreterDriver, _ contextId: String) async {
        await Task {
            _ = try? await driver.call("interrupt", ["id": contextId], as: InterpreterService.ContextView.self)
        }.value
    }

    static func errorLine(_ name: String, _ value: String) -> ByteBuffer {
        struct Line: Encodable { var type = "error"; var name: String; var value: String; var traceback = "" }
        var buffer = ByteBuffer(bytes: (try? JSONEncoder().encode(Line(name: name, value: value))) ?? Data())
        buffer.writeString("\n")
        return buffer
    }
}
