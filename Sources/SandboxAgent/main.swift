// sandboxer-agent: pid 1 of every long-lived container sandbox.
//
// usage: sandboxer-agent --socket PATH --uid N --gid N [--socket-owner N] [--expires-at UNIX_SECONDS]
//
// Serves the agent protocol (AgentProtocol) on a unix socket in a directory only it can reach,
// spawns user processes as the sandbox user, streams their output, runs file operations with
// the sandbox user's permissions, and reaps every zombie. Single-threaded: one poll(2) loop.
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// Fatal start-up errors are the only thing the agent writes (to stderr, which crun logs).
func die(_ message: String) -> Never {
    let line = "sandboxer-agent: " + message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

var socketPath: String?
var uid: UInt32?
var gid: UInt32?
var expiresAt: Double?
var keepCapabilities: UInt64 = 0
var socketOwner: UInt32?
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--socket": socketPath = args.next()
    case "--uid": uid = args.next().flatMap { UInt32($0) }
    case "--gid": gid = args.next().flatMap { UInt32($0) }
    case "--expires-at": expiresAt = args.next().flatMap { Double($0) }.flatMap { $0.isFinite ? $0 : nil }
    case "--keep-caps": keepCapabilities = args.next().flatMap { UInt64($0) } ?? 0
    case "--socket-owner": socketOwner = args.next().flatMap { UInt32($0) }
    default: die("unknown argument '\(a)'; usage: sandboxer-agent --socket PATH --uid N --gid N [--socket-owner N] [--expires-at UNIX_SECONDS]")
    }
}
guard let socketPath, let uid, let gid else { die("usage: sandboxer-agent --socket PATH --uid N --gid N") }
guard sbx_agent_harden() == 0 else { die("prctl: \(String(cString: strerror(errno)))") }
// No supplementary groups: file operations check only the sandbox user's fsuid/fsgid.
_ = setgroups(0, nil)
// The user's home, when the template lacks it (not in a template build's sandbox: its image is the build's output).
if keepCapabilities == 0 { UserHome.ensure(uid: uid, gid: gid) }
let signals = sbx_agent_signalfd()
guard signals >= 0 else { die("signalfd: \(String(cString: strerror(errno)))") }
let listener = Listener.open(path: socketPath, owner: socketOwner)
var agent = Agent(listener: listener, signals: signals, user: SandboxUser(uid: uid, gid: gid, keepCapabilities: keepCapabilities))
agent.expiresAt = expiresAt
agent.run()
