import Foundation
import SandboxCore
import SandboxStore
import Testing

/// The agent registry contract's fixture.
public typealias AgentStoreFixture = StoreFixture<any AgentStore>

/// The agent registry (``AgentStore``) as checks every engine must pass; each engine's suite runs
/// every case on a fresh store (`second`: another instance on the same data).
public enum AgentStoreContract {
    public typealias Case = @Sendable (AgentStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "an agent is stored, read back and listed oldest first, per tenant only": agents,
        "a name the tenant already uses is refused with invalid_state naming the holder; another tenant may use it": duplicateName,
        "of concurrent creates under one name (on two instances) exactly one succeeds": concurrentCreates,
        "a version is stored once: the same digest again returns the stored one unchanged": versions,
        "a version is found by digest only in its tenant, with its files, findings and profile": versionByDigest,
        "of concurrent puts of one version (on two instances) exactly one creates it": concurrentPuts,
        "agents are listed a page at a time: limit, next_cursor until the last page, ties in creation time broken by id, a foreign cursor refused": paging,
    ]

    public static var names: [String] { cases.keys.sorted() }

    static func tenant() -> String { "tnt_" + UUID().uuidString.prefix(8).lowercased() }

    /// Every agent of `tenant` on one page.
    static func all(_ store: any AgentStore, _ tenant: String) async throws -> [AgentRecord] {
        try await store.agents(tenantId: tenant, cursor: nil, limit: 1000).items
    }

    /// A version with every field set.
    public static func sampleVersion(agent: AgentRecord, digest: String, status: AgentVersionStatus = .accepted,
                                     createdAt: Date = Date()) -> AgentVersionRecord {
        AgentVersionRecord(
            digest: digest, agentId: agent.id, tenantId: agent.tenantId,
            manifest: AgentManifest(lang: "python", entrypoint: "main.py", isolation: "container", tools: ["http_get"], limits: ["timeout": "10s"]),
            files: ["main.py": Array("print('hi')\n".utf8), "lib/data.bin": [0, 255, 10, 13]], sizeBytes: 16, status: status,
            findings: status == .blocked ? [ScanFinding(code: "path_traversal", message: "'../x' leaves the bundle", path: "../x")] : [],
            profile: "bounty", createdAt: createdAt)
    }

    static func agents(_ f: AgentStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        let first = try await f.store.createAgent(AgentRecord(tenantId: a, name: "sorter", createdAt: Date(timeIntervalSinceReferenceDate: 1000)))
        let second = try await f.store.createAgent(AgentRecord(tenantId: a, name: "adder", createdAt: Date(timeIntervalSinceReferenceDate: 2000)))
        _ = try await f.store.createAgent(AgentRecord(tenantId: b, name: "other"))
        #expect(first.id.hasPrefix("agt-"))
        #expect(try await f.store.agent(tenantId: a, id: first.id) == first)
        #expect(try await all(f.store, a) == [first, second])
        #expect(try await f.store.agent(tenantId: b, id: first.id) == nil, "another tenant does not reach the agent")
        #expect(try await all(f.store, b).map(\.name) == ["other"])
        #expect(try await all(try await f.second(), a) == [first, second])
    }

    static func paging(_ f: AgentStoreFixture) async throws {
        let t = tenant()
        var made: [AgentRecord] = []
        // Two share a creation time: the id orders them.
        for (i, at) in [1000.0, 2000, 2000, 3000, 4000].enumerated() {
            made.append(try await f.store.createAgent(AgentRecord(tenantId: t, name: "a\(i)", createdAt: Date(timeIntervalSinceReferenceDate: at))))
        }
        let expected = made.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        var seen: [AgentRecord] = [], cursor: String?, pages = 0
        repeat {
            let page = try await f.store.agents(tenantId: t, cursor: cursor, limit: 2)
            #expect(page.items.count <= 2)
            seen += page.items
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen == expected)
        #expect(try await f.store.agents(tenantId: t, cursor: nil, limit: 5).nextCursor == nil, "a page holding the rest has no next")
        await #expect(throws: SandboxError.self) { _ = try await f.store.agents(tenantId: t, cursor: "not-a-cursor", limit: 2) }
    }

    static func duplicateName(_ f: AgentStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        let held = try await f.store.createAgent(AgentRecord(tenantId: a, name: "sorter"))
        do {
            _ = try await f.store.createAgent(AgentRecord(tenantId: a, name: "sorter"))
            Issue.record("a duplicate name was accepted")
        } catch let error as SandboxError {
            #expect(error.code == .invalidState)
            #expect(error.message.contains("agent name 'sorter' is taken in this tenant (agent \(held.id))"))
        }
        #expect(try await all(f.store, a).count == 1)
        _ = try await f.store.createAgent(AgentRecord(tenantId: b, name: "sorter"))
    }

    static func concurrentCreates(_ f: AgentStoreFixture) async throws {
        let t = tenant()
        let other = try await f.second()
        let stores: [any AgentStore] = [f.store, other, f.store, other, f.store, other]
        let results = await withTaskGroup(of: Result<AgentRecord, SandboxError>.self) { group in
            for store in stores {
                group.addTask {
                    do { return .success(try await store.createAgent(AgentRecord(tenantId: t, name: "racer"))) } catch let e as SandboxError {
                        return .failure(e)
                    } catch { return .failure(SandboxError(.system, "\(error)")) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let won = results.compactMap { try? $0.get() }
        #expect(won.count == 1)
        for case .failure(let e) in results { #expect(e.code == .invalidState && e.message.contains("is taken"), "\(e)") }
        #expect(try await all(f.store, t) == won)
    }

    static func versions(_ f: AgentStoreFixture) async throws {
        let t = tenant()
        let agent = try await f.store.createAgent(AgentRecord(tenantId: t, name: "sorter"))
        let v1 = sampleVersion(agent: agent, digest: "sha256:" + String(repeating: "a", count: 64), createdAt: Date(timeIntervalSinceReferenceDate: 1000))
        let put = try await f.store.putAgentVersion(v1)
        #expect(put.created && put.version == v1)
        var again = v1
        again.createdAt = Date(timeIntervalSinceReferenceDate: 5000)
        again.status = .blocked
        let second = try await f.second().putAgentVersion(again)
        #expect(!second.created && second.version == v1, "the stored version is returned unchanged")
        let v2 = sampleVersion(agent: agent, digest: "sha256:" + String(repeating: "b", count: 64), status: .blocked,
                               createdAt: Date(timeIntervalSinceReferenceDate: 2000))
        #expect(try await f.store.putAgentVersion(v2).created)
        #expect(try await f.store.agentVersions(tenantId: t, agentId: agent.id) == [v1, v2])
        #expect(try await f.second().agentVersionInfos(tenantId: t, agentId: agent.id) == [AgentVersionInfo(v1), AgentVersionInfo(v2)])
        #expect(try await f.store.agentVersionCounts(tenantId: t) == [agent.id: 2])
        #expect(try await f.store.agentVersionCounts(tenantId: tenant()).isEmpty)
        #expect(try await f.store.agentVersions(tenantId: tenant(), agentId: agent.id).isEmpty)
    }

    static func concurrentPuts(_ f: AgentStoreFixture) async throws {
        let agent = try await f.store.createAgent(AgentRecord(tenantId: tenant(), name: "sorter"))
        let other = try await f.second()
        let version = sampleVersion(agent: agent, digest: "sha256:" + String(repeating: "e", count: 64))
        let stores: [any AgentStore] = [f.store, other, f.store, other, f.store, other]
        let created = try await withThrowingTaskGroup(of: Bool.self) { group in
            for store in stores { group.addTask { try await store.putAgentVersion(version).created } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(created.filter { $0 }.count == 1 && created.count == stores.count)
        #expect(try await f.store.agentVersions(tenantId: agent.tenantId, agentId: agent.id) == [version])
    }

    static func versionByDigest(_ f: AgentStoreFixture) async throws {
        let (t, u) = (tenant(), tenant())
        let agent = try await f.store.createAgent(AgentRecord(tenantId: t, name: "sorter"))
        let v = sampleVersion(agent: agent, digest: "sha256:" + String(repeating: "c", count: 64), status: .blocked)
        _ = try await f.store.putAgentVersion(v)
        let got = try #require(try await f.second().agentVersion(tenantId: t, digest: v.digest))
        #expect(got == v)
        #expect(got.files["lib/data.bin"] == [0, 255, 10, 13] && got.findings.first?.code == "path_traversal" && got.profile == "bounty")
        #expect(try await f.store.agentVersion(tenantId: u, digest: v.digest) == nil, "another tenant does not reach the version")
        #expect(try await f.store.agentVersion(tenantId: t, digest: "sha256:" + String(repeating: "d", count: 64)) == nil)
        #expect(try await f.store.agentVersion(tenantId: t, agentId: agent.id, digest: v.digest) == v)
        #expect(try await f.store.agentVersion(tenantId: u, agentId: agent.id, digest: v.digest) == nil)
        #expect(try await f.store.agentVersion(tenantId: t, agentId: "agt-000000000000", digest: v.digest) == nil)
    }
}
