/// What a 201/202 means on this store: whether a committed write survives a crash of the database
/// (or of the machine), as the engine's own settings decide. `sandboxer doctor` and `serve` report it.
public struct StoreDurability: Sendable, Equatable {
    /// The engine and where it is, without a password.
    public var name: String
    /// True when a commit is on stable storage before it is acknowledged.
    public var durable: Bool
    /// The settings read and what they mean.
    public var detail: String

    public init(name: String, durable: Bool, detail: String) {
        self.name = name
        self.durable = durable
        self.detail = detail
    }
}
