/// The HTTP API (see openapi.yaml). Being built.
public enum SandboxServerModule {}
