import AlexNet
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the full-size network (1000 classes, 224×224) on random data.",
        discussion: """
        Measures a training step (forward, loss, backward, SGD update) and inference at batch B, \
        and inference latency at batch 1: warm-up first, then the median of --iters runs. \
        GFLOP/s uses SPEC section 7's cost model (a training step is three forward passes).
        """
    )

    @Option(name: .shortAndLong, help: "Batch size for the training step and batch inference.")
    var batch = 128

    @Option(help: "Timed repetitions per measurement (the median is reported).")
    var iters = 5

    @Option(help: "Untimed warm-up repetitions before timing.")
    var warmup = 1

    @Option(help: "Network variant: paper or seed.")
    var variant: String = "paper"

    @Option(name: .shortAndLong, help: "Time the network of this training configuration's model section instead of the full-size one (with --data: its input size).")
    var config: String?

    @Flag(help: "Also print the time of each layer's forward and backward pass.")
    var layers = false

    @Flag(help: "Print one JSON object on the last line.")
    var json = false

    @Option(help: "Machine FMA peak in GFLOP/s, for the fraction-of-peak column (measured here: about 230).")
    var peakGflops: Double = 230

    @Option(help: "Instead of the network, time the input pipeline on this folder of preprocessed (256×256) images.")
    var data: String?

    @Option(help: "With --data: batch size of the ten-crop validation batches (the seed's peer script uses 32).")
    var valBatch = 32

    @Option(help: "With --data or --train-data: a statistics file (alexnet stats) for the mean image and lighting.")
    var stats: String?

    @Option(help: "Also time training steps fed by the loader from this folder of preprocessed (256×256) images, with the paper's augmentation, against the synthetic step in the same run.")
    var trainData: String?

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if iters < 1 { throw ValidationError("--iters must be at least 1, got \(iters)") }
        if warmup < 0 { throw ValidationError("--warmup must not be negative, got \(warmup)") }
        if Variant(rawValue: variant) == nil { throw ValidationError("--variant must be paper or seed, got '\(variant)'") }
    }

    func run() throws {
        if let data { return try runLoader(data) }
        var options = Benchmark.Options()
        options.batch = batch
        options.iterations = iters
        options.warmup = warmup
        options.profileLayers = layers
        options.trainData = trainData
        options.statistics = try stats.map { try DatasetStatistics(file: $0) }
        options.config.variant = Variant(rawValue: variant)!
        if let config {
            do { options.config = try TrainingConfig.load(file: config).model } catch { throw usageError(error) }
        }
        let engine = try compute.makeEngine()
        let r = try Benchmark(options: options, engine: engine).run { line in
            FileHandle.standardError.write(Data("bench: \(line)…\n".utf8))
        }
        let f = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        print("AlexNet \(options.config.variant.rawValue), \(r.threads) threads, batch \(r.batch), \(f(2 * r.forwardMACsPerImage / 1e9, 2)) GFLOP forward per image")
        print(pad("measurement", 30) + pad("value", 16) + "GFLOP/s (fraction of \(f(peakGflops, 0)) peak)")
        print(pad("training step", 30) + pad("\(f(r.trainImagesPerSecond, 2)) img/s", 16)
              + "\(f(r.trainGFLOPsPerSecond, 1)) (\(f(100 * r.trainGFLOPsPerSecond / peakGflops, 1)) %)")
        print(pad("inference", 30) + pad("\(f(r.inferenceImagesPerSecond, 2)) img/s", 16)
              + "\(f(r.inferenceGFLOPsPerSecond, 1)) (\(f(100 * r.inferenceGFLOPsPerSecond / peakGflops, 1)) %)")
        if let fed = r.loaderTrainImagesPerSecond, let wait = r.loaderDataWaitFraction {
            print(pad("training step, from the loader", 30) + pad("\(f(fed, 2)) img/s", 16)
                  + "\(f(100 * fed / r.trainImagesPerSecond, 1)) % of the synthetic step; \(f(100 * wait, 1)) % waiting for data")
        }
        print(pad("latency, batch 1", 30) + "\(f(r.latencyMsBatch1, 1)) ms")
        print(pad("peak resident memory", 30) + "\(f(Double(r.peakRSSBytes) / 1e9, 2)) GB")
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
        }
        if json {
            let fields: [(String, String)] = [
                ("train_images_per_second", f(r.trainImagesPerSecond, 3)),
                ("inference_images_per_second", f(r.inferenceImagesPerSecond, 3)),
                ("latency_ms_batch1", f(r.latencyMsBatch1, 3)),
                ("train_gflops_per_second", f(r.trainGFLOPsPerSecond, 2)),
                ("inference_gflops_per_second", f(r.inferenceGFLOPsPerSecond, 2)),
                ("peak_rss_bytes", "\(r.peakRSSBytes)"),
                ("threads", "\(r.threads)"),
                ("batch", "\(r.batch)"),
                ("variant", "\"\(options.config.variant.rawValue)\""),
            ] + (r.loaderTrainImagesPerSecond.map { [("loader_train_images_per_second", f($0, 3)),
                                                     ("loader_data_wait_fraction", f(r.loaderDataWaitFraction ?? 0, 4))] } ?? [])
            print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        }
    }

    func runLoader(_ directory: String) throws {
        let threads = compute.threads ?? ProcessInfo.processInfo.activeProcessorCount
        var inputSize = 224
        if let config {
            do { inputSize = try TrainingConfig.load(file: config).model.inputSize } catch { throw usageError(error) }
        }
        let r = try LoaderBenchmark.run(directory: directory, threads: threads, batchSize: batch, valBatchSize: valBatch,
                                        statistics: try stats.map { try DatasetStatistics(file: $0) }, outputSize: inputSize)
        print("input pipeline on \(r.images) images, \(inputSize)×\(inputSize) crops, \(threads) threads, batch \(batch) (ten-crop validation: \(valBatch))")
        print(pad("training batches", 30) + String(format: "%.1f img/s per core", r.trainImagesPerSecondPerCore))
        print(pad("ten-crop validation batches", 30) + String(format: "%.1f img/s per core", r.valImagesPerSecondPerCore))
        if json {
            print(String(format: "{\"loader_train_images_per_second_per_core\": %.2f, \"loader_val_images_per_second_per_core\": %.2f, \"threads\": %d}",
                         r.trainImagesPerSecondPerCore, r.valImagesPerSecondPerCore, threads))
        }
    }
}
