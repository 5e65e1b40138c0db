import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the full-size network (1000 classes, 224×224) on random data.",
        discussion: """
        Measures a training step (forward, loss, backward, SGD update) and inference at batch B, \
        and inference latency at batch 1: warm-up first, then the median of --iters runs. \
        GFLOP/s uses the cost model of docs/DESIGN.md (a training step is three forward passes); the \
        fraction of peak is of the machine's peak measured at start-up, the better of an FMA \
        kernel on every thread and a large oneDNN matrix multiply (--peak prints both and exits). \
        The model counts a direct convolution's multiply-adds: where convolutions run by \
        Winograd's algorithms (float32 at batch 4 or more, wide enough layers: \
        ours:winograd_… in --layers, with fewer multiplies than the model counts), the figures \
        are direct-equivalent. \
        With --data, times the input pipeline instead; the options of the network measurement \
        are then refused, as --val-batch is without --data.
        """
    )

    @Option(name: .shortAndLong, help: "Batch size for the training step and batch inference (with --data: of the training batches).")
    var batch = 128

    @Option(help: "Timed repetitions per measurement (the median is reported; default 5).")
    var iters: Int?

    @Option(help: "Untimed warm-up repetitions before timing (default 1).")
    var warmup: Int?

    @Option(help: "Network variant (default: paper).")
    var variant: Variant?

    @Option(name: .shortAndLong, help: "Time the network of this training configuration's model section instead of the full-size one (with --data: its input size).")
    var config: String?

    @Flag(help: "Also print the time of each layer's forward and backward pass.")
    var layers = false

    @Flag(help: "Print one JSON object on the last line.")
    var json = false

    @Flag(help: "Only measure and print the machine's peak (the FMA kernel and the oneDNN matrix multiply).")
    var peak = false

    @Option(help: "Machine peak in GFLOP/s for the fraction-of-peak column, instead of measuring it.")
    var peakGflops: Double?

    @Option(help: "Instead of the network, time the input pipeline on this folder of preprocessed (256×256) images.")
    var data: String?

    @Option(help: "With --data: batch size of the ten-crop validation batches (default 32, as the seed's peer script).")
    var valBatch: Int?

    @Option(help: "With --data or --train-data: a statistics file (alexnet stats) for the mean image and lighting.")
    var stats: String?

    @Option(help: "Also time training steps fed by the loader from this folder of preprocessed (256×256) images, with the paper's augmentation, against the synthetic step in the same run.")
    var trainData: String?

    @Flag(help: "Under mpirun: time the allreduce of the full-size network's gradient (62 378 344 floats) over the ranks instead (the median of --iters).")
    var allreduce = false

    /// What each precision's child process runs (see `MemoryBenchmark`).
    @Option(help: .hidden)
    var peakMemoryChild: Precision?

    @OptionGroup var compute: ComputeOptions

    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        try validating { try Limits.check(batch: batch, flag: "--batch") }
        if let iters { try validating { try Limits.check(iters, in: 1...1_000_000, flag: "--iters") } }
        if let warmup { try validating { try Limits.check(warmup, in: 0...1_000_000, flag: "--warmup") } }
        if let valBatch { try validating { try Limits.check(batch: valBatch, flag: "--val-batch") } }
        if let peakGflops, !(peakGflops > 0 && peakGflops.isFinite) {
            throw ValidationError("--peak-gflops must be a positive number, got \(peakGflops)")
        }
        // Options that the chosen measurement would ignore are refused.
        let networkOnly: [(String, Bool)] = [("--iters", iters != nil), ("--warmup", warmup != nil), ("--variant", variant != nil),
                                             ("--layers", layers), ("--peak", peak), ("--peak-gflops", peakGflops != nil),
                                             ("--train-data", trainData != nil), ("--precision", precision.precision != nil)]
        if data != nil, let given = networkOnly.first(where: \.1) {
            throw ValidationError("\(given.0) does not apply to --data (the input pipeline's benchmark)")
        }
        if allreduce, let given = [("--data", data != nil), ("--layers", layers), ("--train-data", trainData != nil), ("--peak", peak),
                                   ("--config", config != nil), ("--variant", variant != nil),
                                   ("--precision", precision.precision != nil)].first(where: \.1) {
            throw ValidationError("\(given.0) does not apply to --allreduce (which times no network)")
        }
        if data == nil, valBatch != nil { throw ValidationError("--val-batch applies only with --data") }
        if data == nil, trainData == nil, stats != nil { throw ValidationError("--stats applies only with --data or --train-data") }
        if peak, let given = [("--layers", layers), ("--train-data", trainData != nil), ("--peak-gflops", peakGflops != nil),
                              ("--config", config != nil), ("--precision", precision.precision != nil)].first(where: \.1) {
            throw ValidationError("\(given.0) does not apply to --peak (which times no network)")
        }
    }

    func run() throws {
        if let data { return try runLoader(data) }
        try CPUCapabilities.check(precision.value)
        if allreduce { return try runAllreduce() }
        let engine = try compute.makeEngine()
        if let child = peakMemoryChild {
            let bytes = try MemoryBenchmark.measure(config: try networkConfig(), batch: batch, precision: child, engine: engine)
            print(MemoryBenchmark.childLinePrefix + "\(bytes)")
            return
        }
        let f = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        let measured: MachinePeak?
        if peakGflops == nil {
            FileHandle.standardError.write(Data("bench: the machine's peak (FMA kernel, oneDNN matrix multiply)…\n".utf8))
            measured = try MachinePeak.measure(engine: engine)
        } else {
            measured = nil
        }
        if peak, let m = measured {
            print("peak on \(m.threads) threads: FMA kernel (\(m.fmaKernel)) \(f(m.fmaGFLOPs, 1)) GFLOP/s, "
                  + "oneDNN \(m.matrixSize)³ matrix multiply \(f(m.matmulGFLOPs, 1)) GFLOP/s")
            if json { print(jsonLine(PeakJSON(m))) }
            return
        }
        let peakValue = peakGflops ?? measured?.gflops ?? 0
        var options = Benchmark.Options()
        options.batch = batch
        options.iterations = iters ?? 5
        options.warmup = warmup ?? 1
        options.profileLayers = layers
        options.precision = precision.value
        options.trainData = trainData
        options.statistics = try stats.map { try DatasetStatistics(file: $0) }
        options.config = try networkConfig()
        let r = try Benchmark(options: options, engine: engine).run { line in
            FileHandle.standardError.write(Data("bench: \(line)…\n".utf8))
        }
        // Each precision's peak memory from a child process of its own, side by side.
        var precisionPeaks: [Precision: Int] = [:]
        var bf16Skipped: String?
        for p in Precision.allCases {
            if p == .bf16 && !CPUCapabilities.hasNativeBF16 {
                bf16Skipped = "this CPU has no AVX-512 BF16 or AMX (oneDNN reports \(CPUCapabilities.isa))"
                continue
            }
            FileHandle.standardError.write(Data("bench: peak memory of \(p.rawValue) in a child process…\n".utf8))
            precisionPeaks[p] = try MemoryBenchmark.inChild(arguments: childArguments(p))
        }
        print("AlexNet \(options.config.variant.rawValue), \(options.precision.rawValue), \(r.threads) threads, batch \(r.batch), \(f(2 * r.forwardMACsPerImage / 1e9, 2)) GFLOP forward per image")
        if let m = measured {
            print("peak \(f(m.gflops, 1)) GFLOP/s: FMA kernel (\(m.fmaKernel)) \(f(m.fmaGFLOPs, 1)), oneDNN \(m.matrixSize)³ matrix multiply \(f(m.matmulGFLOPs, 1))")
        }
        // The peak is float32's: a bf16 run's fraction may exceed what float32 could reach.
        print(pad("measurement", 30) + pad("value", 16) + "GFLOP/s (fraction of \(f(peakValue, 0)) fp32 peak)")
        print(pad("training step", 30) + pad("\(f(r.trainImagesPerSecond, 2)) img/s", 16)
              + "\(f(r.trainGFLOPsPerSecond, 1)) (\(f(100 * r.trainGFLOPsPerSecond / peakValue, 1)) %)")
        print(pad("inference", 30) + pad("\(f(r.inferenceImagesPerSecond, 2)) img/s", 16)
              + "\(f(r.inferenceGFLOPsPerSecond, 1)) (\(f(100 * r.inferenceGFLOPsPerSecond / peakValue, 1)) %)")
        if let fed = r.loaderTrainImagesPerSecond, let wait = r.loaderDataWaitFraction {
            print(pad("training step, from the loader", 30) + pad("\(f(fed, 2)) img/s", 16)
                  + "\(f(100 * fed / r.trainImagesPerSecond, 1)) % of the synthetic step; \(f(100 * wait, 1)) % waiting for data")
        }
        print(pad("latency, batch 1", 30) + "\(f(r.latencyMsBatch1, 1)) ms")
        print(pad("peak resident memory", 30) + "\(f(Double(r.peakRSSBytes) / 1e9, 2)) GB (this process)")
        if let fp32 = precisionPeaks[.fp32] {
            let bf16 = precisionPeaks[.bf16].map { "bf16 \(f(Double($0) / 1e9, 2)) GB (\(f(Double($0) / Double(fp32), 2))× fp32)" }
            print(pad("peak memory per precision", 30) + "fp32 \(f(Double(fp32) / 1e9, 2)) GB, "
                  + (bf16 ?? "bf16 skipped: \(bf16Skipped ?? "")") + "; each in a process of its own")
        }
        if layers {
            print("\nper layer, training step at batch \(r.batch) (ms):")
            print(pad("layer", 14) + pad("forward", 12) + pad("backward", 12) + "inference forward")
            let inf = Dictionary(r.inferenceLayers.map { ($0.name, $0.forward) }, uniquingKeysWith: { a, _ in a })
            for l in r.trainLayers {
                print(pad(l.name, 14) + pad(f(l.forward * 1000, 1), 12) + pad(f(l.backward * 1000, 1), 12)
                      + (inf[l.name].map { f($0 * 1000, 1) } ?? "-"))
            }
            print(pad("loss", 14) + f(r.lossSeconds * 1000, 1))
            print(pad("SGD update", 14) + f(r.updateSeconds * 1000, 1))
            let total = r.trainLayers.reduce(0) { $0 + $1.forward + $1.backward } + r.updateSeconds + r.lossSeconds
            print(pad("sum", 14) + f(total * 1000, 1))
            print("reorders (weights into the kernels' layouts, tensors between layers' layouts): "
                  + "\(f(r.reordersPerStep, 0)) per training step, \(f(r.reorderSecondsPerStep * 1000, 1)) ms of the step")
            if let plan = r.trainingMemoryPlan {
                let gb = { (b: Int) in f(Double(b) / 1e9, 3) + " GB" }
                print("\nmemory of the training network: parameters, gradients and momentum \(gb(r.parameterBytes)); "
                      + "arena \(gb(plan.size)) for \(plan.requests.count) buffers (\(gb(plan.unplannedBytes)) if each had its own; "
                      + "\(gb(plan.liveBytesLowerBound)) live at step \(plan.busiestStep?.step ?? 0)). Largest buffers (lifetime, steps):")
                for (request, offset) in zip(plan.requests, plan.offsets).sorted(by: { $0.0.bytes > $1.0.bytes }).prefix(16) {
                    print("  " + pad(gb(request.bytes), 12) + pad("at \(f(Double(offset) / 1e9, 3))", 10)
                          + request.name + " " + request.steps.map { "\($0.lowerBound)–\($0.upperBound)" }.joined(separator: ","))
                }
            }
            print("\nimplementations, oneDNN's or ours (training network):")
            for layer in r.implementations.map(\.layer).reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
                let passes = r.implementations.filter { $0.layer == layer }.map { "\($0.pass) \($0.implementation)" }
                print(pad(layer, 14) + passes.joined(separator: ", "))
            }
        }
        if json {
            print(jsonLine(NetworkJSON(r, variant: options.config.variant, precision: options.precision, peak: peakValue, measured: measured,
                                       precisionPeaks: precisionPeaks)))
        }
    }

    /// The network this command times: the configuration file's model, or the full-size one of `--variant`.
    func networkConfig() throws -> NetworkConfig {
        var network = NetworkConfig(variant: variant ?? .paper)
        if let config {
            do { network = try TrainingConfig.load(file: config).model } catch { throw usageError(error) }
            if let variant { network.variant = variant }
        }
        return network
    }

    /// This command's network, batch and threads, measured for peak memory in `precision`.
    func childArguments(_ precision: Precision) -> [String] {
        ["bench", "--peak-memory-child", precision.rawValue, "--batch", "\(batch)", "--threads", "\(compute.count)"]
            + (variant.map { ["--variant", $0.rawValue] } ?? []) + (config.map { ["--config", $0] } ?? [])
    }

    func runLoader(_ directory: String) throws {
        let threads = compute.count
        let valBatch = valBatch ?? 32
        var inputSize = 224
        if let config {
            do { inputSize = try TrainingConfig.load(file: config).model.inputSize } catch { throw usageError(error) }
        }
        let r = try LoaderBenchmark.run(directory: directory, threads: threads, batchSize: batch, valBatchSize: valBatch,
                                        statistics: try stats.map { try DatasetStatistics(file: $0) }, outputSize: inputSize)
        print("input pipeline on \(r.images) images, \(inputSize)×\(inputSize) crops, \(threads) threads, batch \(batch) (ten-crop validation: \(valBatch))")
        print(pad("training batches", 30) + String(format: "%.1f img/s per core", r.trainImagesPerSecondPerCore))
        print(pad("ten-crop validation batches", 30) + String(format: "%.1f img/s per core", r.valImagesPerSecondPerCore))
        if json { print(jsonLine(LoaderJSON(r, threads: threads))) }
    }
}

/// `bench --json`, the network measurement: the keys of earlier versions, plus the peak.
private struct NetworkJSON: Encodable {
    let train_images_per_second, inference_images_per_second, latency_ms_batch1: JSONNullable<Double>
    let train_gflops_per_second, inference_gflops_per_second: JSONNullable<Double>
    let peak_rss_bytes, threads, batch: Int
    let variant, precision: String
    let loader_train_images_per_second, loader_data_wait_fraction: JSONNullable<Double>?
    let peak_gflops: JSONNullable<Double>
    let fma_peak_gflops, matmul_peak_gflops: JSONNullable<Double>?
    let fma_kernel: String?
    /// With --layers: "conv2 forward" → "jit:avx2", and the reorders of a training step.
    let implementations: [String: String]?
    let reorders_per_training_step, reorder_ms_per_training_step: JSONNullable<Double>?
    /// Each precision's peak from a child process; bf16 null where the CPU cannot run it.
    let peak_rss_bytes_fp32, peak_rss_bytes_bf16: Int?

    init(_ r: Benchmark.Result, variant: Variant, precision: Precision, peak: Double, measured: MachinePeak?,
         precisionPeaks: [Precision: Int]) {
        (peak_rss_bytes_fp32, peak_rss_bytes_bf16) = (precisionPeaks[.fp32], precisionPeaks[.bf16])
        (train_images_per_second, inference_images_per_second) = (rounded(r.trainImagesPerSecond, 3), rounded(r.inferenceImagesPerSecond, 3))
        latency_ms_batch1 = rounded(r.latencyMsBatch1, 3)
        (train_gflops_per_second, inference_gflops_per_second) = (rounded(r.trainGFLOPsPerSecond, 2), rounded(r.inferenceGFLOPsPerSecond, 2))
        (peak_rss_bytes, threads, batch) = (r.peakRSSBytes, r.threads, r.batch)
        self.variant = variant.rawValue
        self.precision = precision.rawValue
        loader_train_images_per_second = r.loaderTrainImagesPerSecond.map { rounded($0, 3) }
        loader_data_wait_fraction = r.loaderDataWaitFraction.map { rounded($0, 4) }
        peak_gflops = rounded(peak, 2)
        fma_peak_gflops = measured.map { rounded($0.fmaGFLOPs, 2) }
        matmul_peak_gflops = measured.map { rounded($0.matmulGFLOPs, 2) }
        fma_kernel = measured?.fmaKernel
        let layered = !r.implementations.isEmpty
        implementations = layered ? Dictionary(r.implementations.map { ("\($0.layer) \($0.pass)", $0.implementation) }, uniquingKeysWith: { a, _ in a }) : nil
        reorders_per_training_step = layered ? rounded(r.reordersPerStep, 1) : nil
        reorder_ms_per_training_step = layered ? rounded(r.reorderSecondsPerStep * 1000, 3) : nil
    }
}

/// `bench --peak --json`.
private struct PeakJSON: Encodable {
    let peak_gflops, fma_peak_gflops, matmul_peak_gflops: JSONNullable<Double>
    let fma_kernel: String
    let threads, matrix_size: Int
    init(_ m: MachinePeak) {
        (peak_gflops, fma_peak_gflops, matmul_peak_gflops) = (rounded(m.gflops, 2), rounded(m.fmaGFLOPs, 2), rounded(m.matmulGFLOPs, 2))
        (fma_kernel, threads, matrix_size) = (m.fmaKernel, m.threads, m.matrixSize)
    }
}

/// `bench --data --json`.
private struct LoaderJSON: Encodable {
    let loader_train_images_per_second_per_core, loader_val_images_per_second_per_core: JSONNullable<Double>
    let threads: Int
    init(_ r: LoaderBenchmark.Result, threads: Int) {
        loader_train_images_per_second_per_core = rounded(r.trainImagesPerSecondPerCore, 2)
        loader_val_images_per_second_per_core = rounded(r.valImagesPerSecondPerCore, 2)
        self.threads = threads
    }
}

extension Bench {
    func runAllreduce() throws {
        let communicator = try Communicator.join()
        defer { communicator.finalize() }
        let r = try AllreduceBenchmark.run(communicator: communicator, iterations: iters ?? 5, warmup: warmup ?? 1)
        guard communicator.isRoot else { return }
        let mb = Double(r.floats * 4) / 1e6
        print(String(format: "allreduce of %d floats (%.1f MB) on %d ranks: %.4f s (median of %d), bus bandwidth %.2f GB/s",
                     r.floats, mb, r.ranks, r.seconds, iters ?? 5, r.busGigabytesPerSecond))
        if json {
            print(jsonLine(["ranks": Double(r.ranks), "floats": Double(r.floats), "seconds": r.seconds, "bus_gigabytes_per_second": r.busGigabytesPerSecond]))
        }
    }
}
