// Owned by the WASM-lane work (issue 4); filled in there.
