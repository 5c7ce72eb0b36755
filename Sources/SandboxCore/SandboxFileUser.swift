/// Whom a sandbox's file operations act as, for the current task: the sandbox's user (the
/// default: every `/v1` route, runs, workspace transfer) or, inside ``asRoot(_:)``, the sandbox's
/// root (uid 0 of its user namespace, no capabilities beyond the agent's own) — E2B's envd lets a
/// caller pick `root` with `Authorization: Basic`, and only E2B's sandbox plane sets it. The agent
/// client reads it when it sends a file request; nothing a request body says can set it.
public enum SandboxFileUser {
    @TaskLocal public static var isRoot = false

    /// Runs `body` with the sandbox's file operations acting as its root when `root` is true.
    public static func acting<T: Sendable>(asRoot root: Bool, _ body: () async throws -> T) async rethrows -> T {
        try await $isRoot.withValue(root) { try await body() }
    }
}
