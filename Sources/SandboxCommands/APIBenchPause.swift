import Foundation
import SandboxCore
import SandboxLinux

/// `bench --suite api`, part 1b (issue 19): pause + resume round trip, and hibernate + resume
/// against a cold create, in the same run (same server, same raw `crun run`).
extension APIBench {
    func pauseAndHibernate(_ s: Served, raw: Percentiles) async throws {
        var pauses: [Double] = [], resumes: [Double] = [], hibernates: [Double] = [], wakes: [Double] = [], creates: [Double] = []
        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            let id = try await c.createSandbox()
            // A workspace with something in it: hibernating copies it to disk and back.
            try await c.expect(200, .POST, "/v1/sandboxes/\(id)/exec", json: #"{"cmd":["/bin/sh","-c","head -c 1M /dev/urandom > /workspace/blob"]}"#)
            let roundTrips = try await sample(iterations) { _ in
                let t = HostClock.nowMs()
                try await c.expect(200, .POST, "/v1/sandboxes/\(id)/pause")
                pauses.append(HostClock.nowMs() - t)
                let u = HostClock.nowMs()
                try await c.expect(200, .POST, "/v1/sandboxes/\(id)/resume")
                resumes.append(HostClock.nowMs() - u)
            }
            let hibernateResume = try await sample(iterations) { _ in
                let t = HostClock.nowMs()
                try await c.expect(200, .POST, "/v1/sandboxes/\(id)/hibernate")
                hibernates.append(HostClock.nowMs() - t)
                let u = HostClock.nowMs()
                try await c.expect(200, .POST, "/v1/sandboxes/\(id)/resume")
                wakes.append(HostClock.nowMs() - u)
            }
            try await c.execTrue(id)
            try await c.deleteSandbox(id)
            _ = try await sample(iterations) { _ in
                let t = HostClock.nowMs()
                let other = try await c.createSandbox()
                creates.append(HostClock.nowMs() - t)
                try await c.deleteSandbox(other)
            }
            let rt = Percentiles(roundTrips), hr = Percentiles(hibernateResume)
            let pause = Percentiles(Array(pauses.suffix(iterations))), resume = Percentiles(Array(resumes.suffix(iterations)))
            let hib = Percentiles(Array(hibernates.suffix(iterations))), wake = Percentiles(Array(wakes.suffix(iterations)))
            let cold = Percentiles(Array(creates.suffix(iterations)))
            print("\n#### 1b. pause, hibernate, resume (one sandbox, 1 MiB in its workspace)\n")
            print("| case | p50 ms | p90 ms | p50 × raw crun run | p50 × cold create |\n|---|---:|---:|---:|---:|")
            print(benchRow(["raw `crun run /bin/true` (equivalent bundle)", ms(raw.p50), ms(raw.p90), "1.00×", ratio(raw.p50 / cold.p50)]))
            print(benchRow(["`POST /v1/sandboxes` cold", ms(cold.p50), ms(cold.p90), ratio(cold.p50 / raw.p50), "1.00×"]))
            print(benchRow(["`pause` + `resume` round trip", ms(rt.p50), ms(rt.p90), ratio(rt.p50 / raw.p50), ratio(rt.p50 / cold.p50)]))
            print(benchRow(["  `POST …/pause`", ms(pause.p50), ms(pause.p90), ratio(pause.p50 / raw.p50), ratio(pause.p50 / cold.p50)]))
            print(benchRow(["  `POST …/resume` (thaw)", ms(resume.p50), ms(resume.p90), ratio(resume.p50 / raw.p50), ratio(resume.p50 / cold.p50)]))
            print(benchRow(["`hibernate` + `resume`", ms(hr.p50), ms(hr.p90), ratio(hr.p50 / raw.p50), ratio(hr.p50 / cold.p50)]))
            print(benchRow(["  `POST …/hibernate`", ms(hib.p50), ms(hib.p90), ratio(hib.p50 / raw.p50), ratio(hib.p50 / cold.p50)]))
            print(benchRow(["  `POST …/resume` (wake on the kept files)", ms(wake.p50), ms(wake.p90), ratio(wake.p50 / raw.p50), ratio(wake.p50 / cold.p50)]))
        }
    }
}
