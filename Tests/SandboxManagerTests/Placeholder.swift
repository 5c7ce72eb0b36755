import Testing

@Suite struct SandboxManagerTestsPlaceholder { @Test func builds() {} }
