import BackendWasm
import Foundation
import SandboxCore
import Testing

@Suite("WASM backend: approved tools", .serialized, .wasmModules())
struct ToolTests {
    @Test func unapprovedToolIsRefusedInsideTheScript() async throws {
        let log = ToolCallLog()
        let code = #"try { tools.call("kv.get", {key: "a"}) } catch (e) { console.log("ERR " + e.message) }"#
        let r = try await Fixtures.backend(onToolCall: log.handler).run(Fixtures.spec(tools: ["kv.set"]), Fixtures.js(code), output: nil)
        #expect(r.outcome == .ok)
        #expect(r.stdout.hasPrefix("ERR tool kv.get is not approved"))
        #expect(log.all.map(\.status) == [.refused])
        #expect(log.all.first?.tool == "kv.get")
    }

    @Test func kvIsScopedToTheRunAndEveryCallIsLogged() async throws {
        let log = ToolCallLog()
        let backend = Fixtures.backend(onToolCall: log.handler)
        let spec = Fixtures.spec(tools: ["kv.get", "kv.set"])
        let code = #"""
        tools.call("kv.set", {key: "k", value: {n: 42}});
        console.log(JSON.stringify(tools.call("kv.get", {key: "k"}).value));
        """#
        let (r, calls) = try await backend.runWithToolCalls(spec, Fixtures.js(code), output: nil)
        #expect(r.stdout == "{\"n\":42}\n")
        #expect(calls.map(\.tool) == ["kv.set", "kv.get"])
        #expect(calls.allSatisfy { $0.status == .ok && $0.argumentBytes > 0 && $0.resultBytes > 0 })
        #expect(log.all == calls)
        let second = try await backend.run(spec, Fixtures.js(#"console.log(tools.call("kv.get", {key: "k"}).value)"#), output: nil)
        #expect(second.stdout == "null\n")
    }

    @Test func largeResultsUseTheRetryProtocol() async throws {
        let code = #"""
        tools.call("kv.set", {key: "big", value: "y".repeat(200000)});
        console.log(tools.call("kv.get", {key: "big"}).value.length);
        """#
        let (r, calls) = try await Fixtures.backend().runWithToolCalls(Fixtures.spec(tools: ["kv.get", "kv.set"]), Fixtures.js(code), output: nil)
        #expect(r.stdout == "200000\n")
        #expect(calls.count == 2)  // the retry with a larger buffer does not run the tool again
    }

    @Test func httpGetChecksTheAllowlistAndNeverConnectsToLoopback() async throws {
        let server = try LoopbackServer(body: "hello from loopback")
        defer { server.stop() }
        let code = """
        for (const url of ["http://127.0.0.1:\(server.port)/hi", "http://localhost:\(server.port)/"]) {
          try { tools.call("http.get", {url}) } catch (e) { console.log("DENIED " + e.message) }
        }
        """
        let (r, calls) = try await Fixtures.backend().runWithToolCalls(
            Fixtures.spec(tools: ["http.get"], allow: ["127.0.0.1:\(server.port)"]), Fixtures.js(code), output: nil)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(r.stdout) \(r.stderr)")
        #expect(lines.first?.hasPrefix("DENIED http.get: 127.0.0.1:\(server.port) denied: 127.0.0.1 is in an always-blocked range (loopback (127.0.0.0/8))") == true, "\(lines)")
        // A name only a CIDR rule could allow is not even looked up (the lookup would leak it).
        #expect(lines.last?.hasPrefix("DENIED http.get: localhost:\(server.port) denied: no name rule") == true, "\(lines)")
        #expect(lines.last?.contains("names are not looked up for address (CIDR) rules") == true, "\(lines)")
        #expect(calls.map(\.status) == [.error, .error])
        #expect(server.hits == 0)
    }
}
