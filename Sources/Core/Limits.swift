import Foundation

/// Bounds on the counts and sizes a caller may ask for, so that `stats --threads 100000` or
/// `preprocess -z 65000` is an error rather than exhausted memory or a trapped allocation. The
/// command line checks its flags against these before doing anything, and the library entry points
/// that take such a count (statistics, the loader benchmark, the importer, training configurations)
/// check them again, so a library caller gets the same error instead of a crash. Each error names
/// the flag or key at fault and the range accepted.
public enum Limits {
    /// Worker threads: at most 4 per core. More than one per core buys nothing, and every worker
    /// costs memory (statistics keep a mean-image accumulator per thread).
    public static var maxThreads: Int { 4 * ProcessInfo.processInfo.activeProcessorCount }

    /// Images per batch (training, evaluation, benchmarks): 32 times the paper's 128. A
    /// full-size training step keeps tens of megabytes of activations and gradients per image,
    /// so 4096 already takes tens of gigabytes; far beyond it an allocation would trap.
    public static let maxBatch = 4096

    /// The side of an image a command produces (`preprocess -z`, `stats -z`): 16 times the
    /// paper's 256. A 4096-pixel shorter side is already 67 MB per 4:3 RGB image.
    public static let maxImageSide = 4096

    /// `value` must lie in `range`; `flag` names the option or key in the error.
    public static func check(_ value: Int, in range: ClosedRange<Int>, flag: String, why: String = "") throws {
        guard range.contains(value) else {
            throw LimitError(flag: flag, message: "must be in \(range.lowerBound)…\(range.upperBound), got \(value)" + (why.isEmpty ? "" : " (\(why))"))
        }
    }

    /// A worker-thread count: 1 up to `maxThreads`.
    public static func check(threads: Int, flag: String = "--threads") throws {
        try check(threads, in: 1...maxThreads, flag: flag,
                  why: "at most 4 per core; this machine has \(ProcessInfo.processInfo.activeProcessorCount)")
    }

    /// A batch size: 1 up to `maxBatch`.
    public static func check(batch: Int, flag: String) throws {
        try check(batch, in: 1...maxBatch, flag: flag)
    }

    /// An image side: 1 up to `maxImageSide`.
    public static func check(imageSide: Int, flag: String) throws {
        try check(imageSide, in: 1...maxImageSide, flag: flag)
    }

    /// Memory a request would take, refused above half of the machine's physical memory (the
    /// rest is the system's and the other buffers'), so that it fails here with a message
    /// instead of being killed by the kernel half-way. `count × bytesEach` is computed with
    /// overflow checks.
    public static func check(memory count: Int, bytesEach: Int, what: String, flags: String, advice: String = "") throws {
        let budget = ProcessInfo.processInfo.physicalMemory / 2
        let (bytes, overflow) = count.multipliedReportingOverflow(by: bytesEach)
        guard !overflow, bytes >= 0, UInt64(bytes) <= budget else {
            let needed = overflow ? "more than 9 EB" : String(format: "%.1f GB", Double(bytes) / 1e9)
            throw LimitError(flag: flags, message: "\(what) would need \(needed), more than half of this machine's "
                             + String(format: "%.1f GB", Double(ProcessInfo.processInfo.physicalMemory) / 1e9)
                             + (advice.isEmpty ? "" : "; \(advice)"))
        }
    }
}

/// A count or size outside what `Limits` accepts, naming the flag (or configuration key).
public struct LimitError: DescribedError, Sendable {
    public let flag: String
    public let message: String
    public var description: String { "\(flag) \(message)" }
}
