import AlexNetCore
import CKernels
import Foundation

/// The machine's measured single-precision peak, the denominator of `alexnet bench`'s fraction of
/// peak (docs/PERFORMANCE.md, Method): the best of a tuned FMA kernel on every thread
/// (Sources/CKernels/fma_peak.c, the widest vectors the CPU has, chosen at run time) and a large
/// oneDNN matrix multiply. Both are reported: the FMA kernel is the arithmetic ceiling, the GEMM
/// what a tuned library reaches with memory traffic in the way.
public struct MachinePeak: Sendable, Equatable {
    /// GFLOP/s of the FMA kernel on `threads` threads at once.
    public var fmaGFLOPs: Double
    /// GFLOP/s of an n×n×n oneDNN single-precision GEMM (2n³ floating-point operations).
    public var matmulGFLOPs: Double
    /// The FMA kernel's path: "AVX-512F", "AVX2+FMA" or "portable".
    public var fmaKernel: String
    public var threads: Int
    public var matrixSize: Int

    /// The peak the fraction is taken of: the better of the two.
    public var gflops: Double { max(fmaGFLOPs, matmulGFLOPs) }

    public static var fmaKernelName: String {
        switch alexnet_fma_peak_path() {
        case 3: return "AVX-512F"
        case 2: return "AVX2+FMA"
        default: return "portable"
        }
    }

    /// Measures both on `engine`'s threads: each the best of three timed runs after a warm-up,
    /// the FMA runs about `seconds` each. Takes about 8 × `seconds` plus four GEMMs.
    public static func measure(engine: Engine, matrixSize n: Int = 2048, seconds: Double = 0.1) throws -> MachinePeak {
        try Limits.check(n, in: 64...8192, flag: "matrix size")
        let threads = engine.threads
        // Iterations for about `seconds` on one thread, found by doubling from a short run.
        var iterations: Int64 = 1 << 14
        while true {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = alexnet_fma_peak_run(iterations, 0)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if elapsed >= seconds / 4 || iterations >= 1 << 40 {
                iterations = Int64(Double(iterations) * seconds / max(elapsed, 1e-9))
                break
            }
            iterations *= 2
        }
        let count = iterations
        var fma = 0.0
        for _ in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let flops = FlopTally()
            runWorkers(threads) { _ in flops.add(alexnet_fma_peak_run(count, 0)) }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            fma = max(fma, flops.total / elapsed / 1e9)
        }

        var a = [Float](repeating: 0, count: n * n), b = a, c = a
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.125; b[i] = Float(i % 5) * 0.25 }
        var matmul = 0.0
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try c.withUnsafeMutableBufferPointer { pc in
                    for run in 0..<4 {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        try MatrixMultiply.multiply(m: n, n: n, k: n, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                        if run > 0 { matmul = max(matmul, 2 * Double(n) * Double(n) * Double(n) / elapsed / 1e9) }
                    }
                }
            }
        }
        return MachinePeak(fmaGFLOPs: fma, matmulGFLOPs: matmul, fmaKernel: fmaKernelName, threads: threads, matrixSize: n)
    }
}

/// Floating-point operations summed over worker threads.
private final class FlopTally: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var total = 0.0
    func add(_ x: Double) { lock.lock(); total += x; lock.unlock() }
}
