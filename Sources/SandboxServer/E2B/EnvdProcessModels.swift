import Foundation

// envd's `process` package (process/process.proto) in proto3 JSON, as the E2B SDKs' generated
// messages read and write it: camelCase names, defaults omitted, bytes in base64, enums by name,
// each `oneof` as the one key that is set. Requests decode leniently as protojson does (unknown
// keys ignored, `null` as unset, numbers also as strings); responses encode exactly.

/// Proto3 JSON scalar rules shared by the messages below.
enum ProtoJSON {
    /// A `uint32`: a JSON number or a decimal string.
    static func uint32<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> UInt32? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let n = try? c.decode(UInt32.self, forKey: key) { return n }
        if let s = try? c.decode(String.self, forKey: key), let n = UInt32(s) { return n }
        throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.stringValue) must be a uint32 (a number or a decimal string)")
    }

    /// `bytes`: standard or URL-safe base64, padded or not.
    static func bytes<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> [UInt8] {
        let text = try c.decode(String.self, forKey: key)
        var b64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.stringValue) must be base64")
        }
        return Array(data)
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

/// `process.ProcessSelector`: a process by pid or by tag.
enum EnvdProcessSelector: Decodable, Equatable, Sendable, CustomStringConvertible {
    case pid(UInt32)
    case tag(String)

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: BodyKey.self)
        if let pid = try ProtoJSON.uint32(c, BodyKey("pid")) {
            self = .pid(pid)
        } else if let tag = try c.decodeIfPresent(String.self, forKey: BodyKey("tag")) {
            self = .tag(tag)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a process selector needs pid or tag"))
        }
    }

    var description: String {
        switch self {
        case .pid(let pid): "pid \(pid)"
        case .tag(let tag): "tag '\(tag)'"
        }
    }
}

/// `process.PTY`: a terminal's size.
struct EnvdPTY: Decodable, Equatable, Sendable {
    var cols: UInt32
    var rows: UInt32

    init(cols: UInt32, rows: UInt32) {
        self.cols = cols
        self.rows = rows
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: BodyKey.self)
        let size = try c.decodeIfPresent(Size.self, forKey: BodyKey("size")) ?? Size(cols: 0, rows: 0)
        cols = size.cols
        rows = size.rows
    }

    struct Size: Decodable {
        var cols: UInt32
        var rows: UInt32
        init(cols: UInt32, rows: UInt32) {
            self.cols = cols
            self.rows = rows
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: BodyKey.self)
            cols = try ProtoJSON.uint32(c, BodyKey("cols")) ?? 0
            rows = try ProtoJSON.uint32(c, BodyKey("rows")) ?? 0
        }
    }
}

/// `process.ProcessConfig`: what runs (`cmd` with `args`), its extra environment and directory.
struct EnvdProcessConfig: Codable, Equatable, Sendable {
    var cmd: String = ""
    var args: [String] = []
    var envs: [String: String] = [:]
    var cwd: String?

    init(cmd: String, args: [String], envs: [String: String] = [:], cwd: String?) {
        self.cmd = cmd
        self.args = args
        self.envs = envs
        self.cwd = cwd
    }

    enum CodingKeys: String, CodingKey { case cmd, args, envs, cwd }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cmd = try c.decodeIfPresent(String.self, forKey: .cmd) ?? ""
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        envs = try c.decodeIfPresent([String: String].self, forKey: .envs) ?? [:]
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !cmd.isEmpty { try c.encode(cmd, forKey: .cmd) }
        if !args.isEmpty { try c.encode(args, forKey: .args) }
        if !envs.isEmpty { try c.encode(envs, forKey: .envs) }
        try c.encodeIfPresent(cwd, forKey: .cwd)
    }
}

/// `process.StartRequest`.
struct EnvdStartRequest: Decodable, Sendable {
    var process: EnvdProcessConfig?
    var pty: EnvdPTY?
    var tag: String?
    var stdin: Bool?
}

/// The requests that name one process: `ConnectRequest`, `CloseStdinRequest`.
struct EnvdSelectRequest: Decodable, Sendable {
    var process: EnvdProcessSelector?
}

/// `process.ProcessInput`: bytes for a process's stdin or its terminal.
enum EnvdProcessInput: Decodable, Equatable, Sendable {
    case stdin([UInt8])
    case pty([UInt8])

    var bytes: [UInt8] {
        switch self {
        case .stdin(let b), .pty(let b): b
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: BodyKey.self)
        if c.contains(BodyKey("stdin")), try !c.decodeNil(forKey: BodyKey("stdin")) {
            self = .stdin(try ProtoJSON.bytes(c, BodyKey("stdin")))
        } else if c.contains(BodyKey("pty")), try !c.decodeNil(forKey: BodyKey("pty")) {
            self = .pty(try ProtoJSON.bytes(c, BodyKey("pty")))
        } else {
            self = .stdin([])
        }
    }
}

/// `process.SendInputRequest`.
struct EnvdSendInputRequest: Decodable, Sendable {
    var process: EnvdProcessSelector?
    var input: EnvdProcessInput?
}

/// `process.StreamInputRequest`: the first message selects the process, the others carry input
/// or keep the stream alive.
enum EnvdStreamInputRequest: Decodable, Equatable, Sendable {
    case start(EnvdProcessSelector?)
    case data(EnvdProcessInput?)
    case keepalive

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: BodyKey.self)
        if let start = try c.decodeIfPresent(EnvdSelectRequest.self, forKey: BodyKey("start")) {
            self = .start(start.process)
        } else if let data = try c.decodeIfPresent(EnvdSendInputRequest.self, forKey: BodyKey("data")) {
            self = .data(data.input)
        } else if c.contains(BodyKey("keepalive")) {
            self = .keepalive
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a StreamInputRequest needs start, data or keepalive"))
        }
    }
}

/// `process.Signal`, by name (`SIGNAL_SIGKILL`) or number.
enum EnvdSignal: Equatable, Sendable {
    case unspecified, sigterm, sigkill

    init(json: String) throws(ConnectError) {
        switch json {
        case "SIGNAL_UNSPECIFIED", "0": self = .unspecified
        case "SIGNAL_SIGTERM", "15": self = .sigterm
        case "SIGNAL_SIGKILL", "9": self = .sigkill
        default: throw ConnectError(.invalidArgument, "signal '\(json)' is not a process.Signal: send SIGNAL_SIGTERM or SIGNAL_SIGKILL")
        }
    }

    /// The POSIX signal, or nil for `SIGNAL_UNSPECIFIED`.
    var number: Int32? {
        switch self {
        case .unspecified: nil
        case .sigterm: SIGTERM
        case .sigkill: SIGKILL
        }
    }
}

/// `process.SendSignalRequest` (the signal as its JSON text; ``EnvdSignal`` reads it).
struct EnvdSendSignalRequest: Decodable, Sendable {
    var process: EnvdProcessSelector?
    var signal: String

    enum CodingKeys: String, CodingKey { case process, signal }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        process = try c.decodeIfPresent(EnvdProcessSelector.self, forKey: .process)
        if let n = try? c.decode(Int.self, forKey: .signal) {
            signal = String(n)
        } else {
            signal = try c.decodeIfPresent(String.self, forKey: .signal) ?? "SIGNAL_UNSPECIFIED"
        }
    }
}

/// `process.UpdateRequest`: a PTY's new size.
struct EnvdUpdateRequest: Decodable, Sendable {
    var process: EnvdProcessSelector?
    var pty: EnvdPTY?
}

/// An empty message of either envd service: the empty responses (`SendInputResponse`,
/// `CloseStdinResponse`, `RemoveResponse`, `RemoveWatcherResponse`, …), `ListRequest`, and the
/// filesystem stream's `StartEvent` and `KeepAlive`.
struct EnvdEmpty: Codable, Sendable {}

/// `process.ProcessInfo`.
struct EnvdProcessInfo: Encodable, Equatable, Sendable {
    var config: EnvdProcessConfig
    var pid: UInt32
    var tag: String?

    enum CodingKeys: String, CodingKey { case config, pid, tag }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        if pid != 0 { try c.encode(pid, forKey: .pid) }
        try c.encodeIfPresent(tag, forKey: .tag)
    }
}

/// `process.ListResponse`.
struct EnvdListResponse: Encodable, Sendable {
    var processes: [EnvdProcessInfo]

    enum CodingKeys: String, CodingKey { case processes }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !processes.isEmpty { try c.encode(processes, forKey: .processes) }
    }
}

/// `process.ProcessEvent.EndEvent`: how a process ended, in Go's `os.ProcessState` terms (envd's):
/// `exitCode` -1 and `exited` false when a signal ended it, `status` "exit status 1" or
/// "signal: killed".
struct EnvdEndEvent: Equatable, Sendable {
    var exitCode: Int32
    var exited: Bool
    var status: String
    var error: String?

    /// The end of a process that exited with `exitCode` or was ended by `signal`.
    init(exitCode: Int32?, signal: Int32?) {
        if let signal, exitCode == nil {
            self.exitCode = -1
            exited = false
            status = "signal: " + Self.signalName(signal)
        } else {
            self.exitCode = exitCode ?? -1
            exited = exitCode != nil
            status = "exit status \(self.exitCode)"
        }
        error = self.exitCode == 0 ? nil : status
    }

    init(exitCode: Int32, exited: Bool, status: String, error: String?) {
        self.exitCode = exitCode
        self.exited = exited
        self.status = status
        self.error = error
    }

    /// Go's names of signals (`syscall.Signal.String()`), which envd's status carries.
    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGHUP: "hangup"
        case SIGINT: "interrupt"
        case SIGQUIT: "quit"
        case SIGILL: "illegal instruction"
        case SIGTRAP: "trace/breakpoint trap"
        case SIGABRT: "aborted"
        case SIGBUS: "bus error"
        case SIGFPE: "floating point exception"
        case SIGKILL: "killed"
        case SIGUSR1: "user defined signal 1"
        case SIGSEGV: "segmentation fault"
        case SIGUSR2: "user defined signal 2"
        case SIGPIPE: "broken pipe"
        case SIGALRM: "alarm clock"
        case SIGTERM: "terminated"
        case SIGXCPU: "CPU time limit exceeded"
        case SIGXFSZ: "file size limit exceeded"
        default: "signal \(signal)"
        }
    }
}

/// `process.ProcessEvent` wrapped as `StartResponse` / `ConnectResponse` (`{"event": …}`).
enum EnvdProcessEvent: Encodable, Equatable, Sendable {
    case start(pid: UInt32)
    case stdout([UInt8])
    case stderr([UInt8])
    case pty([UInt8])
    case end(EnvdEndEvent)
    case keepalive

    func encode(to encoder: any Encoder) throws {
        var outer = encoder.container(keyedBy: BodyKey.self)
        var event = outer.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("event"))
        switch self {
        case .start(let pid):
            var start = event.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("start"))
            if pid != 0 { try start.encode(pid, forKey: BodyKey("pid")) }
        case .stdout(let b): try Self.data(&event, "stdout", b)
        case .stderr(let b): try Self.data(&event, "stderr", b)
        case .pty(let b): try Self.data(&event, "pty", b)
        case .end(let e):
            var end = event.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("end"))
            if e.exitCode != 0 { try end.encode(e.exitCode, forKey: BodyKey("exitCode")) }
            if e.exited { try end.encode(true, forKey: BodyKey("exited")) }
            if !e.status.isEmpty { try end.encode(e.status, forKey: BodyKey("status")) }
            try end.encodeIfPresent(e.error, forKey: BodyKey("error"))
        case .keepalive:
            _ = event.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("keepalive"))
        }
    }

    static func data(_ event: inout KeyedEncodingContainer<BodyKey>, _ name: String, _ bytes: [UInt8]) throws {
        var data = event.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("data"))
        // A set oneof member is written even when empty (its presence is the information).
        try data.encode(ProtoJSON.base64(bytes), forKey: BodyKey(name))
    }
}
