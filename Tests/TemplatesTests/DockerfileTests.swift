import SandboxCore
import Testing
@testable import Templates

/// What `template build` accepts from a Dockerfile, and how it refuses the rest: by instruction and line.
@Suite("Dockerfile parsing")
struct DockerfileTests {
    @Test("the instructions people use, with continuations, comments, both command forms and variables")
    func everyInstruction() throws {
        let file = try Dockerfile("""
            # syntax comment
            ARG BASE=debian
            FROM ${BASE}
            ARG PY=3
            ENV APP=/app LANG="C.UTF-8"
            ENV LEGACY value with spaces
            LABEL org.example.name="demo" version=$PY
            WORKDIR $APP
            RUN apt-get update && \\
                # a comment inside
                apt-get install -y python${PY}
            RUN ["python3", "-c", "print(1)"]
            COPY --chown=1000:1000 src/ req.txt ${APP}/
            ADD ["data file.txt", "/data/"]
            USER sandbox:sandbox
            CMD ["python3", "main.py"]
            ENTRYPOINT exec python3
            """, arguments: ["PY": "3.11"])
        #expect(file.from == "debian")
        #expect(file.steps.map(\.line) == [5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17])
        #expect(file.steps.map(\.step.text) == [
            "ENV APP=/app LANG=C.UTF-8",
            "ENV LEGACY=value with spaces",
            "LABEL org.example.name=demo version=3.11",
            "WORKDIR /app",
            "RUN apt-get update &&  apt-get install -y python${PY}",
            "RUN [\"python3\",\"-c\",\"print(1)\"]",
            "COPY --chown=1000:1000 src/ req.txt /app/",
            "COPY data file.txt /data/",
            "USER sandbox:sandbox",
            "CMD [\"python3\",\"main.py\"]",
            "ENTRYPOINT exec python3",
        ])
        #expect(Dockerfile.Command.shell("echo hi").argv == ["/bin/sh", "-c", "echo hi"])
    }

    @Test("variables: defaults, alternatives, escapes, unset names")
    func substitution() throws {
        let vars = ["A": "x", "E": ""]
        #expect(try Dockerfile.substitute("$A-${A}-${B:-dflt}-${E:-empty}-${A:+alt}-${B:+no}-\\$A-$", vars) == "x-x-dflt-empty-alt--$A-$")
        #expect(throws: SandboxError.self) { try Dockerfile.substitute("${A", vars) }
    }

    @Test("what is not supported is refused naming the instruction and its line", arguments: [
        ("FROM debian\nEXPOSE 80\n", "line 2: EXPOSE is not supported"),
        ("FROM debian\nRUN --mount=type=cache,target=/x true\n", "line 2: RUN flag --mount=type=cache,target=/x is not supported"),
        ("FROM debian\nCOPY --from=build /a /b\n", "line 2: COPY flag --from=build is not supported"),
        ("FROM debian\nADD https://example.com/x.tgz /x\n", "line 2: ADD from a URL"),
        ("FROM debian AS a\nFROM a\n", "line 2: FROM again: multi-stage"),
        ("RUN true\n", "line 1: RUN comes before FROM"),
        ("# nothing\n", "no FROM"),
        ("FROM debian\nRUN [\"unclosed\"\n", "line 2: RUN [...] must be a JSON array"),
        ("FROM debian\nCOPY onlyone\n", "line 2: COPY needs a source and a destination"),
        ("FROM debian\nRUN echo \\", "ends with a '\\' continuation"),
        ("FROM debian\nENV A=\"unclosed\n", "line 2: ENV has an unclosed quote"),
    ])
    func refusals(_ text: String, _ message: String) {
        #expect {
            _ = try Dockerfile(text)
        } throws: { error in
            (error as? SandboxError)?.code == .invalidRequest && (error as? SandboxError)?.message.contains(message) == true
        }
    }
}
