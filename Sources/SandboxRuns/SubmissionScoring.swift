import Foundation
import SandboxCore
import SandboxStore

/// The scoring rules of a submission as pure functions: what a verifier printed, which agent
/// run endings score 0 without a verifier, the mean.
public enum SubmissionScoring {
    /// What a verifier's stdout says: a score in [0, 1] and a message, or why it says nothing usable.
    public enum Verdict: Sendable, Equatable {
        case scored(Double, message: String?)
        case invalid(String)
    }

    /// Reads a verifier's stdout: one JSON object `{"score": number in [0,1], "message": text}`,
    /// the whole output (surrounding whitespace ignored) or, when the verifier also printed other
    /// lines, its last non-empty line. A score that is not a number (`true`, `"1"`), not finite,
    /// or outside [0, 1] is invalid.
    public static func verdict(stdout: String) -> Verdict {
        let whole = stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if whole.isEmpty { return .invalid("the verifier printed nothing; it must print one JSON object {\"score\": 0..1, \"message\": \"…\"}") }
        let last = whole.split(whereSeparator: \.isNewline).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? whole
        guard let output = decode(whole) ?? decode(last) else {
            return .invalid("the verifier's output is not a JSON object: \(excerpt(whole))")
        }
        switch output.score {
        case .missing: return .invalid("the verifier's JSON has no \"score\": \(excerpt(whole))")
        case .notNumber: return .invalid("the verifier's \"score\" is not a number: \(excerpt(whole))")
        case .number(let score):
            guard score.isFinite, score >= 0, score <= 1 else { return .invalid("the verifier's score \(score) is outside [0, 1]") }
            return .scored(score, message: output.message.map { String($0.prefix(1000)) })
        }
    }

    /// A verifier's JSON object: `score` told apart from a boolean or a string.
    private struct Output: Decodable {
        enum Score { case missing, notNumber, number(Double) }
        var score: Score
        var message: String?

        enum CodingKeys: String, CodingKey { case score, message }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if !c.contains(.score) {
                score = .missing
            } else if (try? c.decode(Bool.self, forKey: .score)) != nil {
                score = .notNumber
            } else if let n = try? c.decode(Double.self, forKey: .score) {
                score = .number(n)
            } else {
                score = .notNumber
            }
            message = (try? c.decodeIfPresent(String.self, forKey: .message)) ?? nil
        }
    }

    private static func decode(_ text: String) -> Output? {
        guard text.hasPrefix("{") else { return nil }
        return try? JSONDecoder().decode(Output.self, from: Data(text.utf8))
    }

    private static func excerpt(_ text: String) -> String {
        text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    /// Why a final agent run scores 0 without a verifier (its outcome as a code), or nil when its
    /// output goes to the verifier: it exited (0 or not) on its own, within every limit.
    public static func agentFailure(_ run: RunRecord) -> String? {
        switch run.state {
        case .queued, .running: return nil
        case .timedOut: return "timed_out"
        case .cancelled: return "cancelled"
        case .dead: return "dead"
        case .succeeded, .failed:
            guard let result = run.result else { return run.state == .failed ? "rejected" : nil }
            switch result.outcome {
            case .ok: return nil
            case .exitNonzero: return result.signal != nil ? "crashed" : nil
            case .timeout: return "timed_out"
            case .cancelled: return "cancelled"
            case .oom, .pidsLimit, .workspaceLimit, .diskLimit, .fileSizeLimit, .outputTruncated, .killed, .setupFailed:
                return result.outcome.rawValue
            }
        }
    }

    /// Why a final verifier run cannot score its case (it did not exit 0 on its own), or nil.
    public static func verifierFailure(_ run: RunRecord) -> String? {
        if run.state == .succeeded, let result = run.result, result.outcome == .ok { return nil }
        let how = run.result.map { r in r.outcome == .exitNonzero ? "exit \(r.exitCode.map(String.init) ?? "?")" : r.outcome.rawValue }
        let stderr = run.result.map { String(decoding: $0.stderrBytes.suffix(300), as: UTF8.self) } ?? ""
        return "the verifier run \(run.id) ended \(run.state.rawValue)" + (how.map { " (\($0))" } ?? "")
            + (run.reason.map { ": \($0)" } ?? "") + (stderr.isEmpty ? "" : "; stderr: \(stderr)")
    }

    /// The mean of the case scores, nil while any case is unscored (or there are none).
    public static func mean(_ cases: [SubmissionCase]) -> Double? {
        let scores = cases.compactMap(\.score)
        guard !cases.isEmpty, scores.count == cases.count else { return nil }
        return scores.reduce(0, +) / Double(scores.count)
    }
}
