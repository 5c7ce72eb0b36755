import Foundation
import Logging
import SandboxCore
import Synchronization

/// Whether this process's store answers, and the guard every store call goes through.
///
/// A call that fails because the store cannot be reached (PostgreSQL down, SQLite's disk full or
/// its directory read-only) marks the store *down* and answers `store_unavailable` (503) or
/// `insufficient_storage` (507). A call still waiting after ``slowAfter`` (0.6 s) makes the health
/// ask the engine at once (``suspect(_:)``; PostgreSQL: a connection of its own and `SELECT 1`
/// within ``probeDeadline``); only if that fails is the store down — a busy store is waited for, a
/// gone one is not. Going down ends every call in flight of a fail-fast engine (PostgreSQL, whose
/// pool would hold them) with `store_unavailable`, and refuses new ones at once; SQLite, on the
/// local disk, tries each call. ``deadline`` (30 s) only guards against a call that never ends.
/// While the store is down a prober asks every 250 ms; the first answer marks it *up* again and
/// wakes everyone in ``waitUntilUp()`` (the run workers, the recorder's spool).
public final class StoreHealth: Sendable {
    /// The engine and where it is, without a password: `PostgreSQL at postgres://u@host/db`.
    public let name: String
    /// Whether calls are refused at once while the store is down.
    public let failsFast: Bool
    /// How long one store call may take at most (a hang guard: a slow store that still answers
    /// its probe is waited for).
    public let deadline: Duration
    /// After how long a call in flight makes the health ask the engine (``suspect(_:)``): if that
    /// question fails, the store is down and (fail-fast) every call in flight ends at once.
    public let slowAfter: Duration
    /// How long the engine's probe may take before it counts as no answer.
    public let probeDeadline: Duration
    /// How often a down store is asked again.
    public let probeInterval: Duration
    let logger: Logger

    /// Since when and why the store is down.
    public struct Outage: Sendable, Equatable {
        public let since: Date
        public let reason: String
    }

    private struct State {
        var outage: Outage?
        var probe: (@Sendable () async throws -> Void)?
        var prober: Task<Void, Never>?
        /// A one-off question after a call ran out of time (nil when none is running).
        var checker: Task<Void, Never>?
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Calls in flight, each with its abort (a fail-fast store declared down ends them at once).
        var calls: [UInt64: @Sendable (any Error) -> Void] = [:]
        var nextCall: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var closed = false
    }
    private let state = Mutex(State())

    /// Told how long each store call took, answered or not (the server's store latency
    /// histogram, set when it starts); empty: nobody listens.
    public static let callObserver = StoreCallObserver()

    public init(name: String, failsFast: Bool, deadline: Duration = .seconds(30), slowAfter: Duration = .milliseconds(600),
                probeDeadline: Duration = .milliseconds(1200), probeInterval: Duration = .milliseconds(250), logger: Logger) {
        self.name = name
        self.failsFast = failsFast
        self.deadline = deadline
        self.slowAfter = slowAfter
        self.probeDeadline = probeDeadline
        self.probeInterval = probeInterval
        self.logger = logger
    }

    /// Sets the engine's cheapest call that proves it can write (the prober's question).
    public func attach(probe: @escaping @Sendable () async throws -> Void) {
        state.withLock { $0.probe = probe }
    }

    /// Stops the prober and releases every waiter; later outages are not probed.
    public func close() {
        let (prober, checker, waiters) = state.withLock { s in
            s.closed = true
            s.probe = nil
            defer { s.prober = nil; s.checker = nil; s.waiters = [:] }
            return (s.prober, s.checker, Array(s.waiters.values))
        }
        prober?.cancel()
        checker?.cancel()
        for w in waiters { w.resume() }
    }

    /// The current outage, nil while the store answers.
    public var outage: Outage? { state.withLock { $0.outage } }
    public var isUp: Bool { outage == nil }

    /// Returns once the store answers (at once when it does), or when the caller is cancelled.
    public func waitUntilUp() async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.outage == nil || s.closed || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Waits until the store answers, at most `limit`; true when it does.
    public func waitUntilUp(atMost limit: Duration) async -> Bool {
        if isUp { return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilUp() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        return isUp
    }

    /// Asks the store now (the readiness probe) and returns the outage, nil when it answered.
    public func check() async -> Outage? {
        switch await ask() {
        case .answered:
            markUp()
            return nil
        case .failed(let error):
            markDown(Self.reason(error))
            return outage
        case .closed:
            return outage
        }
    }

    /// What one question to the engine got.
    private enum Answer {
        case answered
        case failed(any Error)
        /// The health is closed: nobody to ask.
        case closed
    }

    /// Asks the engine once (its probe), within ``probeDeadline``.
    private func ask() async -> Answer {
        guard let probe = state.withLock({ $0.probe }) else { return .closed }
        do {
            try await Deadline.run(probeDeadline) { try await probe() }
            return .answered
        } catch {
            return .failed(error)
        }
    }

    /// Runs one store call under the guard: refused at once while a fail-fast store is down, ended
    /// at once when it goes down meanwhile; an outage error marks it down and throws a
    /// `store_unavailable` (or the engine's `insufficient_storage`) naming `what`.
    public func run<T: Sendable>(_ what: String, _ call: @escaping @Sendable () async throws(SandboxError) -> T) async throws(SandboxError) -> T {
        if failsFast, let outage {
            throw unavailable(what, outage)
        }
        let started = ContinuousClock.now
        defer { Self.callObserver.observe(ContinuousClock.now - started) }
        let guarded = Deadline.Call<T>()
        let id = state.withLock { s -> UInt64 in
            s.nextCall += 1
            s.calls[s.nextCall] = { error in guarded.abort(error) }
            return s.nextCall
        }
        defer { _ = state.withLock { $0.calls.removeValue(forKey: id) } }
        do {
            return try await guarded.run(limit: deadline, slowAfter: slowAfter, onSlow: { [weak self] in
                self?.suspect("a call took longer than \(self?.slowAfter ?? .zero)")
            }) { () async throws -> T in try await call() }
        } catch let e as SandboxError {
            if Self.isOutage(e) {
                markDown(e.message)
                if e.code == .insufficientStorage { throw e }
                throw SandboxError(.storeUnavailable, e.message, retryAfterSeconds: 2)
            }
            throw e
        } catch let down as Down {
            throw unavailable(what, down.outage)
        } catch is Deadline.Passed {
            let reason = "no answer within \(deadline)"
            suspect(reason)
            throw unavailable(what, Outage(since: Date(), reason: reason))
        } catch is CancellationError {
            throw SandboxError(.system, "\(what): cancelled before the store answered; retry")
        } catch {
            throw SandboxError(.system, "\(what): \(error)")
        }
    }

    /// What a call waiting on a fail-fast store gets when the store is declared down.
    struct Down: Error {
        let outage: Outage
    }

    /// Whether `error` says the store cannot be reached or written (rather than refusing this call).
    public static func isOutage(_ error: any Error) -> Bool {
        guard let e = error as? SandboxError else { return error is Deadline.Passed }
        return e.code == .storeUnavailable || e.code == .insufficientStorage
    }

    func unavailable(_ what: String, _ outage: Outage) -> SandboxError {
        let since = outage.since.formatted(.iso8601)
        return SandboxError(.storeUnavailable,
                            "\(what): the store (\(name)) does not answer since \(since) (\(outage.reason)); nothing was done — retry after a few seconds",
                            retryAfterSeconds: 2)
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? SandboxError { return e.message }
        if error is Deadline.Passed { return "no answer in time" }
        return "\(error)"
    }

    /// Records an outage (the first reason is kept) and starts the prober.
    public func markDown(_ reason: String) {
        let (started, aborts, outage) = state.withLock { s -> (Bool, [@Sendable (any Error) -> Void], Outage?) in
            guard !s.closed else { return (false, [], nil) }
            if s.outage == nil { s.outage = Outage(since: Date(), reason: reason) } else if s.prober != nil { return (false, [], nil) }
            s.prober = Task { [weak self] in await self?.probeUntilUp() }
            return (true, failsFast ? Array(s.calls.values) : [], s.outage)
        }
        // Calls waiting on a store that is gone end now (PostgreSQL's pool would hold them).
        if let outage { for abort in aborts { abort(Down(outage: outage)) } }
        if started { logger.warning("the store does not answer; calls get store_unavailable until it does", metadata: ["store": "\(name)", "reason": "\(reason)"]) }
    }

    /// A call ran out of time: asks the engine now (unless an outage or a question is already
    /// under way); the store is down only if that question and a second one a probe interval
    /// later fail too. A host loaded to its last core can be slow to open one connection; a
    /// server that is gone refuses both at once.
    func suspect(_ reason: String) {
        let start = state.withLock { s -> Bool in
            guard !s.closed, s.outage == nil, s.checker == nil, s.probe != nil else { return false }
            return true
        }
        guard start else { return }
        let checker = Task { [weak self] in
            guard let self else { return }
            var answer = await self.ask()
            if case .failed = answer, (try? await Task.sleep(for: self.probeInterval)) != nil { answer = await self.ask() }
            self.state.withLock { $0.checker = nil }
            if case .failed = answer { self.markDown(reason) }
        }
        state.withLock { s in
            if s.checker == nil && !s.closed { s.checker = checker } else { checker.cancel() }
        }
    }

    /// Ends the outage and wakes the waiters.
    func markUp() {
        let (ended, waiters) = state.withLock { s -> (Outage?, [CheckedContinuation<Void, Never>]) in
            defer { s.outage = nil; s.waiters = [:] }
            return (s.outage, Array(s.waiters.values))
        }
        for w in waiters { w.resume() }
        if let ended {
            logger.notice("the store answers again", metadata: [
                "store": "\(name)", "down_seconds": "\(String(format: "%.1f", Date().timeIntervalSince(ended.since)))"])
        }
    }

    private func probeUntilUp() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: probeInterval)
            let answer = await ask()
            if case .failed = answer { continue }
            if case .answered = answer {
                state.withLock { $0.prober = nil }
                markUp()
                return
            }
            break  // closed
        }
        state.withLock { $0.prober = nil }
    }
}

/// One slot for a function told the duration of every store call (``StoreHealth/callObserver``).
///
/// The function is kept inside a concrete struct: a closure stored directly as a generic `Mutex`'s
/// value is re-wrapped in two reabstraction thunks by every `withLock` (the `inout` is converted to
/// the closure's own abstraction and back), so each store call made the next one walk a longer
/// chain of thunks — a server slowed down with every call it made, and its stack depth grew without bound.
public final class StoreCallObserver: Sendable {
    private struct Slot: Sendable {
        var observe: (@Sendable (Duration) -> Void)?
    }
    private let slot = Mutex(Slot())

    public init() {}

    /// Installs `observe` (nil: nobody listens), replacing the one before.
    public func set(_ observe: (@Sendable (Duration) -> Void)?) {
        slot.withLock { $0.observe = observe }
    }

    /// Tells the installed function, if any, that a call took `duration`.
    public func observe(_ duration: Duration) {
        if let observe = slot.withLock({ $0.observe }) { observe(duration) }
    }
}
