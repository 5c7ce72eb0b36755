import Foundation
import SandboxCommands
import SandboxManager
import SandboxServer
import Testing
import Yams

/// The served routes are exactly the (path, method) pairs openapi.yaml documents.
@Suite struct RouteTests {
    static let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]

    static func documented() throws -> Set<RouteKey> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect((doc["openapi"] as? String)?.hasPrefix("3.1") == true)
        let paths = try #require(doc["paths"] as? [String: Any])
        var keys: Set<RouteKey> = []
        for (path, item) in paths {
            let operations = try #require(item as? [String: Any], "\(path)")
            for method in operations.keys where methods.contains(method) { keys.insert(RouteKey(method: method, path: path)) }
        }
        return keys
    }

    @Test func servedRoutesEqualDocumentedRoutes() async throws {
        let documented = try Self.documented()
        let served = try await ServedApp.with { app in Set(SandboxServer(manager: app.manager, runs: app.runs).servedRoutes()) }
        #expect(served.subtracting(documented).isEmpty, "served, not documented: \(served.subtracting(documented).sorted { $0.description < $1.description })")
        #expect(documented.subtracting(served).isEmpty, "documented, not served: \(documented.subtracting(served).sorted { $0.description < $1.description })")
        #expect(served.count >= 30)
    }

    /// Every documented route answers over HTTP with something other than "no such route".
    @Test func everyDocumentedRouteIsRouted() async throws {
        let documented = try Self.documented()
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            for route in documented {
                let path = route.path.replacingOccurrences(of: "{id}", with: "sbx-none").replacingOccurrences(of: "{pid}", with: "7")
                    .replacingOccurrences(of: "{name}", with: "acme").replacingOccurrences(of: "{digest}", with: "sha256:00")
                let reply = try await client.send(route.method, path, body: route.method == "GET" || route.method == "DELETE" ? nil : Array("{\"__probe\":true}".utf8))
                #expect(!reply.body.text.contains("no route"), "\(route): \(reply.status) \(reply.body.text)")
                #expect(reply.status != 405 && reply.status < 500, "\(route): \(reply.status) \(reply.body.text)")
            }
        }
    }
}
