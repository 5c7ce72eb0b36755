import Testing

@Suite struct AgentTestsPlaceholder { @Test func builds() {} }
