import Foundation
import Logging
import SandboxCore
import Synchronization

/// One call a guest made through the approved-tools bridge (`tools.call(name, args)` in JavaScript,
/// the `sandboxer.tool_call` import for any module).
public struct ToolCallRecord: Sendable, Equatable, Codable {
    /// How a tool call ended.
    public enum Status: String, Sendable, Codable {
        /// The tool ran and returned a result.
        case ok
        /// The tool is not in the profile's `tools`; nothing ran.
        case refused
        /// The tool ran (or its arguments were checked) and failed.
        case error
    }
    /// The tool's name, e.g. `kv.get`.
    public var tool: String
    /// Size of the JSON arguments, bytes.
    public var argumentBytes: Int
    public var status: Status
    /// Size of the JSON result (or error) returned to the guest, bytes.
    public var resultBytes: Int
    /// The error message for `refused`/`error`.
    public var error: String?
    public var durationMs: Double
    /// For `http.get`: what the egress policy decided (for the sandbox's audit trail).
    public var egress: EgressNote?

    public init(tool: String, argumentBytes: Int, status: Status, resultBytes: Int, error: String? = nil, durationMs: Double = 0,
                egress: EgressNote? = nil) {
        self.egress = egress
        self.tool = tool
        self.argumentBytes = argumentBytes
        self.status = status
        self.resultBytes = resultBytes
        self.error = error
        self.durationMs = durationMs
    }

    enum CodingKeys: String, CodingKey {
        case tool, argumentBytes = "argument_bytes", status, resultBytes = "result_bytes", error, durationMs = "duration_ms", egress
    }
}

/// Receives every tool call of every run as it happens.
public typealias ToolCallHandler = @Sendable (_ sandboxId: String, _ record: ToolCallRecord) -> Void

/// The host side of the tools bridge for one run: checks approval, runs the tool, keeps the call
/// log and the pending oversized result the driver fetches again with a larger buffer.
///
/// Shipped tools: `http.get` (only to hosts in `network.allow`, and never to an address in
/// ``AddressPolicy``'s blocked ranges), `kv.get` / `kv.set` (a ``KVStore`` that lives as long as
/// the run, or as long as the sandbox for a long-lived one: the run starts from the store it is given).
final class ToolBridge: Sendable {
    /// The names of every tool this host implements.
    static let available = ["http.get", "kv.get", "kv.set"]
    /// Largest accepted arguments JSON, bytes.
    static let maxArgumentBytes = 1 << 20

    struct State {
        var kv = KVStore()
        var pending: (key: [UInt8], result: [UInt8], ok: Bool)?
        var calls: [ToolCallRecord] = []
        /// What the last `http.get` decided, for its call record.
        var lastEgress: EgressNote?
    }

    let sandboxId: String
    let approved: Set<String>
    let allow: [String]
    let deadline: ContinuousClock.Instant
    let logger: Logger
    let onCall: ToolCallHandler?
    private let state: Mutex<UnsafeState>

    /// `Any` in the kv store is only touched under the lock.
    /// @unchecked: the kv store holds `Any`; only touched under the Mutex.
    struct UnsafeState: @unchecked Sendable {
        var value: State
        init(_ value: State) { self.value = value }
    }

    init(sandboxId: String, approved: [String], allow: [String], deadline: ContinuousClock.Instant, logger: Logger,
         onCall: ToolCallHandler?, store: KVStore = KVStore()) {
        self.sandboxId = sandboxId
        self.approved = Set(approved)
        self.allow = allow
        self.deadline = deadline
        self.logger = logger
        self.onCall = onCall
        var initial = State()
        initial.kv = store
        state = Mutex(UnsafeState(initial))
    }

    /// Every call so far, in order.
    var calls: [ToolCallRecord] { state.withLock { $0.value.calls } }

    /// The kv store as it is now (its values are immutable, so the copy is safe to read anywhere).
    var store: KVStore { state.withLock { $0.value.kv } }

    /// Runs one call. Returns the JSON result and whether it succeeded. A result the driver
    /// asks for again (same name and arguments) right after is returned from the pending slot.
    func call(name: String, arguments: [UInt8]) -> (ok: Bool, json: [UInt8]) {
        let key = Array(name.utf8) + [0] + arguments
        if let pending = state.withLock({ s -> (ok: Bool, json: [UInt8])? in
            guard let p = s.value.pending, p.key == key else { s.value.pending = nil; return nil }
            s.value.pending = nil
            return (p.ok, p.result)
        }) {
            return pending
        }
        let start = ContinuousClock.now
        let status: ToolCallRecord.Status
        let json: [UInt8]
        var message: String?
        if !approved.contains(name) {
            status = .refused
            message = Self.available.contains(name)
                ? "tool \(name) is not approved by this sandbox's profile (approved: \(approved.sorted().joined(separator: ", ")))"
                : "tool \(name) does not exist (tools: \(Self.available.joined(separator: ", ")))"
            json = Self.errorJSON(message!)
        } else {
            do {
                let result = try run(name: name, arguments: arguments)
                status = .ok
                json = result
            } catch {
                status = .error
                message = error.message
                json = Self.errorJSON(error.message)
            }
        }
        let egress = state.withLock { s -> EgressNote? in defer { s.value.lastEgress = nil }; return s.value.lastEgress }
        let record = ToolCallRecord(
            tool: name, argumentBytes: arguments.count, status: status, resultBytes: json.count, error: message,
            durationMs: (ContinuousClock.now - start).milliseconds, egress: egress)
        state.withLock { $0.value.calls.append(record) }
        logger.info("tool call", metadata: [
            "sandbox": "\(sandboxId)", "tool": "\(name)", "argument_bytes": "\(arguments.count)",
            "status": "\(status.rawValue)", "result_bytes": "\(json.count)",
        ])
        onCall?(sandboxId, record)
        return (status == .ok, json)
    }

    /// Keeps a result too large for the driver's buffer for its identical retry.
    func keepPending(name: String, arguments: [UInt8], result: [UInt8], ok: Bool) {
        let key = Array(name.utf8) + [0] + arguments
        state.withLock { $0.value.pending = (key, result, ok) }
    }

    struct ToolError: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    static func errorJSON(_ message: String) -> [UInt8] {
        encode(["error": message])
    }

    static func encode(_ object: Any) -> [UInt8] {
        (try? JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed, .sortedKeys])).map { [UInt8]($0) }
            ?? Array(#"{"error":"result is not JSON"}"#.utf8)
    }

    private func run(name: String, arguments: [UInt8]) throws(ToolError) -> [UInt8] {
        guard arguments.count <= Self.maxArgumentBytes else {
            throw ToolError("\(name): arguments are \(arguments.count) bytes, over the limit of \(Self.maxArgumentBytes)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(arguments), options: [.fragmentsAllowed]),
              let args = object as? [String: Any]
        else { throw ToolError("\(name): arguments must be a JSON object") }
        switch name {
        case "kv.get":
            guard let key = args["key"] as? String else { throw ToolError("kv.get: needs {\"key\": string}") }
            let value = state.withLock { $0.value.kv.value(key) } ?? NSNull()
            return Self.encode(["key": key, "value": value])
        case "kv.set":
            guard let key = args["key"] as? String, let value = args["value"] else {
                throw ToolError("kv.set: needs {\"key\": string, \"value\": any}")
            }
            let stored = state.withLock { $0.value.kv.set(key, value) }
            guard stored else { throw ToolError("kv.set: the store is full (\(KVStore.maxBytes) bytes); setting this key would take it over") }
            return Self.encode(["ok": true])
        case "http.get":
            guard let url = args["url"] as? String else { throw ToolError("http.get: needs {\"url\": \"http://host:port/path\"}") }
            do {
                var note: EgressNote?
                defer { state.withLock { $0.value.lastEgress = note } }
                let response = try HTTPGet.fetch(url, policy: HTTPGet.policy(allow: allow), deadline: deadline, note: &note)
                return Self.encode(["status": response.status, "body": response.body, "headers": response.headers])
            } catch {
                throw ToolError("http.get: \(error.message)")
            }
        default:
            throw ToolError("tool \(name) does not exist")
        }
    }
}
