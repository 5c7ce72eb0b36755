@_spi(WASIPlatform) import WASI
import WasmKit

/// A small host-owned memory the WASI host functions can be called with, so the host can ask the
/// bridge about a guest descriptor or path (size, type, offset) without touching guest memory.
/// Used only on the run's thread.
// @unchecked: mutable scratch bytes behind WasmKit's GuestMemory protocol; used only on the run's thread.
final class ScratchMemory: GuestMemory, @unchecked Sendable {
    /// Results go at 0 (64 bytes is the largest, a filestat); paths are copied to ``pathOffset``.
    static let pathOffset = 128
    static let maxPathBytes = 4096
    private var bytes = [UInt8](repeating: 0, count: ScratchMemory.pathOffset + ScratchMemory.maxPathBytes)

    func withUnsafeMutableBufferPointer<T>(
        offset: UInt, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> T
    ) rethrows -> T {
        precondition(Int(offset) + count <= bytes.count, "scratch access out of bounds")
        return try bytes.withUnsafeMutableBytes { all in
            try body(UnsafeMutableRawBufferPointer(rebasing: all[Int(offset)..<Int(offset) + count]))
        }
    }

    func store(_ path: [UInt8]) {
        bytes.replaceSubrange(Self.pathOffset..<Self.pathOffset + path.count, with: path)
    }
}

/// Questions the WASI guard asks the bridge about the guest's descriptors and paths, answered
/// through the bridge's own host functions instantiated over a ``ScratchMemory``.
// @unchecked: WASIHostFunction (WasmKit) is not Sendable; a probe is used only on the run's thread.
struct WASIProbe: @unchecked Sendable {
    let functions: [String: WASIHostFunction<ScratchMemory>]
    let scratch = ScratchMemory()

    init(bridge: WASIBridgeToHost) {
        functions = bridge.hostFunctions(capabilities: WASICapability<ScratchMemory>.all)
    }

    private func call(_ name: String, _ args: [Value]) -> WASIAbi.Errno {
        guard let f = functions[name], let result = try? f.implementation(scratch, args),
              case .i32(let raw) = result.first
        else { return .EIO }
        return WASIAbi.Errno(rawValue: UInt16(truncatingIfNeeded: raw)) ?? .EIO
    }

    /// `fd_filestat_get`.
    func stat(fd: UInt32) -> WASIAbi.Filestat? {
        guard call("fd_filestat_get", [.i32(fd), .i32(0)]) == .SUCCESS else { return nil }
        return WASIAbi.Filestat.readFromGuest(UnsafeGuestRawPointer(offset: 0), in: scratch)
    }

    /// `fd_fdstat_get`.
    func fdStat(fd: UInt32) -> WASIAbi.FdStat? {
        guard call("fd_fdstat_get", [.i32(fd), .i32(0)]) == .SUCCESS else { return nil }
        return WASIAbi.FdStat.readFromGuest(UnsafeGuestRawPointer(offset: 0), in: scratch)
    }

    /// `fd_tell`.
    func tell(fd: UInt32) -> UInt64? {
        guard call("fd_tell", [.i32(fd), .i32(0)]) == .SUCCESS else { return nil }
        return UInt64.readFromGuest(UnsafeGuestRawPointer(offset: 0), in: scratch)
    }

    /// `path_filestat_get`: the attributes, or the errno (e.g. `ENOENT`).
    func stat(dirFd: UInt32, path: [UInt8], followSymlinks: Bool) -> Result<WASIAbi.Filestat, WASIAbi.Errno> {
        guard path.count <= ScratchMemory.maxPathBytes else { return .failure(.ENAMETOOLONG) }
        scratch.store(path)
        let errno = call("path_filestat_get", [
            .i32(dirFd), .i32(followSymlinks ? 1 : 0), .i32(UInt32(ScratchMemory.pathOffset)), .i32(UInt32(path.count)), .i32(0),
        ])
        guard errno == .SUCCESS else { return .failure(errno) }
        return .success(WASIAbi.Filestat.readFromGuest(UnsafeGuestRawPointer(offset: 0), in: scratch))
    }

    /// `args_sizes_get` / `environ_sizes_get`: (count, buffer bytes).
    func sizes(_ function: String) -> (UInt32, UInt32)? {
        guard call(function, [.i32(0), .i32(4)]) == .SUCCESS else { return nil }
        return (UInt32.readFromGuest(UnsafeGuestRawPointer(offset: 0), in: scratch),
                UInt32.readFromGuest(UnsafeGuestRawPointer(offset: 4), in: scratch))
    }

    /// `fd_close`.
    func close(fd: UInt32) { _ = call("fd_close", [.i32(fd)]) }
}

/// Bounds-checked reads of guest memory; nil when out of bounds (the host function then runs as
/// is and reports the fault itself).
enum GuestRead {
    static func bytes(_ memory: Memory, at offset: UInt32, count: UInt32) -> [UInt8]? {
        guard UInt64(offset) + UInt64(count) <= UInt64(memory.byteCount) else { return nil }
        return memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: Int(count)) { Array($0) }
    }

    static func u32(_ memory: Memory, at offset: UInt32) -> UInt32? {
        bytes(memory, at: offset, count: 4).map { b in b.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    }

    static func u64(_ memory: Memory, at offset: UInt32) -> UInt64? {
        bytes(memory, at: offset, count: 8).map { b in b.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    }

    /// The total length of `count` iovecs (`{ptr: u32, len: u32}`) at `iovs`; nil when the table
    /// or any buffer it names lies outside guest memory.
    static func iovecLength(_ memory: Memory, iovs: UInt32, count: UInt32) -> UInt64? {
        guard UInt64(count) * 8 <= UInt64(UInt32.max), let table = bytes(memory, at: iovs, count: count * 8) else { return nil }
        func word(_ at: Int) -> UInt32 { table[at..<at + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        var total: UInt64 = 0
        for i in 0..<Int(count) {
            let (base, len) = (word(i * 8), word(i * 8 + 4))
            guard UInt64(base) + UInt64(len) <= UInt64(memory.byteCount) else { return nil }
            total += UInt64(len)
        }
        return total
    }
}
