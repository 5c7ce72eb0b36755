/// The frames host and agent exchange. Being built.
public enum AgentProtocolVersion { public static let current = 1 }
