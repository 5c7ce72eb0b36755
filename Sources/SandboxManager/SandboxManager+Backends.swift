import BackendOCI
import BackendWasm
import Foundation
import OneShot
import SandboxCore
import Templates

extension SandboxManager {
    /// The backends whose sandboxes live between requests, as `sandboxer serve` runs them: the
    /// container backend (crun/runc; `gvisor` through the same driver with runsc) under
    /// `<state>`, and the WASM backend under `<state>/wasm` in supervised worker processes (a
    /// WasmKit crash cannot take the server down). A backend the host cannot run is left out and
    /// logged; creating a sandbox of it is then a clear `invalid_request`.
    public static func standardBackends(
        _ configuration: Configuration, runtime: String? = nil, workerExecutable: String = LayeredWasm.executable
    ) -> [IsolationLevel: any LiveSandboxBackend] {
        var backends: [IsolationLevel: any LiveSandboxBackend] = [:]
        if let oci = try? OCIBackend(configuration: .init(stateDirectory: configuration.stateDirectory, runtime: runtime,
                                                          egress: configuration.egress,
                                                          images: ImageStore(dataDirectory: configuration.dataDirectory),
                                                          hibernateDirectory: configuration.dataDirectory + "/hibernated",
                                                          persistentDirectory: configuration.dataDirectory + "/persistent")) {
            backends[.container] = oci
            // gVisor only where runsc exists: elsewhere a create asks for an isolation this server lacks (400).
            if OCIRuntime.locate("runsc") != nil { backends[.gvisor] = oci }
        }
        // `http.get` decisions go to the sandbox's audit trail, as the egress proxy's do.
        let relay = configuration.auditRelay
        backends[.wasm] = WasmLiveBackend(configuration: .init(
            root: configuration.stateDirectory + "/wasm", mode: .worker(executable: workerExecutable),
            onToolCall: { sandboxId, call in
                if let note = call.egress { relay.record(note.event(sandboxId: sandboxId, via: "http.get", durationMs: call.durationMs)) }
            }))
        return backends
    }
}

extension SandboxManager {
    /// The manifest digest of the image template a new sandbox of `profile` is made from (a
    /// built-in base's first use builds it): nil for `host` and for WASM, which have no image.
    /// An unknown template is a `not_found` naming the templates there are, before anything is made.
    func templateDigest(_ profile: Profile) async throws -> String? {
        guard profile.isolation != .wasm, profile.template != "host" else { return nil }
        let images = ImageStore(dataDirectory: configuration.dataDirectory)
        try await images.ensureBuiltIn(profile.template)
        return try images.image(profile.template).info.digest.description
    }
}
