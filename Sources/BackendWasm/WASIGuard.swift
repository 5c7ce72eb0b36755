import Logging
@_spi(WASIPlatform) import WASI
import WasmKit

/// A WASI host function as the instance's imports call it.
typealias WASIHostImplementation = @Sendable (Memory, [Value]) throws -> [Value]

/// The WASI host functions of one run with the sandbox's rules wrapped around WasmKit's bridge:
///
/// - every write, `pwrite`, seek-then-write, truncate (`fd_filestat_set_size`) and `fd_allocate`
///   on a regular file is checked against ``WorkspaceQuota`` first (`EFBIG` past the file size
///   limit, `ENOSPC` past the workspace size), and `path_open` with `O_CREAT`,
///   `path_create_directory` and `path_symlink` against the file-count limit (`ENOSPC`);
///   unlink, rmdir, rename-over and truncation give the space back;
/// - `path_open` opens only regular files and directories: a FIFO, socket or device in the
///   workspace is refused (`ENOTSUP`) before the host would block opening or reading it;
/// - `poll_oneoff` never sleeps past the run's deadline (see `WASIGuard+Poll.swift`);
/// - every pointer argument is bounds-checked first (`EFAULT`; see `WASIGuard+Pointers.swift`).
///
/// Everything runs on the run's thread; the scratch memory of ``probe`` is not shared.
// @unchecked: holds WASIProbe (WasmKit host functions, not Sendable); used only on the run's thread.
final class WASIGuard: @unchecked Sendable {
    let quota: WorkspaceQuota?
    let probe: WASIProbe
    let control: RunControl
    let deadline: ContinuousClock.Instant
    let logger: Logger

    init(bridge: WASIBridgeToHost, quota: WorkspaceQuota?, control: RunControl, deadline: ContinuousClock.Instant, logger: Logger) {
        self.quota = quota
        self.probe = WASIProbe(bridge: bridge)
        self.control = control
        self.deadline = deadline
        self.logger = logger
    }

    /// The bridge's functions with the wrappers installed.
    func functions(from bridge: WASIBridgeToHost) -> [String: WASIHostImplementation] {
        var table: [String: WASIHostImplementation] = [:]
        let functions: [String: WASIHostFunction<Memory>] = bridge.hostFunctions(capabilities: WASICapability.all)
        for (name, f) in functions { table[name] = f.implementation }
        let wrappers: [String: (@escaping WASIHostImplementation) -> WASIHostImplementation] = [
            "fd_write": wrapWrite, "fd_pwrite": wrapPwrite, "fd_filestat_set_size": wrapSetSize, "fd_allocate": wrapAllocate,
            "path_open": wrapOpen, "path_create_directory": wrapCreate,
            "path_symlink": wrapCreate, "path_unlink_file": wrapUnlink,
            "path_remove_directory": wrapRemoveDirectory, "path_rename": wrapRename,
        ]
        for (name, wrap) in wrappers {
            if let original = table[name] { table[name] = wrap(original) }
        }
        installPoll(into: &table)
        installPointerChecks(into: &table)  // outermost: nothing below sees a bad pointer
        return table
    }

    // MARK: helpers

    static func u32(_ v: Value) -> UInt32 { if case .i32(let x) = v { return x }; return 0 }
    static func u64(_ v: Value) -> UInt64 { if case .i64(let x) = v { return x }; return 0 }
    static func errno(_ e: WASIAbi.Errno) -> [Value] { [.i32(UInt32(e.rawValue))] }
    static func succeeded(_ r: [Value]) -> Bool { r.first == .i32(0) }
    static func clamp(_ v: UInt64) -> Int64 { Int64(clamping: v) }
    /// `a + b`, saturating at `Int64.max` (a wrapped sum would look like a shrink).
    static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }

    /// For a regular file: runs `original` only if the file may grow to `end(size, append)`,
    /// then accounts the size change. Anything else runs `original` unchanged.
    private func growing(
        fd: UInt32, _ memory: Memory, _ args: [Value], _ original: WASIHostImplementation,
        end: (_ size: Int64, _ append: Bool) -> Int64?
    ) throws -> [Value] {
        // Not a regular file, or not writable: the bridge answers (EBADF, ESPIPE …) as it would.
        guard let quota, let st = probe.stat(fd: fd), st.filetype == .REGULAR_FILE, let fdStat = probe.fdStat(fd: fd),
              fdStat.fsRightsBase.contains(.FD_WRITE)
        else { return try original(memory, args) }
        let size = Self.clamp(st.size)
        guard let newEnd = end(size, fdStat.fsFlags.contains(.APPEND)) else { return try original(memory, args) }
        if let breach = quota.checkGrowth(currentSize: size, newSize: newEnd) {
            logger.debug("wasi write refused", metadata: ["fd": "\(fd)", "size": "\(size)", "end": "\(newEnd)"])
            return Self.errno(WorkspaceQuota.errno(for: breach))
        }
        let result = try original(memory, args)
        if let after = probe.stat(fd: fd) { quota.apply(bytes: Self.clamp(after.size) - size) }
        return result
    }

    // MARK: growth

    private func wrapWrite(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            let fd = Self.u32(args[0])
            guard let n = GuestRead.iovecLength(memory, iovs: Self.u32(args[1]), count: Self.u32(args[2])) else { return Self.errno(.EFAULT) }
            return try growing(fd: fd, memory, args, original) { size, append in
                if append { return Self.add(size, Self.clamp(n)) }
                return probe.tell(fd: fd).map { Self.add(Self.clamp($0), Self.clamp(n)) }
            }
        }
    }

    private func wrapPwrite(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            guard let n = GuestRead.iovecLength(memory, iovs: Self.u32(args[1]), count: Self.u32(args[2])) else { return Self.errno(.EFAULT) }
            let offset = Self.clamp(Self.u64(args[3]))
            // Linux appends a pwrite on an O_APPEND file whatever its offset.
            return try growing(fd: Self.u32(args[0]), memory, args, original) { size, append in
                Self.add(append ? size : offset, Self.clamp(n))
            }
        }
    }

    private func wrapSetSize(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            try growing(fd: Self.u32(args[0]), memory, args, original) { _, _ in Self.clamp(Self.u64(args[1])) }
        }
    }

    private func wrapAllocate(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            try growing(fd: Self.u32(args[0]), memory, args, original) { _, _ in
                let (end, overflow) = Self.u64(args[1]).addingReportingOverflow(Self.u64(args[2]))
                return overflow ? .max : Self.clamp(end)
            }
        }
    }
}
