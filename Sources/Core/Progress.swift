import Foundation

/// A progress line for long jobs: count, rate and ETA, redrawn in place on a terminal and printed
/// every `plainInterval` seconds otherwise (logs stay readable). Thread-safe.
public final class ProgressReporter: @unchecked Sendable {
    private let total: Int
    private let label: String
    private let lock = NSLock()
    private let start = Date()
    private var done = 0
    private var lastDraw = Date.distantPast
    private let terminal: Bool
    private let plainInterval: Double
    private let output: FileHandle

    public init(total: Int, label: String, output: FileHandle = .standardError, plainInterval: Double = 10) {
        self.total = total
        self.label = label
        self.output = output
        self.plainInterval = plainInterval
        terminal = isatty(output.fileDescriptor) != 0
    }

    public var elapsed: Double { Date().timeIntervalSince(start) }

    public func advance(by n: Int = 1) {
        lock.lock()
        done += n
        let now = Date()
        let interval = terminal ? 0.2 : plainInterval
        if now.timeIntervalSince(lastDraw) >= interval || done == total {
            lastDraw = now
            draw(final: false)
        }
        lock.unlock()
    }

    /// Ends the line (on a terminal) with the final figures.
    public func finish() {
        lock.lock()
        draw(final: true)
        lock.unlock()
    }

    private func draw(final: Bool) {
        let t = max(elapsed, 1e-9)
        let rate = Double(done) / t
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = total > 0 ? min(width, done * width / total) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = "\(label) [\(bar)] \(done)/\(total) \(String(format: "%.1f", rate))/s ETA \(Self.clock(remaining))"
        if terminal {
            output.write(Data(("\r" + line + (final ? "\n" : "")).utf8))
        } else if !final {
            output.write(Data((line + "\n").utf8))
        }
    }

    package static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
