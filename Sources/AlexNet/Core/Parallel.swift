import Dispatch

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
