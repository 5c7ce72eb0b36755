import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench --suite e2b`: E2B's unmodified Python SDK against sandboxer's own `/v1`, in the
/// same run and the same Python process, on a server started in-process on a free loopback port:
/// `Sandbox.create()` + `commands.run("true")` + `kill()` against `POST /v1/sandboxes` + an exec
/// of the same command line (`/bin/bash -l -c true`, what the SDK starts) + `DELETE`, over one
/// keep-alive httpx client. The two alternate, so a busy machine slows both alike. The SDK comes
/// from the venv `scripts/e2b-sdk.sh` makes (`--e2b-python`, default the pinned e2b 2.45.1's).
struct E2BBench {
    let iterations: Int
    let python: String

    /// The pinned SDK's venv under the cache `scripts/e2b-sdk.sh` fills.
    static func defaultPython(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let cache = environment["SANDBOXER_CACHE"] ?? "/var/cache/sandboxer"
        return "\(cache)/e2b-sdk/e2b-2.45.1_ci-2.9.1/bin/python"
    }

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite e2b needs root (container sandboxes)") }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw SandboxError(.hostUnsupported, "no E2B SDK at \(python): run scripts/e2b-sdk.sh (it makes the venvs), or pass --e2b-python PATH")
        }
        try await BenchDataDirectory.with("e2b") { data in
            let store = try ServerSetup.makeStore(dataDirectory: data)
            let (key, record) = try await store.createAPIKey(tenantName: "bench", shape: .e2b)
            print(APIBench.hostLine(iterations: iterations).replacingOccurrences(of: "sandboxer API", with: "E2B SDK vs /v1"))
            let python = self.python, iterations = self.iterations
            let samples = try await APIBench.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: [:]) { s in
                let url = "http://127.0.0.1:\(s.port)"
                let (end, out, err) = try await ChildProcess.run([python, "-c", Self.driver, url, key, String(iterations)])
                guard end == .exited(0) else { throw SandboxError(.system, "the E2B bench driver ended with \(end): \(err.suffix(2000))") }
                return try JSONDecoder().decode([String: [Double]].self, from: Data(out.utf8))
            }
            print(Self.table(samples))
        }
    }

    /// The rows: each step and the whole, p50/p90 per path, and the SDK's cost over /v1.
    static func table(_ samples: [String: [Double]]) -> String {
        var lines = ["| step | E2B SDK p50 ms | p90 ms | /v1 p50 ms | p90 ms | SDK / v1 (p50) |", "|---|---:|---:|---:|---:|---:|"]
        for step in ["total", "create", "run", "kill"] {
            let e = Percentiles(samples["e2b.\(step)"] ?? []), v = Percentiles(samples["v1.\(step)"] ?? [])
            let label = step == "total" ? "create + run(\"true\") + kill" : step
            lines.append(benchRow([label, ms(e.p50), ms(e.p90), ms(v.p50), ms(v.p90), ratio(e.p50 / v.p50)]))
        }
        return lines.joined(separator: "\n")
    }

    /// The driver (Python, E2B's SDK and httpx): argv url, key, iterations; prints
    /// `{"e2b.create": [ms…], …, "v1.total": [ms…]}` after 3 unmeasured rounds of each.
    static let driver = #"""
import json, os, sys, time
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ.update(E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=key)
import httpx
from e2b import Sandbox

client = httpx.Client(base_url=url, headers={"Authorization": "Bearer " + key}, timeout=120)
samples = {}

def timed(path, step, t0):
    t1 = time.perf_counter()
    samples.setdefault(path + "." + step, []).append((t1 - t0) * 1000)
    return t1

def e2b():
    t = start = time.perf_counter()
    s = Sandbox.create(timeout=120)
    t = timed("e2b", "create", t)
    r = s.commands.run("true")
    assert r.exit_code == 0, r
    t = timed("e2b", "run", t)
    assert s.kill()
    timed("e2b", "kill", t)
    timed("e2b", "total", start)

def v1():
    t = start = time.perf_counter()
    r = client.post("/v1/sandboxes", json={})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    t = timed("v1", "create", t)
    r = client.post("/v1/sandboxes/" + sid + "/exec", json={"cmd": ["/bin/bash", "-l", "-c", "true"]})
    assert r.status_code == 200 and r.json().get("exit_code") == 0, r.text
    t = timed("v1", "run", t)
    r = client.delete("/v1/sandboxes/" + sid)
    assert r.status_code == 200, r.text
    timed("v1", "kill", t)
    timed("v1", "total", start)

for _ in range(3):
    e2b(); v1()
samples.clear()
for _ in range(n):
    e2b(); v1()
print(json.dumps(samples))
"""#
}
