import Foundation
@_spi(WASIPlatform) import WASI
import WasmKit

#if canImport(Glibc)
import Glibc
#endif

/// `poll_oneoff` that never outlives the run: a guest's sleep ends at the run's deadline (or as
/// soon as the watchdog interrupts the run), and the run's thread returns instead of sleeping on.
extension WASIGuard {
    /// Thrown out of a host call that reached the deadline; the run then ends as `timeout`.
    struct DeadlineReached: Error, CustomStringConvertible {
        var description: String { "the run's deadline passed during a host call" }
    }

    /// The longest single sleep between checks of the watchdog's interrupt.
    static let sleepSlice: Duration = .milliseconds(50)

    func installPoll(into table: inout [String: WASIHostImplementation]) {
        guard let original = table["poll_oneoff"] else { return }
        table["poll_oneoff"] = { [self] memory, args in try poll(memory, args, original) }
    }

    /// `poll_oneoff(subscriptions, events, nsubscriptions, *nevents)`. Clock-only subscriptions
    /// (every sleep) are served here; with a descriptor among them the bridge's own poll runs,
    /// which cannot block: `path_open` only opens regular files and directories, and stdio is
    /// in memory.
    private func poll(_ memory: Memory, _ args: [Value], _ original: WASIHostImplementation) throws -> [Value] {
        let (subscriptions, events, count, nevents) = (Self.u32(args[0]), Self.u32(args[1]), Self.u32(args[2]), Self.u32(args[3]))
        guard count > 0, count <= 1 << 16 else { return Self.errno(.EINVAL) }
        guard let table = GuestRead.bytes(memory, at: subscriptions, count: count * 48),
              GuestRead.bytes(memory, at: events, count: count * 32) != nil, GuestRead.bytes(memory, at: nevents, count: 4) != nil
        else { return Self.errno(.EFAULT) }
        func u64(_ at: Int) -> UInt64 { table[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ at: Int) -> UInt32 { table[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        var clocks: [(userData: UInt64, remaining: UInt64)] = []
        for i in 0..<Int(count) {
            let base = i * 48
            guard table[base + 8] == 0 else { return try original(memory, args) }  // fd_read / fd_write
            let id = u32(base + 16)
            let timeout = u64(base + 24)
            let flags = UInt16(table[base + 40]) | UInt16(table[base + 41]) << 8
            guard id <= 3, flags & ~1 == 0 else { return Self.errno(.EINVAL) }
            var remaining = timeout
            if flags & 1 != 0 {  // an absolute time on the realtime or monotonic clock
                guard id <= 1 else { return Self.errno(.ENOTSUP) }
                var now = timespec()
                clock_gettime(id == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC, &now)
                let nowNs = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
                remaining = timeout > nowNs ? timeout - nowNs : 0
            }
            clocks.append((u64(base), remaining))
        }
        let wait = clocks.map(\.remaining).min() ?? 0
        try sleep(nanoseconds: wait)
        var fired: UInt32 = 0
        for clock in clocks where clock.remaining <= wait {
            var event = [UInt8](repeating: 0, count: 32)  // userdata, errno 0, type 0 = clock
            withUnsafeBytes(of: clock.userData.littleEndian) { event.replaceSubrange(0..<8, with: $0) }
            memory.withUnsafeMutableBufferPointer(offset: UInt(events) + UInt(fired) * 32, count: 32) { $0.copyBytes(from: event) }
            fired += 1
        }
        memory.withUnsafeMutableBufferPointer(offset: UInt(nevents), count: 4) { buf in
            withUnsafeBytes(of: fired.littleEndian) { buf.copyMemory(from: $0) }
        }
        return Self.errno(.SUCCESS)
    }

    /// Sleeps `nanoseconds` in slices, ending early — by throwing ``DeadlineReached`` — at the
    /// run's deadline or when the watchdog has interrupted the run.
    func sleep(nanoseconds: UInt64) throws {
        let wake = ContinuousClock.now + .nanoseconds(Int64(clamping: nanoseconds))
        while true {
            let now = ContinuousClock.now
            if now >= wake { return }
            if now >= deadline || control.interrupted {
                _ = control.interrupt()  // the run reports a timeout, not a trap
                throw DeadlineReached()
            }
            let slice = min(wake, deadline, now + Self.sleepSlice) - now
            let ns = max(Int64(0), slice.components.seconds * 1_000_000_000 + slice.components.attoseconds / 1_000_000_000)
            var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
            var left = timespec()
            while nanosleep(&request, &left) != 0 && Glibc.errno == EINTR { request = left }
        }
    }
}
