import Foundation
import GRDB
import SandboxCore

/// Turns whatever GRDB or the system threw into a ``SandboxError`` that says what to do.
enum StoreError {
    static func map(_ error: any Error, doing what: String, path: String) -> SandboxError {
        if let e = error as? SandboxError { return e }
        if let e = error as? ImpossibleTransition { return e.refused(doing: what) }
        if error is CancellationError {
            return SandboxError(.system, "\(what): cancelled before the database answered; retry")
        }
        if let e = error as? DatabaseError {
            switch e.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return SandboxError(.system, "\(what): \(path) stayed locked by another process for too long; retry, or look for a stuck sandboxer process")
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
                return SandboxError(.storeUnavailable, "\(what): cannot write \(path) (\(e.message ?? "\(e.resultCode)")); make the data directory and its files writable by uid \(getuid()), or pass --data (or SANDBOXER_DATA)")
            case .SQLITE_FULL:
                return SandboxError(.insufficientStorage, "\(what): the disk holding \(path) is full; nothing was written — free space (the server carries on once there is)")
            case .SQLITE_IOERR:
                if diskIsFull(path) {
                    return SandboxError(.insufficientStorage, "\(what): the disk holding \(path) is full (\(e.message ?? "I/O error")); nothing was written — free space (the server carries on once there is)")
                }
                return SandboxError(.storeUnavailable, "\(what): I/O error on \(path) (\(e.message ?? "")); check the disk")
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return SandboxError(.system, "\(what): \(path) is damaged or not a sandboxer database; move it away (an empty one is created) or restore a backup")
            case .SQLITE_CONSTRAINT:
                return SandboxError(.invalidState, "\(what): already exists (\(e.message ?? "constraint"))")
            case .SQLITE_MISUSE where (e.message ?? "").contains("closed"):
                return SandboxError(.invalidState, "\(what): the store is closed; open it again")
            default:
                return SandboxError(.system, "\(what): database error on \(path): \(e.message ?? "\(e.resultCode)")")
            }
        }
        if error is RowDecodingError || error is DecodingError {
            return SandboxError(.system, "\(what): a stored row of \(path) cannot be read (\(error)); was it written by a newer sandboxer?")
        }
        return SandboxError(.system, "\(what): \(error)")
    }

    /// Whether the filesystem holding `path` has (almost) no room left.
    static func diskIsFull(_ path: String) -> Bool {
        var fs = statvfs()
        let directory = (path as NSString).deletingLastPathComponent
        return statvfs(directory, &fs) == 0 && UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < 64 << 10
    }
}
