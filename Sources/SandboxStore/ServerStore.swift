/// What the server runs on: the sandbox records and the run queue, from one engine (SQLite or
/// PostgreSQL).
public typealias ServerStore = SandboxStore & RunStore
