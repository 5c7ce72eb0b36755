import Foundation
import Testing
@testable import SandboxServer

/// What the server reads from the code interpreter's driver inside a sandbox (code the sandbox
/// could replace): lines split however the bytes arrive, an overlong line dropped whole, an
/// answer or a refusal whose status stays an error status.
@Suite struct InterpreterDriverTests {
    final class Lines: Sendable {
        let kept = LineCollector()
        var texts: [String] { kept.lines.map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test func linesAreSplitAcrossChunksAndTheLastOneIsKeptAtTheEnd() {
        let lines = Lines()
        let splitter = LineSplitter(limit: 100) { lines.kept.add($0) }
        splitter.add(Array("{\"a\":".utf8))
        splitter.add(Array("1}\n\n{\"b\"".utf8))
        #expect(lines.texts == ["{\"a\":1}"])
        splitter.add(Array(":2}".utf8))
        splitter.finish()
        #expect(lines.texts == ["{\"a\":1}", "{\"b\":2}"])
    }

    @Test func aLineOverTheLimitIsDroppedWholeAndTheNextOneStillArrives() {
        let lines = Lines()
        let splitter = LineSplitter(limit: 8) { lines.kept.add($0) }
        splitter.add(Array(repeating: UInt8(ascii: "x"), count: 5))
        splitter.add(Array(repeating: UInt8(ascii: "y"), count: 20) + Array("\nshort\n".utf8))
        #expect(lines.texts == ["short"])
    }

    @Test func anAnswerDecodesAndARefusalKeepsAnErrorStatus() throws {
        let context = try InterpreterDriver.answer(Array(#"{"ok": {"id": "c1", "language": "python", "cwd": "/home/user"}}"#.utf8),
                                                   as: InterpreterService.ContextView.self)
        #expect(context?.id == "c1" && context?.cwd == "/home/user")
        #expect(try InterpreterDriver.answer(Array(#"{"ok": null}"#.utf8), as: InterpreterService.ContextView.self) == nil)
        #expect(throws: InterpreterDriver.Refusal.self) {
            try InterpreterDriver.answer(Array(#"{"error": {"status": 404, "message": "Context x not found"}}"#.utf8), as: Int.self)
        }
        do {
            _ = try InterpreterDriver.answer(Array(#"{"error": {"status": 200, "message": "fine, really"}}"#.utf8), as: Int.self)
            Issue.record("a refusal was taken as an answer")
        } catch let refusal as InterpreterDriver.Refusal {
            #expect(refusal.status == 500, "a driver cannot turn a refusal into a success status")
        }
        #expect(throws: (any Error).self) { try InterpreterDriver.answer(Array("not json".utf8), as: Int.self) }
    }

    @Test func contextIdsAreTheDriversShapeOnly() throws {
        #expect(try InterpreterService.contextId("6cd44498-b9b6-4483-b787-808b42d00570") == "6cd44498-b9b6-4483-b787-808b42d00570")
        for bad in ["../etc", ".lock", "a/b", "", String(repeating: "a", count: 65), "é"] {
            #expect(throws: InterpreterDriver.Refusal.self) { try InterpreterService.contextId(bad) }
        }
    }
}
