import Foundation
import SandboxCore
import SandboxStore
import Testing
@testable import SandboxManager

/// The meter's arithmetic: samples are deltas between readings, a new sandbox counts from its
/// creation, an adopted one from its baseline, a final sample forgets it.
@Suite("Usage meter")
struct UsageMeterTests {
    static let t0 = Date(timeIntervalSinceReferenceDate: 1_000_000)

    static func reading(cpu: Int64, memory: Int64 = 1 << 30, bytesIn: Int64 = 0, bytesOut: Int64 = 0, execs: Int = 0) -> UsageMeter.Reading {
        UsageMeter.Reading(tenantId: "tnt_m", sandboxId: "sbx-m", createdAt: t0,
                           resources: ResourceReading(cpuNanoseconds: cpu, memoryBytes: memory),
                           egress: EgressTraffic(bytesIn: bytesIn, bytesOut: bytesOut), execs: execs)
    }

    @Test("a new sandbox counts from its creation; later samples are the differences; memory is GiB × seconds; the final sample forgets it")
    func deltas() throws {
        let meter = UsageMeter()
        let first = try #require(meter.sample(Self.reading(cpu: 2_000_000_000, bytesIn: 100, bytesOut: 10, execs: 1), at: Self.t0 + 10))
        #expect(first.sandboxSeconds == 10 && first.cpuSeconds == 2 && first.memoryGiBSeconds == 10)
        #expect(first.egressBytesIn == 100 && first.egressBytesOut == 10 && first.execs == 1 && first.at == Self.t0 + 10)
        let second = try #require(meter.sample(Self.reading(cpu: 2_500_000_000, memory: 1 << 29, bytesIn: 150, bytesOut: 10, execs: 3), at: Self.t0 + 14))
        #expect(second.sandboxSeconds == 4 && second.cpuSeconds == 0.5 && second.memoryGiBSeconds == 2)
        #expect(second.egressBytesIn == 50 && second.egressBytesOut == 0 && second.execs == 2)
        #expect(first.id != second.id)
        let last = try #require(meter.sample(Self.reading(cpu: 3_000_000_000, execs: 3), at: Self.t0 + 15, final: true))
        #expect(last.cpuSeconds == 0.5 && last.sandboxSeconds == 1)
        #expect(meter.metered.isEmpty)
    }

    @Test("an adopted sandbox starts from its baseline: what it used before is not counted again")
    func baseline() throws {
        let meter = UsageMeter()
        meter.baseline(Self.reading(cpu: 9_000_000_000, bytesIn: 1000, execs: 7), at: Self.t0 + 100)
        let s = try #require(meter.sample(Self.reading(cpu: 9_250_000_000, bytesIn: 1000, execs: 7), at: Self.t0 + 105))
        #expect(s.cpuSeconds == 0.25 && s.sandboxSeconds == 5 && s.egressBytesIn == 0 && s.execs == 0)
    }

    @Test("the Prometheus tenant label set is bounded: past the cap every new tenant is 'other'")
    func boundedLabels() {
        let known = (0..<TenantMetrics.maxTenants + 5).map { TenantMetrics.label("tnt_label_\($0)") }
        #expect(Set(known).count <= TenantMetrics.maxTenants + 1)
        #expect(known.last == "other")
        #expect(TenantMetrics.label("tnt_label_0") == known[0])
    }
}
