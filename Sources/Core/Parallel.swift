import Foundation

/// Splits `0..<count` into contiguous chunks, one per worker, and runs them concurrently.
/// Used by the plain-Swift element-wise passes (dropout, softmax, SGD) that oneDNN does not cover.
@inline(__always)
public func parallelChunks(_ count: Int, workers: Int, minimumChunk: Int = 1 << 15,
                           _ body: (Range<Int>) -> Void) {
    let chunks = max(1, min(workers, (count + minimumChunk - 1) / minimumChunk))
    if chunks == 1 { body(0..<count); return }
    let size = (count + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * size
        let hi = min(count, lo + size)
        if lo < hi { body(lo..<hi) }
    }
}

/// Runs `body(worker)` on `count` threads and waits for all of them.
public func runWorkers(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for w in 0..<count {
        let thread = Thread { body(w); group.leave() }
        thread.stackSize = 8 << 20
        group.enter()
        thread.start()
    }
    group.wait()
}

/// A counter threads take work from.
public final class WorkCounter: @unchecked Sendable {
    private var next: Int
    private let end: Int
    private let lock = NSLock()
    public init(_ end: Int, start: Int = 0) { (self.next, self.end) = (start, end) }
    /// The next index, or nil when all are taken.
    public func take() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard next < end else { return nil }
        next += 1
        return next - 1
    }
}
