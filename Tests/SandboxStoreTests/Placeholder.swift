import Testing

@Suite struct SandboxStoreTestsPlaceholder { @Test func builds() {} }
