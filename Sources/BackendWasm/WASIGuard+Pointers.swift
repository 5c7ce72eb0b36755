@_spi(WASIPlatform) import WASI
import WasmKit

/// Bounds checks on every pointer a guest passes to a WASI function. WasmKit's bridge does not
/// check them: an out-of-bounds buffer ends in a failed precondition, which would take down the
/// whole host process (in-process mode). Here the call fails with `EFAULT` instead.
extension WASIGuard {
    /// A guest memory region a WASI function reads or writes, described by its arguments.
    enum Region: Sendable {
        /// `size` bytes at the pointer in argument `pointer`.
        case fixed(pointer: Int, size: UInt64)
        /// `count` (argument) × `size` bytes at the pointer in argument `pointer`.
        case counted(pointer: Int, count: Int, size: UInt64)
        /// An iovec table (`pointer`, `count` arguments) and every buffer it names.
        case iovecs(pointer: Int, count: Int)
        /// What `args_get`/`environ_get` write: (count × 4 at `pointer`, buffer bytes at `buffer`),
        /// sized by the bridge's own `*_sizes_get`.
        case vector(sizes: String, pointer: Int, buffer: Int)
    }

    /// The regions of each `wasi_snapshot_preview1` function that touches guest memory.
    static let regions: [String: [Region]] = [
        "args_get": [.vector(sizes: "args_sizes_get", pointer: 0, buffer: 1)],
        "args_sizes_get": [.fixed(pointer: 0, size: 4), .fixed(pointer: 1, size: 4)],
        "environ_get": [.vector(sizes: "environ_sizes_get", pointer: 0, buffer: 1)],
        "environ_sizes_get": [.fixed(pointer: 0, size: 4), .fixed(pointer: 1, size: 4)],
        "clock_res_get": [.fixed(pointer: 1, size: 8)],
        "clock_time_get": [.fixed(pointer: 2, size: 8)],
        "fd_fdstat_get": [.fixed(pointer: 1, size: 24)],
        "fd_filestat_get": [.fixed(pointer: 1, size: 64)],
        "fd_pread": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 4, size: 4)],
        "fd_prestat_get": [.fixed(pointer: 1, size: 8)],
        "fd_prestat_dir_name": [.counted(pointer: 1, count: 2, size: 1)],
        "fd_pwrite": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 4, size: 4)],
        "fd_read": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 3, size: 4)],
        "fd_readdir": [.counted(pointer: 1, count: 2, size: 1), .fixed(pointer: 4, size: 4)],
        "fd_seek": [.fixed(pointer: 3, size: 8)],
        "fd_tell": [.fixed(pointer: 1, size: 8)],
        "fd_write": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 3, size: 4)],
        "path_create_directory": [.counted(pointer: 1, count: 2, size: 1)],
        "path_filestat_get": [.counted(pointer: 2, count: 3, size: 1), .fixed(pointer: 4, size: 64)],
        "path_filestat_set_times": [.counted(pointer: 2, count: 3, size: 1)],
        "path_link": [.counted(pointer: 2, count: 3, size: 1), .counted(pointer: 5, count: 6, size: 1)],
        "path_open": [.counted(pointer: 2, count: 3, size: 1), .fixed(pointer: 8, size: 4)],
        "path_readlink": [.counted(pointer: 1, count: 2, size: 1), .counted(pointer: 3, count: 4, size: 1), .fixed(pointer: 5, size: 4)],
        "path_remove_directory": [.counted(pointer: 1, count: 2, size: 1)],
        "path_rename": [.counted(pointer: 1, count: 2, size: 1), .counted(pointer: 4, count: 5, size: 1)],
        "path_symlink": [.counted(pointer: 0, count: 1, size: 1), .counted(pointer: 3, count: 4, size: 1)],
        "path_unlink_file": [.counted(pointer: 1, count: 2, size: 1)],
        "poll_oneoff": [.counted(pointer: 0, count: 2, size: 48), .counted(pointer: 1, count: 2, size: 32), .fixed(pointer: 3, size: 4)],
        "random_get": [.counted(pointer: 0, count: 1, size: 1)],
        "sock_accept": [.fixed(pointer: 2, size: 4)],
        "sock_recv": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 4, size: 4), .fixed(pointer: 5, size: 2)],
        "sock_send": [.iovecs(pointer: 1, count: 2), .fixed(pointer: 4, size: 4)],
    ]

    /// Wraps every function that takes pointers so out-of-bounds ones get `EFAULT`.
    func installPointerChecks(into table: inout [String: WASIHostImplementation]) {
        for (name, regions) in Self.regions {
            guard let inner = table[name] else { continue }
            table[name] = { [self] memory, args in
                guard regions.allSatisfy({ inBounds($0, memory, args) }) else { return Self.errno(.EFAULT) }
                return try inner(memory, args)
            }
        }
    }

    private func inBounds(_ region: Region, _ memory: Memory, _ args: [Value]) -> Bool {
        let size = UInt64(memory.byteCount)
        func arg(_ i: Int) -> UInt64 { i < args.count ? UInt64(Self.u32(args[i])) : .max }
        func fits(_ pointer: UInt64, _ length: UInt64) -> Bool {
            let (end, overflow) = pointer.addingReportingOverflow(length)
            return !overflow && end <= size
        }
        switch region {
        case .fixed(let p, let n):
            return fits(arg(p), n)
        case .counted(let p, let c, let n):
            let (length, overflow) = arg(c).multipliedReportingOverflow(by: n)
            return !overflow && fits(arg(p), length)
        case .iovecs(let p, let c):
            return GuestRead.iovecLength(memory, iovs: Self.u32(args[p]), count: Self.u32(args[c])) != nil
        case .vector(let sizes, let p, let b):
            guard let (count, bytes) = probe.sizes(sizes) else { return false }
            return fits(arg(p), UInt64(count) * 4) && fits(arg(b), UInt64(bytes))
        }
    }
}
