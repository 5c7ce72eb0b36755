/// The versions of the WASM backend's engines, for `sandboxer version`. A test compares them with
/// `Package.resolved` (WasmKit) and `wasm/quickjs/build.sh` (QuickJS), so they cannot drift.
public enum WasmVersions {
    /// The WasmKit release this binary is built against (Package.resolved).
    public static let wasmKit = "0.4.2"
    /// The quickjs-ng release `wasm/quickjs/build.sh` compiles into `qjs.wasm` (its `QJS_VERSION`).
    public static let quickJS = "0.17.0.2"
}
