import AlexNetCore
import AlexNetModel
import AlexNetTraining
import Foundation

/// The time to sum one training step's gradient over the ranks (docs/PERFORMANCE.md, Many
/// processes): the allreduce of `floats` floats (by default the full-size network's 62 378 344
/// parameters, 249.5 MB), the same call the trainer makes, repeated after a warm-up; every rank
/// reports the same median of the ranks' mean times. The bus bandwidth is what ring allreduce moves
/// per rank, 2(n − 1)/n of the buffer, divided by the time: the figure to compare with a network's
/// line rate.
public struct AllreduceBenchmark {
    public struct Result: Sendable {
        public var ranks: Int
        public var floats: Int
        public var seconds: Double
        public var busGigabytesPerSecond: Double
    }

    public static func run(communicator: Communicator, floats: Int = NetworkConfig().parameterCount,
                           iterations: Int = 5, warmup: Int = 1) throws -> Result {
        let buffer = FloatBuffer(count: floats)
        for i in 0..<floats { buffer.pointer[i] = Float(i % 7) }
        var times: [Double] = []
        for i in 0..<(warmup + iterations) {
            // Every rank starts together, so each time is the operation's and not a late rank's.
            var ready = [0.0]
            try communicator.sum(&ready, what: "the start signal")
            let t0 = DispatchTime.now().uptimeNanoseconds
            try communicator.sumAndWait(buffer.pointer, count: floats, what: "the benchmark's gradient")
            var elapsed = [Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9]
            // The ranks' mean (they finish within microseconds of each other).
            try communicator.sum(&elapsed, what: "the timings")
            if i >= warmup { times.append(elapsed[0] / Double(communicator.size)) }
        }
        let median = times.sorted()[times.count / 2]
        let n = Double(communicator.size)
        let bytes = Double(floats * MemoryLayout<Float>.stride)
        return Result(ranks: communicator.size, floats: floats, seconds: median,
                      busGigabytesPerSecond: communicator.size > 1 ? 2 * (n - 1) / n * bytes / median / 1e9 : 0)
    }
}
