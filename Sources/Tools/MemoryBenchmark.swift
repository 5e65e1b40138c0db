import AlexNetCore
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import Foundation

/// Peak resident memory of a precision's training and inference, measured so that precisions
/// can be compared in one `bench` run: each precision runs in a child process of the same
/// binary, whose high-water mark (`getrusage`) counts that precision's networks alone, from a
/// fresh address space, with nothing the parent measured before it (the machine's peak, the
/// other precision's networks) left on the heap.
public enum MemoryBenchmark {
    /// What the child runs: the training network for two steps (forward, loss, backward, SGD),
    /// then batch inference and inference at batch 1, each network released before the next, as
    /// `Benchmark.run` does; returns this process's peak resident bytes.
    public static func measure(config: NetworkConfig, batch: Int, precision: Precision, engine: Engine) throws -> Int {
        try CPUCapabilities.check(precision)
        let parameters = try Network.makeParameters(config, training: precision)
        Initialization.paper.apply(to: parameters, seed: 0)
        do {
            let net = try Network(config: config, batch: batch, mode: .training, precision: precision, parameters: parameters,
                                  engine: engine)
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: 2))
            let sgd = SGD(for: parameters, workers: engine.threads)
            for step in 0..<2 {
                net.drawDropoutMasks(seed: 1, epoch: step, samples: Array(0..<batch))
                try net.forward()
                _ = try net.loss(labels: (0..<batch).map { $0 % config.classes })
                try net.backward()
                _ = sgd.step(parameters)
            }
        }
        for b in [batch, 1] {
            let net = try Network(config: config, batch: b, mode: .inference, precision: precision, parameters: parameters,
                                  engine: engine)
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: 3))
            try net.forward()
        }
        try engine.wait()
        return peakResidentBytes()
    }

    /// The line a child prints last, with the bytes after it.
    public static let childLinePrefix = "peak_rss_bytes "

    /// Runs this binary with `arguments` (a command that ends in `measure` and prints its result
    /// after `childLinePrefix`) and returns the bytes it reports.
    public static func inChild(arguments: [String]) throws -> Int {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
              let line = text.split(separator: "\n").last(where: { $0.hasPrefix(childLinePrefix) }),
              let bytes = Int(line.dropFirst(childLinePrefix.count)) else {
            throw MemoryBenchmarkError(arguments: arguments, status: process.terminationStatus)
        }
        return bytes
    }
}

/// A child process that did not report its peak memory.
public struct MemoryBenchmarkError: DescribedError {
    public let arguments: [String]
    public let status: Int32
    public var description: String {
        "the memory measurement in a child process (alexnet \(arguments.joined(separator: " "))) failed with exit status \(status)"
    }
}
