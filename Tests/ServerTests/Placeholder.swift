import Testing

@Suite struct ServerTestsPlaceholder { @Test func builds() {} }
