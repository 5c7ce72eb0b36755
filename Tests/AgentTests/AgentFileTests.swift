import AgentProtocol
import BackendOCI
import Foundation
import SandboxCore
import SandboxTestSupport
import Testing

@Suite("Agent: files of a live sandbox", .realSandboxes)
struct AgentFileTests {
    @Test("write, read, list, stat, mkdir, move, remove")
    func operations() async throws {
        try await Live.with { backend, box in
            let data: [UInt8] = Array(0...255) + Array("tail".utf8)
            try await backend.writeFile(box, path: "/workspace/deep/er/f.bin", data: data, mode: 0o640)
            #expect(try await backend.readFile(box, path: "/workspace/deep/er/f.bin", limit: 1 << 20) == data)
            let st = try await backend.stat(box, path: "/workspace/deep/er/f.bin")
            #expect(st.type == .file && st.size == Int64(data.count) && st.mode == 0o640 && st.name == "f.bin")
            // The mode is the one asked for: on a new file whatever the umask, and on an existing file too.
            _ = try await Live.sh(backend, box, "echo old > /workspace/existing && chmod 755 /workspace/existing")
            try await backend.writeFile(box, path: "/workspace/existing", data: [1, 2], mode: 0o640)
            try await backend.writeFile(box, path: "/workspace/shared", data: [3], mode: 0o666)
            #expect(try await Live.sh(backend, box, "stat -c %a /workspace/existing /workspace/shared").stdout == "640\n666\n")
            let owner = try await Live.sh(backend, box, "stat -c %u:%g /workspace/deep/er/f.bin")
            #expect(owner.stdout == "1000:1000\n", "files are written as the sandbox user")
            try await backend.makeDirectory(box, path: "/workspace/a/b/c", parents: true)
            await #expect(throws: SandboxError.self) { try await backend.makeDirectory(box, path: "/workspace/x/y", parents: false) }
            try await backend.move(box, from: "/workspace/deep/er/f.bin", to: "/workspace/a/b/c/g.bin")
            let list = try await backend.listDirectory(box, path: "/workspace/a/b/c")
            #expect(list.map(\.name) == ["g.bin"] && list[0].path == "/workspace/a/b/c/g.bin")
            let big = try await backend.writeFile(box, path: "/tmp/big", data: [UInt8](repeating: 7, count: 3 << 20), mode: 0o600)
            _ = big
            #expect(try await backend.readFile(box, path: "/tmp/big", limit: 4 << 20).count == 3 << 20)
            await #expect(throws: SandboxError.self) { try await backend.readFile(box, path: "/tmp/big", limit: 1000) }
            await #expect(throws: SandboxError.self) { try await backend.removeFile(box, path: "/workspace/a", recursive: false) }
            try await backend.removeFile(box, path: "/workspace/a", recursive: true)
            await #expect(throws: SandboxError.self) { try await backend.stat(box, path: "/workspace/a") }
            // The user's permissions, not the agent's: /etc is read-only and root's.
            await #expect(throws: SandboxError.self) { try await backend.writeFile(box, path: "/etc/evil", data: [1], mode: 0o644) }
            await #expect(throws: SandboxError.self) { try await backend.listDirectory(box, path: "/.sandboxer/agent") }
        }
    }

    @Test("entries carry owner ids and user.e2b.* metadata; metadata on /proc is refused")
    func metadataAndOwners() async throws {
        try await Live.with { backend, box in
            try await backend.writeFile(box, path: "/tmp/m.txt", data: Array("m".utf8), mode: 0o644)
            #expect(try await backend.stat(box, path: "/tmp/m.txt").metadata == nil)
            try await backend.setMetadata(box, path: "/tmp/m.txt", metadata: ["Purpose": "report", "k": ""])
            let st = try await backend.stat(box, path: "/tmp/m.txt")
            #expect(st.metadata == ["purpose": "report", "k": ""], "keys are lowercased, the user.e2b. prefix stripped")
            #expect(st.uid == 1000 && st.gid == 1000)
            let xattr = try await Live.sh(backend, box, "python3 -c 'import os; print(os.getxattr(\"/tmp/m.txt\", \"user.e2b.purpose\").decode())'")
            #expect(xattr.stdout == "report\n", "stored as a user.e2b.* xattr: \(xattr.stderr)")
            #expect(try await backend.listDirectory(box, path: "/tmp").first { $0.name == "m.txt" }?.metadata?["purpose"] == "report")
            _ = try await Live.sh(backend, box, "ln -s /proc/1/root /tmp/escape")
            await #expect(throws: SandboxError.self) { try await backend.setMetadata(box, path: "/tmp/escape/etc/hostname", metadata: ["a": "b"]) }
            await #expect(throws: SandboxError.self) { try await backend.setMetadata(box, path: "/etc/passwd", metadata: ["a": "b"]) }
            await #expect(throws: SandboxError.self, "over 16 KiB of metadata") {
                try await backend.setMetadata(box, path: "/tmp/m.txt", metadata: ["big": String(repeating: "x", count: 17 << 10)])
            }
        }
    }

    @Test("file operations act as the sandbox's root only inside SandboxFileUser.acting(asRoot: true) (E2B's user root); asRoot carries nothing but a file operation")
    func fileOperationsAsRoot() async throws {
        try await Live.with { backend, box in
            await #expect(throws: SandboxError.self, "the sandbox user cannot write where root owns") {
                try await backend.writeFile(box, path: "/etc/by-root", data: Array("r".utf8), mode: 0o600)
            }
            try await SandboxFileUser.acting(asRoot: true) {
                try await backend.writeFile(box, path: "/etc/by-root", data: Array("r".utf8), mode: 0o600)
                let st = try await backend.stat(box, path: "/etc/by-root")
                #expect(st.uid == 0 && st.gid == 0 && st.mode & 0o777 == 0o600)
                #expect(try await backend.readFile(box, path: "/etc/by-root", limit: 10) == Array("r".utf8))
            }
            await #expect(throws: SandboxError.self, "back to the sandbox user outside the scope") {
                _ = try await backend.readFile(box, path: "/etc/by-root", limit: 10)
            }
            let refused = await #expect(throws: SandboxError.self) { _ = try await backend.agent(box.id).call(.asRoot(.list)) }
            #expect(refused?.message.contains("asRoot carries one file operation") == true, "\(String(describing: refused))")
        }
    }

    @Test("a watch reports creates, writes, chmods, renames and removes in order, and new subdirectories when recursive")
    func watches() async throws {
        try await Live.with { backend, box in
            _ = try await Live.sh(backend, box, "mkdir -p /tmp/w/old")
            let flat = try await backend.addWatch(box, path: "/tmp/w", recursive: false)
            let deep = try await backend.addWatch(box, path: "/tmp/w", recursive: true)
            _ = try await Live.sh(backend, box, "cd /tmp/w && echo x > f && chmod 600 f && mv f g && rm g && mkdir n && echo y > n/inner && echo z > old/o")
            let seen = try await backend.takeWatchEvents(box, watch: flat).events.map { "\($0.name) \($0.kind.rawValue)" }
            #expect(seen == ["f create", "f write", "f chmod", "f rename", "g create", "g remove", "n create"])
            let all = try await backend.takeWatchEvents(box, watch: deep).events.map { "\($0.name) \($0.kind.rawValue)" }
            #expect(all.contains("n/inner create") && all.contains("old/o create") && all.contains("old/o write"), "\(all)")
            #expect(try await backend.takeWatchEvents(box, watch: flat).events.isEmpty, "taken events are gone")
            try await backend.removeWatch(box, watch: flat)
            await #expect(throws: SandboxError.self) { try await backend.takeWatchEvents(box, watch: flat) }
            await #expect(throws: SandboxError.self) { try await backend.addWatch(box, path: "/root", recursive: false) }
            _ = try await Live.sh(backend, box, "ln -s /proc/1/root /tmp/escape")
            await #expect(throws: SandboxError.self) { try await backend.addWatch(box, path: "/tmp/escape/etc", recursive: false) }
            await #expect(throws: SandboxError.self) { try await backend.addWatch(box, path: "/proc", recursive: true) }
            await #expect(throws: SandboxError.self) { try await backend.addWatch(box, path: "/sys/fs", recursive: false) }
            // More events than one answer frame holds: taken in turns, none lost.
            _ = try await Live.sh(backend, box, "mkdir /tmp/w2")
            let many = try await backend.addWatch(box, path: "/tmp/w2", recursive: false)
            _ = try await Live.sh(backend, box, "cd /tmp/w2 && for i in $(seq 3000); do : > $(printf '%0200d' $i); done")
            let first = try await backend.takeWatchEvents(box, watch: many)
            let second = try await backend.takeWatchEvents(box, watch: many)
            #expect(first.events.count < 3000 && !first.overflowed)
            #expect(Set((first.events + second.events).map(\.name)).count == 3000)
        }
    }

    @Test("symlinks to /etc/shadow or /root give the sandbox's view or a refusal, never the host's file")
    func symlinks() async throws {
        let hostShadow = (try? Data(contentsOf: URL(fileURLWithPath: "/etc/shadow"))) ?? Data()
        try await Live.with { backend, box in
            let mk = try await Live.sh(backend, box, "ln -s /etc/shadow /workspace/s; ln -s /root /workspace/r; ln -s ../../etc/passwd /workspace/p")
            #expect(mk.outcome == .ok)
            do {
                let got = try await backend.readFile(box, path: "/workspace/s", limit: 1 << 20)
                #expect(got.isEmpty || Data(got) != hostShadow, "host /etc/shadow leaked")
            } catch let e as SandboxError {
                #expect(e.message.contains("ermission"), "\(e)")
            }
            let link = try await backend.stat(box, path: "/workspace/s")
            #expect(link.type == .symlink && link.target == "/etc/shadow")
            do {
                let root = try await backend.listDirectory(box, path: "/workspace/r/")
                #expect(root.isEmpty, "the sandbox's /root is not the host's: \(root.map(\.name))")
            } catch is SandboxError {}
            let passwd = try await backend.readFile(box, path: "/workspace/p", limit: 1 << 20)
            let own = try await Live.sh(backend, box, "cat /etc/passwd")
            #expect(String(decoding: passwd, as: UTF8.self) == own.stdout && own.stdout.contains("x:1000:1000:"), "resolved in the sandbox's own /etc")
        }
    }

    @Test("paths with NUL, '..' escapes, relative or over PATH_MAX are typed errors")
    func badPaths() async throws {
        try await Live.with { backend, box in
            for path in ["/workspace/a\u{0}b", "/workspace/../../etc/shadow", "workspace/x", "/" + String(repeating: "a/", count: 2100)] {
                do {
                    _ = try await backend.readFile(box, path: path, limit: 100)
                    Issue.record("read of \(path.prefix(40)) succeeded")
                } catch let e as SandboxError {
                    #expect(e.code == .invalidRequest, "\(e)")
                }
            }
            // The agent checks too, whatever the client does.
            do {
                _ = try await backend.agent(box.id).call(.read(path: "/workspace/../etc/passwd", limit: 10))
                Issue.record("the agent accepted a '..' path")
            } catch let e as SandboxError {
                #expect(e.code == .invalidRequest, "\(e)")
            }
        }
    }
}
