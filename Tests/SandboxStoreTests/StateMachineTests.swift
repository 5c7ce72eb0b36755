import Foundation
import RunStoreContract
import SandboxCore
@testable import SandboxStore
import Testing

/// Sandbox and run states change only along their state machines (issue 18, item 1): an
/// impossible change is refused and changes nothing.
@Suite("State machines")
struct StateMachineTests {
    static func sandbox(_ state: SandboxState) -> SandboxRecord {
        SandboxRecord(id: "sbx-1", tenantId: "tnt_a", state: state, profile: .default, updatedAt: Date(timeIntervalSince1970: 0), node: "n")
    }

    @Test("a sandbox goes creating → running → stopping → destroyed, running ⇄ paused, running/paused → hibernated → running, or to lost from any live state; nothing leaves a final state")
    func sandboxTransitions() throws {
        let allowed: Set<String> = ["creating>running", "creating>stopping", "creating>lost", "running>stopping", "running>lost",
                                    "running>paused", "running>hibernated", "paused>running", "paused>hibernated", "paused>stopping",
                                    "paused>lost", "hibernated>running", "hibernated>stopping", "hibernated>lost",
                                    "stopping>destroyed", "stopping>lost"]
        for from in SandboxState.allCases {
            for to in SandboxState.allCases {
                var record = Self.sandbox(from)
                let before = record
                do {
                    try record.move(to: to, reason: "why")
                    #expect(allowed.contains("\(from)>\(to)"), "\(from) → \(to) was allowed")
                    #expect(record.state == to && record.reason == "why" && record.updatedAt > before.updatedAt)
                } catch {
                    #expect(!allowed.contains("\(from)>\(to)"), "\(from) → \(to) was refused")
                    #expect(record == before, "a refused move changes nothing")
                    #expect(error.description.contains("\(from.rawValue) to \(to.rawValue)"))
                }
            }
        }
    }

    @Test("a run is claimed only when queued, finished only when running, retried only when final")
    func runTransitions() throws {
        var run = RunStoreContract.newRun()
        #expect(run.state == .queued)
        #expect(throws: ImpossibleTransition.self) { try RunRules.finish(&run, AttemptEnd(outcome: .succeeded), policy: RetryPolicy()) }
        #expect(throws: ImpossibleTransition.self) { try RunRules.retry(&run) }
        try RunRules.claim(&run, worker: "w", lease: .seconds(5))
        #expect(run.state == .running)
        #expect(throws: ImpossibleTransition.self) { try RunRules.claim(&run, worker: "w2", lease: .seconds(5)) }
        #expect(throws: ImpossibleTransition.self) { try RunRules.cancelQueued(&run) }
        try RunRules.finish(&run, AttemptEnd(outcome: .succeeded), policy: RetryPolicy())
        #expect(run.state == .succeeded)
        #expect(throws: ImpossibleTransition.self) { try RunRules.claim(&run, worker: "w", lease: .seconds(5)) }
        try RunRules.retry(&run)
        #expect(run.state == .queued)
        for from in RunState.allCases where from.isFinal {
            #expect(!from.canMove(to: .running) && from.canMove(to: .queued))
            #expect(RunState.allCases.filter { $0.isFinal }.allSatisfy { !from.canMove(to: $0) }, "\(from) → another final state")
        }
    }

    @Test("the store refuses an impossible run change and writes nothing")
    func storeRefusesImpossibleChanges() async throws {
        try await withStore { store, _ in
            let (run, _) = try await store.submitRun(RunStoreContract.newRun(), maxQueued: 10)
            // Retrying a queued run is not a transition the state machine has.
            await #expect { _ = try await store.retryRun(tenantId: run.tenantId, id: run.id, maxQueued: 10) } throws: {
                ($0 as? SandboxError).map { $0.code == .invalidState || $0.code == .system } ?? false
            }
            #expect(try await store.run(id: run.id)?.state == .queued)
        }
    }
}
