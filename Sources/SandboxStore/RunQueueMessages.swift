import Foundation
import SandboxCore

// What the run queue's calls take and give besides the records: queries, log chunks, attempt
// ends, lease renewals, change notices, stats.

/// Filter and page of a run listing (newest first).
public struct RunQuery: Sendable, Equatable {
    public var tenantId: String
    public var states: [RunState]?
    /// Only runs created at or after this.
    public var since: Date?
    /// Every pair must match.
    public var labels: [String: String]
    /// Opaque cursor from the previous page (nil: first page).
    public var cursor: String?
    public var limit: Int
    public init(tenantId: String, states: [RunState]? = nil, since: Date? = nil, labels: [String: String] = [:],
                cursor: String? = nil, limit: Int = 100) {
        self.tenantId = tenantId
        self.states = states
        self.since = since
        self.labels = labels
        self.cursor = cursor
        self.limit = limit
    }
}

/// A piece of a run's output, in the order it was produced (`seq` counts from 1 per attempt).
public struct RunLogChunk: Sendable, Equatable {
    public var seq: Int
    public var stream: StdStream
    public var data: [UInt8]
    public init(seq: Int, stream: StdStream, data: [UInt8]) {
        self.seq = seq
        self.stream = stream
        self.data = data
    }
}

/// How an attempt ended, as the worker (or the lease reaper) reports it to the store.
public struct AttemptEnd: Sendable, Equatable {
    public var outcome: AttemptOutcome
    public var reason: String?
    public var result: ExecResult?
    public var sandboxId: String?
    /// What the attempt ran on (nil: it ended without running, or the reaper ended it).
    public var environment: AttemptEnvironment?
    public init(outcome: AttemptOutcome, reason: String? = nil, result: ExecResult? = nil, sandboxId: String? = nil,
                environment: AttemptEnvironment? = nil) {
        self.outcome = outcome
        self.reason = reason
        self.result = result
        self.sandboxId = sandboxId
        self.environment = environment
    }
}

/// What a heartbeat learned about the runs a worker holds.
public struct LeaseRenewal: Sendable, Equatable {
    /// Runs whose lease was extended.
    public var held: Set<String>
    /// Held runs a cancel was asked for: kill them.
    public var cancelRequested: Set<String>
    public init(held: Set<String> = [], cancelRequested: Set<String> = []) {
        self.held = held
        self.cancelRequested = cancelRequested
    }
}

/// Something that changed about a run, for workers (wake-ups, cancels) and watchers (the monitor).
/// Within one process for SQLite; across the fleet (LISTEN/NOTIFY) for PostgreSQL.
public struct RunChange: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A run became claimable (submitted, retried, requeued after a failed attempt).
        case ready
        /// A run changed state (claimed, finished, cancelled).
        case state
        /// A cancel was asked for a running run.
        case cancel
    }
    public var kind: Kind
    public var runId: String
    public var tenantId: String
    public var state: RunState
    public init(kind: Kind, runId: String, tenantId: String, state: RunState) {
        self.kind = kind
        self.runId = runId
        self.tenantId = tenantId
        self.state = state
    }

    /// `kind:tenant:run:state`, the NOTIFY payload form.
    public var text: String { "\(kind.rawValue):\(tenantId):\(runId):\(state.rawValue)" }

    public init?(text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, let kind = Kind(rawValue: parts[0]), let state = RunState(rawValue: parts[3]) else { return nil }
        self.init(kind: kind, runId: parts[2], tenantId: parts[1], state: state)
    }
}

/// Counts of a tenant's runs that ended, per minute, for the monitor's throughput and failures.
public struct RunStats: Sendable, Equatable, Codable {
    public struct Minute: Sendable, Equatable, Codable {
        /// Start of the minute.
        public var at: Date
        public var succeeded: Int
        /// failed, timed_out, dead.
        public var failed: Int
        public var cancelled: Int
        public init(at: Date, succeeded: Int = 0, failed: Int = 0, cancelled: Int = 0) {
            self.at = at
            self.succeeded = succeeded
            self.failed = failed
            self.cancelled = cancelled
        }
    }
    public var minutes: [Minute]
    public var queued: Int
    public var running: Int
    public init(minutes: [Minute] = [], queued: Int = 0, running: Int = 0) {
        self.minutes = minutes
        self.queued = queued
        self.running = running
    }
}
