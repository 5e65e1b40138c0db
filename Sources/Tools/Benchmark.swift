import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import Foundation

/// `alexnet bench`: the full-size network on random data.
/// Times a training step (forward, loss, backward, SGD update) and inference at batch B, and
/// inference latency at batch 1; reports medians after a warm-up.
public struct Benchmark {
    public struct Options: Sendable {
        public var config = NetworkConfig()
        public var batch = 128
        public var iterations = 5
        public var warmup = 1
        public var profileLayers = false
        /// What the convolutions and linear layers compute in.
        public var precision = Precision.fp32
        /// A folder of preprocessed (256×256) training images: also time training steps fed by
        /// the loader (decoding, the paper's crops, mirroring, lighting, mean) in the same run.
        public var trainData: String?
        /// The mean image and eigenvectors for `trainData` (nil: the published constants, channel mean).
        public var statistics: DatasetStatistics?
        public init() {}
    }

    public struct Result: Sendable {
        public var trainImagesPerSecond = 0.0
        public var inferenceImagesPerSecond = 0.0
        public var latencyMsBatch1 = 0.0
        public var trainGFLOPsPerSecond = 0.0
        public var inferenceGFLOPsPerSecond = 0.0
        public var peakRSSBytes = 0
        public var threads = 0
        public var batch = 0
        /// Forward multiply-accumulates per image (the cost model of docs/DESIGN.md, from the actual shapes).
        public var forwardMACsPerImage = 0.0
        /// (layer, forward s, backward s) per training step, when profiled.
        public var trainLayers: [(name: String, forward: Double, backward: Double)] = []
        public var updateSeconds = 0.0
        public var lossSeconds = 0.0
        public var inferenceLayers: [(name: String, forward: Double)] = []
        /// With `profileLayers`: oneDNN's implementation of each pass of the training network's
        /// layers, and the reorders (layout changes) a training step runs and their time.
        public var implementations: [(layer: String, pass: String, implementation: String)] = []
        public var reordersPerStep = 0.0
        public var reorderSecondsPerStep = 0.0
        /// With `trainData`: training steps through the loader, and the fraction of their time
        /// spent waiting for a batch.
        public var loaderTrainImagesPerSecond: Double?
        public var loaderDataWaitFraction: Double?
        /// With `profileLayers`: the training network's memory plan, and the parameters'
        /// values (float32), gradients and momentum (float32, or bfloat16 in bf16) beside it.
        public var trainingMemoryPlan: BufferPlan?
        public var parameterBytes = 0
    }

    public let options: Options
    public let engine: Engine

    public init(options: Options, engine: Engine) {
        self.options = options
        self.engine = engine
    }

    /// Runs the three measurements; `progress` gets a line per phase.
    public func run(progress: (String) -> Void = { _ in }) throws -> Result {
        try Limits.check(batch: options.batch, flag: "--batch")
        try Limits.check(options.iterations, in: 1...1_000_000, flag: "--iters")
        try Limits.check(options.warmup, in: 0...1_000_000, flag: "--warmup")
        try CPUCapabilities.check(options.precision)
        let config = options.config
        let params = try Network.makeParameters(config, training: options.precision)
        Initialization.paper.apply(to: params, seed: 0)
        var rng = RandomGenerator(seed: 1)
        let macs = config.forwardMACs
        var result = Result()
        result.threads = engine.threads
        result.batch = options.batch
        result.forwardMACsPerImage = macs

        // Training: each network is released before the next is built, so peak memory is the
        // largest phase's, as in a real run.
        do {
            progress("training step, batch \(options.batch)")
            let net = try Network(config: config, batch: options.batch, mode: .training, precision: options.precision, parameters: params,
                                  engine: engine)
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: 2))
            let labels = (0..<options.batch).map { _ in Int(rng.next() % UInt64(config.classes)) }
            let sgd = SGD(for: params, workers: engine.threads)
            let profiler = Profiler()
            var lossTime = 0.0, updateTime = 0.0, iteration = 0, timing = false
            let times = try measure { timed in
                if timed && !timing { engine.resetReorderStatistics(); timing = true }
                net.drawDropoutMasks(seed: 1, epoch: iteration, samples: Array(0..<options.batch))
                iteration += 1
                net.profiler = timed && options.profileLayers ? profiler : nil
                try net.forward()
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try net.loss(labels: labels)
                let t1 = DispatchTime.now().uptimeNanoseconds
                try net.backward()
                let t2 = DispatchTime.now().uptimeNanoseconds
                sgd.step(params)
                let t3 = DispatchTime.now().uptimeNanoseconds
                if timed { lossTime += Double(t1 - t0) / 1e9; updateTime += Double(t3 - t2) / 1e9 }
            }
            let reorders = (count: engine.reorderCount, seconds: engine.reorderSeconds)
            let step = median(times)
            result.trainImagesPerSecond = Double(options.batch) / step
            result.trainGFLOPsPerSecond = 6 * macs * Double(options.batch) / step / 1e9
            if let trainData = options.trainData {
                progress("training step fed by the loader from \(trainData), batch \(options.batch)")
                (result.loaderTrainImagesPerSecond, result.loaderDataWaitFraction) =
                    try loaderFedSteps(trainData, network: net, sgd: sgd, parameters: params)
            }
            if options.profileLayers {
                let n = Double(options.iterations)
                result.trainLayers = profiler.order.map { ($0, (profiler.seconds[$0]?[.forward] ?? 0) / n,
                                                          (profiler.seconds[$0]?[.backward] ?? 0) / n) }
                result.updateSeconds = updateTime / n
                result.lossSeconds = lossTime / n
                result.implementations = net.implementations
                result.trainingMemoryPlan = net.memoryPlan
                result.parameterBytes = params.values.count * MemoryLayout<Float>.stride + 2 * params.grads.bytes
                result.reordersPerStep = Double(reorders.count) / n
                result.reorderSecondsPerStep = reorders.seconds / n
            }
        }
        do {
            progress("inference, batch \(options.batch)")
            let net = try Network(config: config, batch: options.batch, mode: .inference, precision: options.precision, parameters: params,
                                  engine: engine)
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: 3))
            let profiler = Profiler()
            let times = try measure { timed in
                net.profiler = timed && options.profileLayers ? profiler : nil
                try net.forward()
            }
            result.inferenceImagesPerSecond = Double(options.batch) / median(times)
            result.inferenceGFLOPsPerSecond = 2 * macs * result.inferenceImagesPerSecond / 1e9
            if options.profileLayers {
                result.inferenceLayers = profiler.order.map { ($0, (profiler.seconds[$0]?[.forward] ?? 0) / Double(options.iterations)) }
            }
        }
        do {
            progress("inference latency, batch 1")
            let net = try Network(config: config, batch: 1, mode: .inference, precision: options.precision, parameters: params,
                                  engine: engine)
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: 4))
            // Batch-1 runs are short: time more of them for a stable median.
            let times = try measure(iterations: max(options.iterations, 20), warmup: max(options.warmup, 3)) { _ in try net.forward() }
            result.latencyMsBatch1 = median(times) * 1000
        }
        result.peakRSSBytes = peakResidentBytes()
        return result
    }

    /// Training steps whose input comes from the loader, read in place, as `alexnet train` runs
    /// them: the median step time (waiting for data included) and the mean fraction waited.
    private func loaderFedSteps(_ folder: String, network net: Network, sgd: SGD, parameters: ParameterStore) throws -> (Double, Double) {
        let split = try DatasetSplit.open(folder)
        let labels = try LabelMap(train: split).labels(split).map { $0 % options.config.classes }
        var augmentation = Augmentation(statistics: options.statistics ?? .imagenetFallback)
        augmentation.outputSize = options.config.inputSize
        var times: [Double] = [], waits: [Double] = []
        var epoch = 0
        let steps = options.warmup + options.iterations
        while times.count < steps {
            let loader = try BatchLoader(split: split, labels: labels, kind: .training, augmentation: augmentation, batchSize: options.batch,
                                         seed: 1, epoch: epoch, threads: max(1, engine.threads / 4))
            defer { loader.stop() }
            epoch += 1
            while times.count < steps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard let batch = loader.next() else { break }
                if let failure = loader.failures.first { throw failure }
                guard batch.count == options.batch else { continue }   // a short last batch is another network
                let t1 = DispatchTime.now().uptimeNanoseconds
                try net.bindInput(batch.images)
                net.drawDropoutMasks(seed: 1, epoch: epoch, samples: batch.samples)
                try net.forward()
                _ = try net.loss(labels: batch.labels)
                try net.backward()
                sgd.step(parameters)
                try engine.wait()
                let t2 = DispatchTime.now().uptimeNanoseconds
                times.append(Double(t2 - t0) / 1e9)
                waits.append(Double(t1 - t0) / Double(t2 - t0))
            }
            guard epoch < 1000 else { throw DatasetError(message: "\(folder): fewer images than one batch of \(options.batch)") }
        }
        let timed = Array(times.dropFirst(options.warmup)), waited = Array(waits.dropFirst(options.warmup))
        return (Double(options.batch) / median(timed), waited.reduce(0, +) / Double(waited.count))
    }

    private func measure(iterations: Int? = nil, warmup: Int? = nil, _ body: (_ timed: Bool) throws -> Void) throws -> [Double] {
        for _ in 0..<(warmup ?? options.warmup) { try body(false) }
        var times: [Double] = []
        for _ in 0..<(iterations ?? options.iterations) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body(true)
            try engine.wait()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Peak resident set size of this process so far: the kernel's high-water mark of its address
/// space (VmHWM in /proc/self/status, KiB), or where that cannot be read, getrusage's. Linux
/// carries getrusage's maximum across exec, so a child process started by a large parent would
/// report the parent's peak; VmHWM belongs to the new address space alone.
public func peakResidentBytes() -> Int {
    if let status = procFile("/proc/self/status"),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kib = Int(line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") {
        return kib * 1024
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// The text of a /proc file, read to its end (such files report a size of 0, so readers that
/// trust the size read nothing).
private func procFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return nil }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
