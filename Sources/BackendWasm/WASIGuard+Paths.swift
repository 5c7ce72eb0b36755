@_spi(WASIPlatform) import WASI
import WasmKit

/// Path operations: what may be opened, and how many entries the workspace holds.
extension WASIGuard {
    /// The file types `path_open` may return; anything else could block the run's thread.
    static func isOpenable(_ type: WASIAbi.FileType) -> Bool { type == .REGULAR_FILE || type == .DIRECTORY }

    /// The path argument at `index` (pointer) and `index + 1` (length), if in bounds.
    static func path(_ memory: Memory, _ args: [Value], at index: Int) -> [UInt8]? {
        GuestRead.bytes(memory, at: u32(args[index]), count: u32(args[index + 1]))
    }

    /// `path_open(dirfd, dirflags, path, path_len, oflags, rights, rights_inheriting, fdflags, *fd)`.
    func wrapOpen(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            guard let path = Self.path(memory, args, at: 2) else { return Self.errno(.EFAULT) }
            let dirFd = Self.u32(args[0])
            let follow = Self.u32(args[1]) & 1 != 0
            let oflags = WASIAbi.Oflags(rawValue: Self.u32(args[4]))
            let before = probe.stat(dirFd: dirFd, path: path, followSymlinks: follow)
            var creating = false
            switch before {
            case .success(let st) where !Self.isOpenable(st.filetype) && st.filetype != .SYMBOLIC_LINK:
                // A FIFO would block in open(2) or read(2); sockets and devices are no workspace files.
                logger.debug("wasi path_open refused a non-regular file", metadata: ["type": "\(st.filetype)"])
                return Self.errno(.ENOTSUP)
            case .failure(.ENOENT) where oflags.contains(.CREAT):
                if let quota, let breach = quota.checkNewEntry() { return Self.errno(WorkspaceQuota.errno(for: breach)) }
                creating = true
            default:
                break
            }
            let result = try original(memory, args)
            guard Self.succeeded(result), let fd = GuestRead.u32(memory, at: Self.u32(args[8])) else { return result }
            guard let after = probe.stat(fd: fd), Self.isOpenable(after.filetype) else {
                // Replaced between the check and the open: close it again.
                probe.close(fd: fd)
                return Self.errno(.ENOTSUP)
            }
            if creating {
                quota?.apply(bytes: Self.clamp(after.size), entries: 1)
            } else if case .success(let st) = before, st.filetype == .REGULAR_FILE, oflags.contains(.TRUNC) {
                quota?.apply(bytes: Self.clamp(after.size) - Self.clamp(st.size))
            }
            return result
        }
    }

    /// `path_create_directory(dirfd, path, len)` and `path_symlink(old, old_len, dirfd, new, new_len)`:
    /// one more entry, if the file-count limit allows it.
    func wrapCreate(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            guard let quota else { return try original(memory, args) }
            if let breach = quota.checkNewEntry() { return Self.errno(WorkspaceQuota.errno(for: breach)) }
            let result = try original(memory, args)
            if Self.succeeded(result) { quota.apply(entries: 1) }
            return result
        }
    }

    /// What removing the entry `st` gives back (a file with other links keeps its bytes).
    private func release(_ st: WASIAbi.Filestat) {
        let bytes = st.filetype == .REGULAR_FILE && st.nlink <= 1 ? Self.clamp(st.size) : 0
        quota?.apply(bytes: -bytes, entries: -1)
    }

    /// `path_unlink_file(dirfd, path, len)`.
    func wrapUnlink(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            guard quota != nil, let path = Self.path(memory, args, at: 1) else { return try original(memory, args) }
            let before = probe.stat(dirFd: Self.u32(args[0]), path: path, followSymlinks: false)
            let result = try original(memory, args)
            if Self.succeeded(result), case .success(let st) = before { release(st) }
            return result
        }
    }

    /// `path_remove_directory(dirfd, path, len)`.
    func wrapRemoveDirectory(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            let result = try original(memory, args)
            if Self.succeeded(result) { quota?.apply(entries: -1) }
            return result
        }
    }

    /// `path_rename(old_fd, old, old_len, new_fd, new, new_len)`: a replaced target is released.
    func wrapRename(_ original: @escaping WASIHostImplementation) -> WASIHostImplementation {
        { [self] memory, args in
            guard quota != nil, let oldPath = Self.path(memory, args, at: 1), let newPath = Self.path(memory, args, at: 4) else {
                return try original(memory, args)
            }
            let source = probe.stat(dirFd: Self.u32(args[0]), path: oldPath, followSymlinks: false)
            let target = probe.stat(dirFd: Self.u32(args[3]), path: newPath, followSymlinks: false)
            let result = try original(memory, args)
            if Self.succeeded(result), case .success(let replaced) = target {
                if case .success(let moved) = source, moved.dev == replaced.dev && moved.ino == replaced.ino { return result }
                release(replaced)
            }
            return result
        }
    }
}
