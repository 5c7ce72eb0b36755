import Foundation
import Testing
@testable import SandboxLinux

/// The KVM check behind `sandboxer doctor`'s microvm line: a vCPU must run what a 64-bit guest
/// kernel needs (long mode, an INT3 through its IDT), not only open.
@Suite("KVM probe (real mode, 64-bit long mode, INT3 through the guest's IDT)")
struct KVMProbeTests {
    /// Stage 1: mov $0x42,%al; out %al,$0x10; hlt
    static let realGuest: [UInt8] = [0xB0, 0x42, 0xE6, 0x10, 0xF4]
    /// Stage 2: xor %eax,%eax; inc %rax; mov $0x41,%dl; add %dl,%al; out %al,$0x10; hlt.
    /// Writes 0x42 only when decoded as 64-bit code (in 16/32-bit code 0x48 is DEC: 0x41).
    static let longGuest: [UInt8] = [0x31, 0xC0, 0x48, 0xFF, 0xC0, 0xB2, 0x41, 0x00, 0xD0, 0xE6, 0x10, 0xF4]
    /// Stage 3: xor %ebx,%ebx; int3; lea 0x41(%rbx),%eax; out %al,$0x10; hlt.
    /// Writes 0x42 only when the #BP handler (inc %rbx; iretq) ran once.
    static let int3Guest: [UInt8] = [0x31, 0xDB, 0xCC, 0x8D, 0x43, 0x41, 0xE6, 0x10, 0xF4]
    /// stage 3 with a NOP where the INT3 was: the handler does not run, so it writes 0x41.
    static let noInt3Guest: [UInt8] = [0x31, 0xDB, 0x90, 0x8D, 0x43, 0x41, 0xE6, 0x10, 0xF4]

    static var kvmPresent: Bool {
        if FileManager.default.fileExists(atPath: "/dev/kvm") { return true }
        print("SKIP: /dev/kvm does not exist on this host")
        return false
    }

    /// Whether a stage-2 guest runs here; the tests that need long mode skip otherwise.
    static func longModeRuns() -> Bool {
        let probe = HostReport.KVMProbe.run(mode: .long, guest: longGuest, timeoutMilliseconds: 2000)
        if probe.verdict != .ran { print("SKIP: KVM does not run a long-mode guest here: \(probe.message)") }
        return probe.verdict == .ran
    }

    @Test("the probe gives a definite answer with a message naming the stage", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func definiteAnswer() {
        let probe = HostReport.KVMProbe.run()
        print("KVM probe on this host: \(probe.verdict): \(probe.message)")
        #expect(!probe.message.isEmpty && probe.message != "no result")
        let line = HostReport.kvm(probe)
        switch probe.verdict {
        case .ran:
            #expect(line.ok && line.detail.hasPrefix("isolation microvm possible (a 64-bit long-mode guest ran and took an INT3"), "\(line.detail)")
        case .vcpuFailed:
            #expect(!line.ok && line.detail.hasPrefix("isolation microvm impossible: KVM opens but a vCPU does not run what a 64-bit guest kernel needs ("), "\(line.detail)")
            #expect(["stage 1 (real mode) failed", "stage 2 (64-bit long mode) failed", "stage 3 (INT3"].contains { probe.message.contains($0) }, "\(probe.message)")
        case .unavailable:
            #expect(!line.ok && line.detail.contains("/dev/kvm"), "\(line.detail)")
        }
        let pvm = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")
        if probe.verdict != .unavailable {
            #expect(probe.message.contains("kvm_pvm (PVM)") == pvm, "\(probe.message)")
        }
    }

    @Test("the probe's verdict is the verdict of its stages", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func verdictFollowsStages() {
        let real = HostReport.KVMProbe.run(mode: .real, guest: Self.realGuest, timeoutMilliseconds: 2000)
        guard real.verdict != .unavailable else { print("SKIP: \(real.message)"); return }
        let long = HostReport.KVMProbe.run(mode: .long, guest: Self.longGuest, timeoutMilliseconds: 2000)
        let int3 = HostReport.KVMProbe.run(mode: .long, guest: Self.int3Guest, timeoutMilliseconds: 2000)
        let probe = HostReport.KVMProbe.run()
        if real.verdict != .ran {
            #expect(probe.verdict == .vcpuFailed && probe.message.hasPrefix("stage 1 (real mode) failed: \(real.message)"), "\(probe.message)")
        } else if long.verdict != .ran {
            #expect(probe.verdict == .vcpuFailed && probe.message.hasPrefix("a real-mode test guest ran, but stage 2 (64-bit long mode) failed: \(long.message)"), "\(probe.message)")
        } else if int3.verdict != .ran {
            #expect(probe.verdict == .vcpuFailed && probe.message.hasPrefix("a 64-bit long-mode guest ran, but stage 3 (INT3 through the guest's IDT"), "\(probe.message)")
            #expect(probe.message.contains(int3.message), "\(probe.message)")
        } else {
            #expect(probe.verdict == .ran, "\(probe.message)")
        }
    }

    @Test("64-bit-only code runs in long mode, and in real mode writes the wrong value", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func longModePath() {
        let inReal = HostReport.KVMProbe.run(mode: .real, guest: Self.longGuest, timeoutMilliseconds: 2000)
        guard inReal.verdict != .unavailable else { print("SKIP: \(inReal.message)"); return }
        // Decoded as 16-bit code the same bytes write 0x41: a vCPU not in long mode cannot pass stage 2.
        #expect(inReal.verdict == .vcpuFailed && inReal.message.contains("wrote 0x41"), "\(inReal.message)")
        let inLong = HostReport.KVMProbe.run(mode: .long, guest: Self.longGuest, timeoutMilliseconds: 2000)
        switch inLong.verdict {
        case .ran: #expect(inLong.message.hasPrefix("a 64-bit long-mode test guest ran: OUT 0x42 to port 0x10"), "\(inLong.message)")
        case .vcpuFailed: #expect(!inLong.message.isEmpty && inLong.message != "no result")
        case .unavailable: Issue.record("/dev/kvm opened for real mode but not for long mode: \(inLong.message)")
        }
    }

    @Test("in long mode a wrong value and a missing INT3 handler do not count as running", .enabled(if: kvmPresent && longModeRuns(), "requires a long-mode guest to run"))
    func longModeWrongValues() {
        let wrong = HostReport.KVMProbe.run(mode: .long, guest: [0xB0, 0x41, 0xE6, 0x10, 0xF4], timeoutMilliseconds: 2000)  // mov $0x41,%al; out; hlt
        #expect(wrong.verdict == .vcpuFailed && wrong.message.contains("wrote 0x41"), "\(wrong.message)")
        let noInt3 = HostReport.KVMProbe.run(mode: .long, guest: Self.noInt3Guest, timeoutMilliseconds: 2000)
        #expect(noInt3.verdict == .vcpuFailed && noInt3.message.contains("wrote 0x41"), "\(noInt3.message)")
    }

    @Test("an INT3 in long mode either reaches the guest's handler or is reported with KVM's exit", .enabled(if: kvmPresent && longModeRuns(), "requires a long-mode guest to run"))
    func int3Stage() {
        let probe = HostReport.KVMProbe.run(mode: .long, guest: Self.int3Guest, timeoutMilliseconds: 2000)
        if probe.verdict == .ran {
            #expect(probe.message.hasPrefix("a 64-bit long-mode test guest ran: OUT 0x42"), "\(probe.message)")
        } else {
            #expect(probe.verdict == .vcpuFailed && (probe.message.contains("exit was") || probe.message.contains("failed") || probe.message.contains("did not return")), "\(probe.message)")
        }
    }

    @Test("a guest that never exits is stopped by the deadline and reported as not running", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func guestThatSpins() {
        let real = HostReport.KVMProbe.run(mode: .real, guest: Self.realGuest, timeoutMilliseconds: 2000)
        guard real.verdict == .ran else { print("SKIP: KVM does not run the real-mode guest here: \(real.message)"); return }
        let probe = HostReport.KVMProbe.run(mode: .real, guest: [0xEB, 0xFE], timeoutMilliseconds: 200)  // jmp .
        #expect(probe.verdict == .vcpuFailed)
        #expect(probe.message.contains("did not return within 200 ms"), "\(probe.message)")
    }

    @Test("a long-mode guest that never exits is stopped by the deadline", .enabled(if: kvmPresent && longModeRuns(), "requires a long-mode guest to run"))
    func longGuestThatSpins() {
        let probe = HostReport.KVMProbe.run(mode: .long, guest: [0xEB, 0xFE], timeoutMilliseconds: 200)  // jmp .
        #expect(probe.verdict == .vcpuFailed)
        #expect(probe.message.contains("did not return within 200 ms"), "\(probe.message)")
    }

    @Test("a guest that writes the wrong value does not count as running", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func wrongValue() {
        let probe = HostReport.KVMProbe.run(mode: .real, guest: [0xB0, 0x41, 0xE6, 0x10, 0xF4], timeoutMilliseconds: 2000)  // mov $0x41,%al; out; hlt
        guard probe.verdict != .unavailable else { print("SKIP: \(probe.message)"); return }
        #expect(probe.verdict == .vcpuFailed, "\(probe.message)")
    }

    @Test("doctor's line for each answer")
    func doctorLines() {
        let ran = HostReport.kvm(.init(verdict: .ran, message: "a 64-bit long-mode guest ran and took an INT3 through its own IDT, after a real-mode one"))
        #expect(ran.ok && ran.detail == "isolation microvm possible (a 64-bit long-mode guest ran and took an INT3 through its own IDT, after a real-mode one; booting a guest kernel is not tried)")
        let failed = HostReport.kvm(.init(verdict: .vcpuFailed, message: "a real-mode test guest ran, but stage 2 (64-bit long mode) failed: the first exit was FAIL_ENTRY"))
        #expect(!failed.ok && failed.detail == "isolation microvm impossible: KVM opens but a vCPU does not run what a 64-bit guest kernel needs (a real-mode test guest ran, but stage 2 (64-bit long mode) failed: the first exit was FAIL_ENTRY)")
        #expect(!HostReport.kvm(.init(verdict: .unavailable, message: "/dev/kvm cannot be opened: ENOENT")).ok)
    }
}
