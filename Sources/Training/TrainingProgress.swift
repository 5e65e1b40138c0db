import AlexNetCore
import Foundation
import Logging

/// Progress within one epoch (pytorch/examples' trainer: step time and the time spent waiting for
/// data shown apart). On a terminal, one bar redrawn in place; otherwise a log line every
/// `printFrequency` batches, so logs stay readable.
final class TrainingProgress {
    private let label: String
    private let total: Int
    private let first: Int
    private let printFrequency: Int
    private let logger: Logger
    private let terminal: Bool
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private(set) var images = 0
    private(set) var dataSeconds = 0.0
    private var lossSum = 0.0

    /// - Parameter first: batches already done before this run (a resumed epoch).
    init(label: String, batches total: Int, startingAt first: Int, printFrequency: Int, logger: Logger) {
        (self.label, self.total, self.first, self.printFrequency, self.logger) = (label, total, first, printFrequency, logger)
        terminal = isatty(STDERR_FILENO) != 0
    }

    var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// Records batch `index` (0-based) of `count` images with its loss and the time it waited for data.
    func batch(_ index: Int, count: Int, loss: Double, dataWait: Double) {
        images += count
        lossSum += loss * Double(count)
        dataSeconds += dataWait
        let done = index + 1
        let now = DispatchTime.now().uptimeNanoseconds
        if terminal {
            if now - lastDraw > 200_000_000 || done == total {
                lastDraw = now
                // "\e[K" clears what a longer previous line left.
                FileHandle.standardError.write(Data(("\r" + line(done: done) + "\u{1B}[K").utf8))
            }
        } else if done % printFrequency == 0 && done < total {
            logger.info("\(line(done: done))")
        }
    }

    /// Ends the bar (on a terminal) so the epoch's summary starts on its own line.
    func finish() {
        if terminal && images > 0 { FileHandle.standardError.write(Data("\r\(line(done: total))\u{1B}[K\n".utf8)) }
    }

    private func line(done: Int) -> String {
        let t = max(seconds, 1e-9)
        let rate = Double(images) / t
        let batchesPerSecond = Double(done - first) / t
        let eta = batchesPerSecond > 0 ? Double(total - done) / batchesPerSecond : 0
        let width = 24
        let filled = total > 0 ? min(width, done * width / total) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        return "\(label) [\(bar)] \(done)/\(total) loss \(String(format: "%.4f", lossSum / Double(max(images, 1)))) "
            + String(format: "%.1f img/s, data %.0f%%", rate, 100 * dataSeconds / t) + " ETA \(ProgressReporter.clock(eta))"
    }
}
