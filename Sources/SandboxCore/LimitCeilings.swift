import Foundation

/// The operator's ceilings on what a tenant's profile may ask for (issue 17, item 7): every
/// numeric limit has one, derived from the host's size unless the operator sets it
/// (`serve --ceiling NAME=VALUE`). A tenant's inline profile over a ceiling is refused with
/// `limit_exceeded` naming the field and the ceiling; the operator's own named profiles are not
/// held to them. `tenantMemoryBytes` also caps every tenant's memory quota.
public struct LimitCeilings: Sendable, Equatable {
    public var timeout: Duration
    public var memoryBytes: Int64
    public var pids: Int
    public var cpus: Double
    /// Captured output per stream and exec: what one response may hold.
    public var outputBytes: Int64
    public var workspaceBytes: Int64
    public var workspaceFiles: Int
    public var tmpBytes: Int64
    public var codeBytes: Int64
    public var inputBytes: Int64
    public var openFiles: Int
    public var fileSizeBytes: Int64
    /// What a writable root and its workspace may hold together.
    public var diskBytes: Int64
    /// The most memory one tenant's live sandboxes may hold together (caps its quota).
    public var tenantMemoryBytes: Int64

    /// Ceilings for a host with `memory` bytes of RAM and `cores` CPUs: one sandbox at most half
    /// the RAM (its workspace and /tmp are tmpfs, in that memory) and every core; a tenant at most
    /// the RAM; 64 MiB of output per stream; 24 h per exec.
    public static func derived(memory: Int64, cores: Int) -> LimitCeilings {
        let ram = max(memory, 256 << 20)
        return LimitCeilings(
            timeout: .seconds(86_400), memoryBytes: ram / 2, pids: 16_384, cpus: Double(max(1, cores)), outputBytes: 64 << 20,
            workspaceBytes: ram / 2, workspaceFiles: 1_000_000, tmpBytes: ram / 4, codeBytes: 16 << 20, inputBytes: 64 << 20,
            openFiles: 65_536, fileSizeBytes: ram / 2, tenantMemoryBytes: ram, diskBytes: ram / 2)
    }

    /// Ceilings of this host (RAM from /proc/meminfo, cores online).
    public static var host: LimitCeilings {
        derived(memory: hostMemoryBytes ?? (4 << 30), cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// MemTotal of /proc/meminfo, in bytes.
    public static var hostMemoryBytes: Int64? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let kib = Int64(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kib.multipliedReportingOverflow(by: 1024).overflow ? nil : kib * 1024
    }

    public init(timeout: Duration, memoryBytes: Int64, pids: Int, cpus: Double, outputBytes: Int64, workspaceBytes: Int64,
                workspaceFiles: Int, tmpBytes: Int64, codeBytes: Int64, inputBytes: Int64, openFiles: Int, fileSizeBytes: Int64,
                tenantMemoryBytes: Int64, diskBytes: Int64? = nil) {
        self.diskBytes = diskBytes ?? workspaceBytes
        self.timeout = timeout
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpus = cpus
        self.outputBytes = outputBytes
        self.workspaceBytes = workspaceBytes
        self.workspaceFiles = workspaceFiles
        self.tmpBytes = tmpBytes
        self.codeBytes = codeBytes
        self.inputBytes = inputBytes
        self.openFiles = openFiles
        self.fileSizeBytes = fileSizeBytes
        self.tenantMemoryBytes = tenantMemoryBytes
    }

    /// The names `--ceiling NAME=VALUE` takes (the profile's `resources` names, plus `tenant_memory`).
    public static let names = ["timeout", "memory", "pids", "cpus", "output", "workspace", "workspace_files", "tmp", "code", "input",
                               "open_files", "file_size", "disk", "tenant_memory"]

    /// Sets one ceiling from `--ceiling NAME=VALUE` text (sizes as in profiles, e.g. 8G).
    public mutating func set(_ name: String, _ text: String) throws(SandboxError) {
        let field = "--ceiling \(name)"
        func whole() throws(SandboxError) -> Int {
            guard let v = Int(text), v > 0 else { throw SandboxError(.invalidRequest, "\(field)=\(text): a whole number above 0") }
            return v
        }
        switch name {
        case "timeout": timeout = try DurationText.parse(text, field: field)
        case "memory": memoryBytes = try ByteSize.parse(text, field: field)
        case "pids": pids = try whole()
        case "cpus":
            guard let v = Double(text), v.isFinite, v > 0 else { throw SandboxError(.invalidRequest, "\(field)=\(text): a number of cores above 0") }
            cpus = v
        case "output": outputBytes = try ByteSize.parse(text, field: field)
        case "workspace": workspaceBytes = try ByteSize.parse(text, field: field)
        case "workspace_files": workspaceFiles = try whole()
        case "tmp": tmpBytes = try ByteSize.parse(text, field: field)
        case "code": codeBytes = try ByteSize.parse(text, field: field)
        case "input": inputBytes = try ByteSize.parse(text, field: field)
        case "open_files": openFiles = try whole()
        case "file_size": fileSizeBytes = try ByteSize.parse(text, field: field)
        case "disk": diskBytes = try ByteSize.parse(text, field: field)
        case "tenant_memory": tenantMemoryBytes = try ByteSize.parse(text, field: field)
        default:
            throw SandboxError(.invalidRequest, "--ceiling \(name): unknown limit; one of \(Self.names.joined(separator: ", "))")
        }
    }

    /// Refuses limits over a ceiling: `limit_exceeded` naming the field (`resources.output`), the
    /// ceiling and the value asked for.
    public func check(_ l: Limits) throws(SandboxError) {
        func over(_ name: String, _ value: Int64, _ ceiling: Int64, bytes: Bool, unit: String = "") -> SandboxError {
            let show = { (v: Int64) in bytes ? "\(ByteSize.format(v)) (\(v) bytes)" : "\(v)\(unit)" }
            return SandboxError(
                .limitExceeded,
                "resources.\(name) asks for \(show(value)), over this server's ceiling of \(show(ceiling)); ask for at most that (the operator sets ceilings with serve --ceiling \(name)=…)",
                limit: .init(name: "resources.\(name)", limit: ceiling, actual: value), field: "profile.resources.\(name)")
        }
        let timeoutMs = DurationText.milliseconds(l.timeout), ceilingMs = DurationText.milliseconds(timeout)
        if timeoutMs > ceilingMs { throw over("timeout", timeoutMs, ceilingMs, bytes: false, unit: " ms") }
        if l.memoryBytes > memoryBytes { throw over("memory", l.memoryBytes, memoryBytes, bytes: true) }
        if l.pids > pids { throw over("pids", Int64(l.pids), Int64(pids), bytes: false) }
        if l.cpus > cpus {
            throw SandboxError(.limitExceeded, "resources.cpus asks for \(l.cpus) cores, over this server's ceiling of \(cpus); ask for at most that",
                               limit: .init(name: "resources.cpus", limit: Int64(cpus.rounded(.down)), actual: Int64(min(l.cpus, 1e15).rounded(.up))),
                               field: "profile.resources.cpus")
        }
        if l.outputBytes > outputBytes { throw over("output", l.outputBytes, outputBytes, bytes: true) }
        if l.workspaceBytes > workspaceBytes { throw over("workspace", l.workspaceBytes, workspaceBytes, bytes: true) }
        if l.workspaceFiles > workspaceFiles { throw over("workspace_files", Int64(l.workspaceFiles), Int64(workspaceFiles), bytes: false) }
        if l.tmpBytes > tmpBytes { throw over("tmp", l.tmpBytes, tmpBytes, bytes: true) }
        if l.codeBytes > codeBytes { throw over("code", l.codeBytes, codeBytes, bytes: true) }
        if l.inputBytes > inputBytes { throw over("input", l.inputBytes, inputBytes, bytes: true) }
        if l.openFiles > openFiles { throw over("open_files", Int64(l.openFiles), Int64(openFiles), bytes: false) }
        if l.fileSizeBytes > fileSizeBytes { throw over("file_size", l.fileSizeBytes, fileSizeBytes, bytes: true) }
        if l.diskBytes > diskBytes { throw over("disk", l.diskBytes, diskBytes, bytes: true) }
    }
}
