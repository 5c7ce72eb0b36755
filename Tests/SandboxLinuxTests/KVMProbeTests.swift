import Foundation
import Testing
@testable import SandboxLinux

/// The KVM check behind `sandboxer doctor`'s microvm line: a vCPU must run a guest, not only open.
@Suite("KVM probe (a vCPU runs a real-mode test guest)")
struct KVMProbeTests {
    static var kvmPresent: Bool {
        if FileManager.default.fileExists(atPath: "/dev/kvm") { return true }
        print("SKIP: /dev/kvm does not exist on this host")
        return false
    }

    @Test("the probe gives a definite answer with a message", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func definiteAnswer() {
        let probe = HostReport.KVMProbe.run()
        print("KVM probe on this host: \(probe.verdict): \(probe.message)")
        #expect(!probe.message.isEmpty && probe.message != "no result")
        let line = HostReport.kvm(probe)
        switch probe.verdict {
        case .ran:
            #expect(line.ok && line.detail.hasPrefix("microvm lane possible (a KVM vCPU ran"), "\(line.detail)")
        case .vcpuFailed:
            #expect(!line.ok && line.detail.hasPrefix("microvm lane: KVM opens but a vCPU does not run ("), "\(line.detail)")
        case .unavailable:
            #expect(!line.ok && line.detail.contains("/dev/kvm"), "\(line.detail)")
        }
    }

    @Test("a guest that never exits is stopped by the deadline and reported as not running", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func guestThatSpins() {
        let standard = HostReport.KVMProbe.run()
        guard standard.verdict == .ran else { print("SKIP: KVM does not run the standard guest here: \(standard.message)"); return }
        let probe = HostReport.KVMProbe.run(guest: [0xEB, 0xFE], timeoutMilliseconds: 200)  // jmp .
        #expect(probe.verdict == .vcpuFailed)
        #expect(probe.message.contains("did not return within 200 ms"), "\(probe.message)")
    }

    @Test("a guest that writes the wrong value does not count as running", .enabled(if: kvmPresent, "requires /dev/kvm"))
    func wrongValue() {
        let probe = HostReport.KVMProbe.run(guest: [0xB0, 0x41, 0xE6, 0x10, 0xF4], timeoutMilliseconds: 2000)  // mov $0x41,%al; out; hlt
        guard probe.verdict != .unavailable else { print("SKIP: \(probe.message)"); return }
        #expect(probe.verdict == .vcpuFailed, "\(probe.message)")
    }

    @Test("doctor's line for each answer")
    func doctorLines() {
        #expect(HostReport.kvm(.init(verdict: .ran, message: "a KVM vCPU ran a real-mode test guest")).ok)
        let failed = HostReport.kvm(.init(verdict: .vcpuFailed, message: "the first exit was FAIL_ENTRY"))
        #expect(!failed.ok && failed.detail == "microvm lane: KVM opens but a vCPU does not run (the first exit was FAIL_ENTRY)")
        #expect(!HostReport.kvm(.init(verdict: .unavailable, message: "/dev/kvm cannot be opened: ENOENT")).ok)
    }
}
