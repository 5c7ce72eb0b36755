import Foundation
import SandboxCore
@testable import SandboxServer
import Testing

/// envd's process messages in proto3 JSON, as the E2B SDKs' generated code reads and writes them:
/// camelCase names, defaults left out, bytes in base64, enums by name, a oneof as its one key.
@Suite struct EnvdProcessModelTests {
    /// The JSON object a message encodes to (key order aside).
    static func json(_ message: some Encodable) throws -> NSDictionary {
        let data = try Connect.encoder.encode(message)
        return try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    static func object(_ text: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
    }

    static func decode<M: Decodable>(_: M.Type, _ text: String) throws -> M {
        try Connect.decode(M.self, Array(text.utf8))
    }

    @Test func startEventCarriesThePidAndNothingElse() throws {
        #expect(try Self.json(EnvdProcessEvent.start(pid: 42)) == Self.object(#"{"event": {"start": {"pid": 42}}}"#))
    }

    @Test func outputIsBase64UnderItsStreamName() throws {
        #expect(try Self.json(EnvdProcessEvent.stdout([0x61, 0xFF])) == Self.object(#"{"event": {"data": {"stdout": "Yf8="}}}"#))
        #expect(try Self.json(EnvdProcessEvent.stderr(Array("err".utf8))) == Self.object(#"{"event": {"data": {"stderr": "ZXJy"}}}"#))
        #expect(try Self.json(EnvdProcessEvent.pty(Array("$ ".utf8))) == Self.object(#"{"event": {"data": {"pty": "JCA="}}}"#))
    }

    @Test func keepaliveIsAnEmptyMessage() throws {
        #expect(try Self.json(EnvdProcessEvent.keepalive) == Self.object(#"{"event": {"keepalive": {}}}"#))
    }

    @Test func aCleanExitLeavesTheZeroCodeOut() throws {
        let end = EnvdEndEvent(exitCode: 0, signal: nil)
        #expect(try Self.json(EnvdProcessEvent.end(end)) == Self.object(#"{"event": {"end": {"exited": true, "status": "exit status 0"}}}"#))
    }

    @Test func aFailedExitNamesItsCodeAsGoDoes() throws {
        let end = EnvdEndEvent(exitCode: 3, signal: nil)
        #expect(try Self.json(EnvdProcessEvent.end(end))
            == Self.object(#"{"event": {"end": {"exitCode": 3, "exited": true, "status": "exit status 3", "error": "exit status 3"}}}"#))
    }

    @Test func aSignalledEndIsMinusOneAndNotExited() throws {
        let end = EnvdEndEvent(exitCode: nil, signal: SIGKILL)
        #expect(try Self.json(EnvdProcessEvent.end(end))
            == Self.object(#"{"event": {"end": {"exitCode": -1, "status": "signal: killed", "error": "signal: killed"}}}"#))
        #expect(EnvdEndEvent(exitCode: nil, signal: SIGTERM).status == "signal: terminated")
    }

    @Test func listResponseOmitsEmptyFieldsAndKeepsTags() throws {
        let info = EnvdProcessInfo(config: EnvdProcessConfig(cmd: "/bin/bash", args: ["-l", "-c", "sleep 1"], cwd: "/home/user"), pid: 7, tag: "t")
        #expect(try Self.json(EnvdListResponse(processes: [info]))
            == Self.object(#"{"processes": [{"config": {"cmd": "/bin/bash", "args": ["-l", "-c", "sleep 1"], "cwd": "/home/user"}, "pid": 7, "tag": "t"}]}"#))
        #expect(try Self.json(EnvdListResponse(processes: [])) == Self.object("{}"))
        #expect(try Self.json(EnvdEmpty()) == Self.object("{}"))
    }

    @Test func startRequestReadsAsTheSDKSendsIt() throws {
        let m = try Self.decode(EnvdStartRequest.self, #"""
            {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", "echo hi"], "envs": {"A": "1"}, "cwd": "/tmp"},
             "pty": {"size": {"cols": 80, "rows": "24"}}, "tag": "x", "stdin": true, "unknownField": 1}
            """#)
        #expect(m.process == EnvdProcessConfig(cmd: "/bin/bash", args: ["-l", "-c", "echo hi"], envs: ["A": "1"], cwd: "/tmp"))
        #expect(m.pty == EnvdPTY(cols: 80, rows: 24))
        #expect(m.tag == "x")
        #expect(m.stdin == true)
    }

    @Test func selectorsAreByPidOrByTag() throws {
        #expect(try Self.decode(EnvdSelectRequest.self, #"{"process": {"pid": 12}}"#).process == .pid(12))
        #expect(try Self.decode(EnvdSelectRequest.self, #"{"process": {"pid": "12"}}"#).process == .pid(12))
        #expect(try Self.decode(EnvdSelectRequest.self, #"{"process": {"tag": "web"}}"#).process == .tag("web"))
        #expect(try Self.decode(EnvdSelectRequest.self, "{}").process == nil)
        #expect(throws: ConnectError.self) { try Self.decode(EnvdSelectRequest.self, #"{"process": {}}"#) }
        #expect(throws: ConnectError.self) { try Self.decode(EnvdSelectRequest.self, #"{"process": {"pid": -1}}"#) }
    }

    @Test func inputIsBase64ForStdinOrTerminal() throws {
        #expect(try Self.decode(EnvdSendInputRequest.self, #"{"process": {"pid": 1}, "input": {"stdin": "aGk="}}"#).input == .stdin(Array("hi".utf8)))
        #expect(try Self.decode(EnvdSendInputRequest.self, #"{"process": {"pid": 1}, "input": {"pty": "_w"}}"#).input == .pty([0xFF]))
        #expect(throws: ConnectError.self) { try Self.decode(EnvdSendInputRequest.self, #"{"input": {"stdin": "%%%"}}"#) }
    }

    @Test func streamInputMessagesAreStartDataOrKeepalive() throws {
        #expect(try Self.decode(EnvdStreamInputRequest.self, #"{"start": {"process": {"tag": "a"}}}"#) == .start(.tag("a")))
        #expect(try Self.decode(EnvdStreamInputRequest.self, #"{"data": {"input": {"stdin": "eA=="}}}"#) == .data(.stdin([0x78])))
        #expect(try Self.decode(EnvdStreamInputRequest.self, #"{"keepalive": {}}"#) == .keepalive)
        #expect(throws: ConnectError.self) { try Self.decode(EnvdStreamInputRequest.self, "{}") }
    }

    @Test func signalsAreReadByNameOrNumber() throws {
        let byName = try Self.decode(EnvdSendSignalRequest.self, #"{"process": {"pid": 1}, "signal": "SIGNAL_SIGKILL"}"#)
        #expect(try EnvdSignal(json: byName.signal).number == SIGKILL)
        let byNumber = try Self.decode(EnvdSendSignalRequest.self, #"{"process": {"pid": 1}, "signal": 15}"#)
        #expect(try EnvdSignal(json: byNumber.signal).number == SIGTERM)
        let unset = try Self.decode(EnvdSendSignalRequest.self, #"{"process": {"pid": 1}}"#)
        #expect(try EnvdSignal(json: unset.signal).number == nil)
        #expect(throws: ConnectError.self) { try EnvdSignal(json: "SIGNAL_SIGHUP") }
    }

    @Test func aStartRunsAsUserInHomeUnlessRootOrACwdIsAsked() throws {
        let config = EnvdProcessConfig(cmd: "/bin/bash", args: ["-l", "-c", "pwd"], envs: ["HOME": "/elsewhere"], cwd: nil)
        let plan = try EnvdProcessPlan(EnvdStartRequest(process: config), user: "user")
        #expect(plan.exec.argv == ["/bin/bash", "-l", "-c", "pwd"])
        #expect(plan.exec.cwd == "/home/user")
        #expect(plan.exec.env == ["HOME": "/elsewhere", "USER": "user", "LOGNAME": "user"])
        #expect(plan.exec.stdin == .bytes([]))
        #expect(plan.options == ProcessOptions(background: true))

        let root = try EnvdProcessPlan(EnvdStartRequest(process: EnvdProcessConfig(cmd: "id", args: [], cwd: "work"), stdin: true), user: "root")
        #expect(root.exec.cwd == "/root/work")
        #expect(root.exec.stdin == .none)
        #expect(root.options.asRoot)

        let terminal = try EnvdProcessPlan(EnvdStartRequest(process: config, pty: EnvdPTY(cols: 0, rows: 0), tag: "t"), user: "user")
        #expect(terminal.options == ProcessOptions(background: true, pty: TerminalSize(cols: 80, rows: 24), tag: "t"))
        #expect(terminal.exec.stdin == .none)

        #expect(throws: ConnectError.self) { try EnvdProcessPlan(EnvdStartRequest(process: config), user: "nobody") }
        #expect(throws: ConnectError.self) { try EnvdProcessPlan(EnvdStartRequest(process: nil), user: "user") }
    }
}
