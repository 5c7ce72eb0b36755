import WAT

/// Assembles WebAssembly text (WAT) into a binary module, for fixtures and small tools.
public enum WATAssembler {
    /// - Returns: the bytes of the `.wasm` module.
    public static func assemble(_ text: String) throws -> [UInt8] {
        try wat2wasm(text)
    }
}
