import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import Foundation

/// One epoch's results, kept in every checkpoint so a resumed run's summary covers the whole run.
public struct EpochRecord: Codable, Sendable, Equatable {
    /// Counted from 1; 0 is the evaluation before training.
    public var epoch: Int
    public var trainLoss: Double?
    public var validation: EvaluationResult?
    public var lr: Double
    public var seconds: Double
    public var imagesPerSecond: Double?
}

/// Everything besides tensors that a resumed run needs to continue the same trajectory. All
/// randomness derives from (seed, epoch, sample index), so no generator state needs saving
/// beyond the position: `epoch` and `batch`.
public struct TrainingState: Codable, Sendable, Equatable {
    public var runName: String
    public var seed: UInt64
    /// Epochs completed.
    public var epoch = 0
    /// Batches of epoch `epoch + 1` already trained (mid-epoch checkpoints); 0 at a boundary.
    public var batch = 0
    public var sgdSteps = 0
    public var schedule: LearningRateSchedule
    /// The best watched metric so far and the epoch that had it.
    public var best: Double?
    public var bestEpoch: Int?
    /// Σ loss × images over the current epoch's batches so far, and the images (exact resume of
    /// the epoch's reported training loss).
    public var epochLossSum = 0.0
    public var epochImages = 0
    public var history: [EpochRecord] = []

    public init(runName: String, seed: UInt64, schedule: LearningRateSchedule) {
        (self.runName, self.seed, self.schedule) = (runName, seed, schedule)
    }
}

extension TrainingState {
    /// Throws unless this state is one a run of `epochs` epochs can continue from: a position
    /// inside the run, counts that are not negative, and a finite positive learning rate
    /// (`source` names the file in the error). A checkpoint holds what a run wrote, but a file
    /// can be edited or damaged: an epoch of −7 would train epochs "−6/5", one of 2⁶² nothing.
    public func check(source: String, epochs: Int) throws {
        func fail(_ key: String, _ message: String) -> ConfigurationError { ConfigurationError(source: source, key: key, message: message) }
        guard epoch >= 0 else { throw fail("epoch", "is \(epoch); a checkpoint's completed epochs are 0 or more") }
        guard epoch <= epochs else {
            throw fail("epoch", "the checkpoint has completed \(epoch) epochs, more than training.epochs = \(epochs); set training.epochs to at least \(epoch) to continue it")
        }
        for (key, value) in [("batch", batch), ("sgd_steps", sgdSteps), ("epoch_images", epochImages), ("schedule.epochs", schedule.state.epochs),
                             ("schedule.bad_epochs", schedule.state.badEpochs), ("schedule.cooldown", schedule.state.cooldownCounter),
                             ("schedule.drops", schedule.state.drops)] where value < 0 {
            throw fail(key, "is \(value); it cannot be negative")
        }
        guard schedule.state.lr.isFinite, schedule.state.lr > 0 else {
            throw fail("learning rate", "is \(schedule.state.lr); it must be a finite number > 0")
        }
        if let best, !best.isFinite { throw fail("best", "is \(best); a metric must be finite") }
        guard epochLossSum.isFinite else { throw fail("epoch_loss_sum", "is \(epochLossSum); it must be finite") }
    }
}

/// A training checkpoint (docs/DESIGN.md, Files): a safetensors file holding the parameters under
/// their native names (`conv1.weight` … `fc8.bias`), the momentum buffers (`momentum.<name>`), the
/// weights at the start of the epoch when written mid-epoch (`epoch_start.<name>`, for the epoch's
/// weight-change log), the normalisation statistics (`statistics.*`), and in its metadata the
/// training state, the network, the full configuration and the class names.
public enum Checkpoint {
    public static let format = "alexnet-checkpoint"

    public struct Contents {
        public var state: TrainingState
        public var network: NetworkConfig
        public var configYAML: String
        public var classes: [String]
        public var statistics: DatasetStatistics?
        public var mean: MeanMode
        public let file: SafetensorsFile
    }

    public static func write(to path: String, state: TrainingState, network: NetworkConfig, configYAML: String, classes: [String],
                             statistics: DatasetStatistics?, mean: MeanMode, parameters: ParameterStore, momentum: NumberBuffer,
                             epochStart: FloatBuffer?) throws {
        let json = JSONEncoder()
        json.outputFormatting = [.sortedKeys]
        func text<T: Encodable>(_ value: T) throws -> String { String(decoding: try json.encode(value), as: UTF8.self) }
        var w = SafetensorsWriter(metadata: [
            "format": format, "version": "1", "state": try text(state), "network": try text(network),
            "config": configYAML, "classes": try text(classes), "variant": network.variant.rawValue, "mean": mean.rawValue,
        ])
        func add(_ prefix: String, _ buffer: FloatBuffer) {
            for e in parameters.entries {
                w.add(prefix + e.name, floats: UnsafeBufferPointer(start: buffer.pointer + e.offset, count: e.count), shape: e.shape)
            }
        }
        add("", parameters.values)
        // Momentum is written as float32 whatever the run keeps (bfloat16 widens exactly), so
        // a checkpoint resumes in either precision.
        for e in parameters.entries {
            momentum.read(e.offset, e.count).withUnsafeBufferPointer { w.add("momentum." + e.name, floats: $0, shape: e.shape) }
        }
        if let epochStart { add("epoch_start.", epochStart) }
        if let statistics, statistics.size > 0 {
            w.add("statistics.mean_image", Tensor(shape: [statistics.size, statistics.size, 3], data: statistics.meanImage))
            w.add("statistics.channel_mean", doubles: statistics.channelMean, shape: [3])
            w.add("statistics.eigenvalues", doubles: statistics.eigenvalues, shape: [3])
            w.add("statistics.eigenvectors", doubles: statistics.eigenvectors.flatMap { $0 }, shape: [3, 3])
            w.metadata["statistics_images"] = "\(statistics.imageCount)"
        }
        try w.write(to: path)
    }

    /// Reads a checkpoint's metadata (tensors stay in the mapped file until asked for).
    public static func read(_ path: String) throws -> Contents {
        try read(try SafetensorsFile(path: path), path: path)
    }

    /// Whether `file` says it is a checkpoint; its metadata must then be whole and valid (`read`).
    public static func isCheckpoint(_ file: SafetensorsFile) -> Bool { file.metadata["format"] == format }

    static func read(_ file: SafetensorsFile, path: String) throws -> Contents {
        guard isCheckpoint(file) else {
            throw SafetensorsError(path: path, tensor: nil, reason: "not an alexnet training checkpoint (no format=\(format) in its metadata)")
        }
        func decode<T: Decodable>(_ key: String, _ type: T.Type) throws -> T {
            guard let s = file.metadata[key] else { throw SafetensorsError(path: path, tensor: nil, reason: "metadata '\(key)' missing") }
            do { return try JSONDecoder().decode(type, from: Data(s.utf8)) } catch {
                throw SafetensorsError(path: path, tensor: nil, reason: "metadata '\(key)' is not valid (\(error))")
            }
        }
        let statistics = file.tensors["statistics.mean_image"] == nil ? nil
            : try DatasetStatistics(reading: file, path: path, prefix: "statistics.")
        let network = try decode("network", NetworkConfig.self)
        let classes = try decode("classes", [String].self)
        guard classes.count == network.classes else {
            throw SafetensorsError(path: path, tensor: nil, reason: "metadata 'classes' names \(classes.count) classes, but 'network' has \(network.classes) outputs")
        }
        guard let config = file.metadata["config"] else { throw SafetensorsError(path: path, tensor: nil, reason: "metadata 'config' missing") }
        guard let mean = MeanMode(rawValue: file.metadata["mean"] ?? "") else {
            throw SafetensorsError(path: path, tensor: nil, reason: "metadata 'mean' is '\(file.metadata["mean"] ?? "")', expected \(MeanMode.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        return Contents(state: try decode("state", TrainingState.self), network: network, configYAML: config, classes: classes,
                        statistics: statistics, mean: mean, file: file)
    }

    /// Copies the tensors named `prefix + parameter` into `buffer` (laid out like `parameters`).
    public static func load(_ file: SafetensorsFile, prefix: String = "", into buffer: FloatBuffer, layout parameters: ParameterStore) throws {
        for e in parameters.entries { try file.copyFloats(prefix + e.name, shape: e.shape, into: buffer.pointer + e.offset) }
    }

    /// The same into floats or bfloat16 numbers (rounded to nearest even), a tensor at a time.
    public static func load(_ file: SafetensorsFile, prefix: String = "", into buffer: NumberBuffer, layout parameters: ParameterStore) throws {
        for e in parameters.entries {
            if let f = buffer.floats { try file.copyFloats(prefix + e.name, shape: e.shape, into: f + e.offset); continue }
            var values = [Float](repeating: 0, count: e.count)
            try values.withUnsafeMutableBufferPointer { try file.copyFloats(prefix + e.name, shape: e.shape, into: $0.baseAddress!) }
            values.withUnsafeBufferPointer { buffer.write($0, at: e.offset) }
        }
    }
}

/// Weights for `evaluate` and `classify`: a checkpoint (its network, classes and statistics), or
/// a plain safetensors file with the native names (`conv1.weight` … `fc8.bias`), whose widths,
/// hidden size and classes come from the shapes.
public struct LoadedWeights {
    public var network: NetworkConfig
    public let parameters: ParameterStore
    /// Stored at training time; nil for plain files.
    public var classes: [String]?
    public var statistics: DatasetStatistics?
    public var mean: MeanMode?
    /// torchvision's division by the ImageNet standard deviations (`Augmentation.channelStd`),
    /// for its weights; nil for everything else.
    public var channelStd: [Double]?

    public init(path: String, variant: Variant? = nil, inputSize: Int? = nil) throws {
        // Where the tensors come from, and how each format names its errors.
        let copy: (_ name: String, _ shape: [Int], _ destination: UnsafeMutablePointer<Float>) throws -> Void
        let fail: (String) -> Error
        if Self.isPyTorch(path) {
            fail = { PyTorchFile.Failure(path: path, reason: $0) }
            let torch = try PyTorchWeights(path: path)
            network = try Self.plainNetwork(path, naming: torch.naming, shapes: torch.shapes, metadata: [:], variant: variant,
                                            inputSize: inputSize, fail: fail)
            // Each file expects its own normalisation (the variants table of docs/DESIGN.md):
            // the seed's the channel mean on the 0–255 scale; torchvision's also divides by its
            // standard deviations.
            mean = .channel
            if network.variant == .torchvision { channelStd = Augmentation.torchvisionStd }
            copy = { try torch.copy($0, shape: $1, into: $2) }
        } else {
            let file = try SafetensorsFile(path: path)
            fail = { SafetensorsError(path: path, tensor: nil, reason: $0) }
            if Checkpoint.isCheckpoint(file) {
                // A checkpoint whose metadata cannot be read is an error, never plain weights: its
                // network and classes would be guessed from the shapes.
                let contents = try Checkpoint.read(file, path: path)
                network = contents.network
                if let variant, variant != network.variant {
                    throw fail("this checkpoint is the \(network.variant.rawValue) variant, not \(variant.rawValue)")
                }
                (classes, statistics, mean) = (contents.classes, contents.statistics, contents.mean)
                copy = { try file.copyFloats($0, shape: $1, into: $2) }
            } else {
                // A plain file may use the seed's or torchvision's names (as `convert --names` writes).
                let naming: ParameterNaming
                do { naming = file.tensors["conv1.weight"] != nil ? .native : try ParameterNaming.detect(file.names) } catch { throw fail("\(error)") }
                let stored = { (native: String) in naming.foreignName(native) ?? native }
                let shapes = Dictionary(uniqueKeysWithValues: ParameterNaming.layers.flatMap { [$0 + ".weight", $0 + ".bias"] }.compactMap { n in
                    file.tensors[stored(n)].map { (n, $0.shape) }
                })
                network = try Self.plainNetwork(path, naming: naming, shapes: shapes, metadata: file.metadata, variant: variant,
                                                inputSize: inputSize, fail: fail)
                if network.variant == .torchvision && naming == .torchvision { (mean, channelStd) = (.channel, Augmentation.torchvisionStd) }
                copy = { try file.copyFloats(stored($0), shape: $1, into: $2) }
            }
        }
        if let inputSize { network.inputSize = inputSize }
        do { try network.validate() } catch { throw fail("\(error)") }
        parameters = try Network.makeParameters(network, training: nil)
        for e in parameters.entries { try copy(e.name, e.shape, parameters.values.pointer + e.offset) }
        if let bad = parameters.firstNonFinite(in: parameters.values) {
            throw fail("\(bad.name) holds a NaN or infinite value (element \(bad.index)); weights must be finite")
        }
    }

    /// The network of a file without a training checkpoint's metadata: the variant recorded in
    /// it (`convert` writes one into safetensors files), else the one its names imply (the seed's
    /// names: the seed variant; torchvision's: torchvision's), else the one asked for, else the
    /// paper's; the rest from the shapes (`infer`).
    private static func plainNetwork(_ path: String, naming: ParameterNaming, shapes: [String: [Int]], metadata: [String: String],
                                     variant: Variant?, inputSize: Int?, fail: (String) -> Error) throws -> NetworkConfig {
        let recorded = Variant(rawValue: metadata["variant"] ?? "")
        let implied: Variant
        switch naming {
        case .seed: implied = recorded ?? .seed
        case .torchvision: implied = recorded ?? .torchvision
        case .native: implied = variant ?? recorded ?? .paper
        }
        if let variant, variant != implied {
            throw fail("these are \(naming.rawValue)-named weights, the \(implied.rawValue) architecture, not \(variant.rawValue)")
        }
        return try infer(path: path, shapes: shapes, metadata: metadata, variant: implied, inputSize: inputSize)
    }

    /// Writes these weights for another tool (`alexnet convert`): a `.pt` / `.pth` as the state
    /// dict `torch.save(model.state_dict())` writes, loadable with `torch.load(weights_only=True)`
    /// and `load_state_dict` into the seed's or torchvision's model; anything else as a plain
    /// safetensors file (with the network's geometry in its metadata, so it reads back here).
    /// `names` defaults to the variant's own (`ParameterNaming.default(for:)`).
    public func write(to path: String, names: ParameterNaming? = nil) throws {
        let naming = names ?? .default(for: network.variant)
        let entries = parameters.entries
        let floats = entries.map { Array(UnsafeBufferPointer(start: parameters.values.pointer + $0.offset, count: $0.count)) }
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "pt" || ext == "pth" {
            let dict = Pickler.Value.dict(entries.enumerated().map { i, e in
                (Pickler.Value.string(naming.foreignName(e.name) ?? e.name), Pickler.Value.tensor(storageKey: "\(i)", count: e.count, shape: e.shape))
            }, ordered: true)
            let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            try PyTorchFile.write(dict, tensors: floats, archive: stem.isEmpty ? "archive" : stem, to: path)
        } else {
            var w = SafetensorsWriter(metadata: [
                "variant": network.variant.rawValue, "input_size": "\(network.inputSize)",
                "conv1_stride": "\(network.conv1Stride)", "conv1_padding": "\(network.conv1Padding)",
            ])
            for (e, values) in zip(entries, floats) { w.add(naming.foreignName(e.name) ?? e.name, Tensor(shape: e.shape, data: values)) }
            try w.write(to: path)
        }
    }

    /// Writes the network at inference as an ONNX model (`ONNXExport`), with what a user of
    /// the graph needs to feed it in the model's metadata: the variant, the input size, the
    /// normalisation (the input is what the network sees: 0–255 values minus the mean, divided
    /// by the standard deviations where there are some) and the class names, when known.
    /// Returns the number of nodes.
    @discardableResult
    public func exportONNX(to path: String, batch: ONNXExport.Batch) throws -> Int {
        var metadata = [("variant", network.variant.rawValue), ("input_size", "\(network.inputSize)"),
                        ("input", "RGB, planar (N, 3, S, S), 0–255 minus the mean" + (channelStd == nil ? "" : ", divided by channel_std"))]
        let stats = statistics ?? .imagenetFallback
        if (mean ?? .channel) == .pixel && stats.size > 0 {
            metadata.append(("mean", "the training set's mean image (\(stats.size)×\(stats.size)), cropped as the input is"))
        } else {
            metadata.append(("channel_mean", stats.channelMean.map { "\($0)" }.joined(separator: ",")))
        }
        if let channelStd { metadata.append(("channel_std", channelStd.map { "\($0)" }.joined(separator: ","))) }
        if let classes { metadata.append(("classes", classes.joined(separator: ","))) }
        let model = try ONNXExport.model(network: network, parameters: parameters, batch: batch)
        let bytes = try model.serialized(producer: "alexnet", version: "1", metadata: metadata)
        try FileIO.writeDurably(to: path) { write in try bytes.withUnsafeBytes { try write($0) } }
        return model.nodeCount
    }

    /// Whether a file starts as `torch.save`'s zip archives (or PyTorch's legacy pickles, or any
    /// pickle) do: such a file is read, or refused with what it is, as a PyTorch file.
    static func isPyTorch(_ path: String) -> Bool {
        var head: [UInt8] = []
        let fd = FileIO.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        head = [UInt8](repeating: 0, count: 16)
        let n = read(fd, &head, 16)
        guard n > 0 else { return false }
        return head.prefix(n).withUnsafeBytes { PyTorchFile.looksLikePyTorch($0) || PyTorchFile.isLegacy($0) || PyTorchFile.isRawPickle($0) }
    }

    /// The network whose parameter shapes (under the native names) are `shapes`. conv1's stride and
    /// padding and the input size cannot be read from shapes: the defaults (stride 4, padding 5,
    /// input 224) unless the metadata says otherwise or 224 does not fit fc6's input, in which case
    /// the smallest input size that does is taken.
    static func infer(path: String, shapes: [String: [Int]], metadata: [String: String], variant: Variant, inputSize: Int?) throws -> NetworkConfig {
        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let s = shapes[name] else { throw SafetensorsError(path: path, tensor: name, reason: "not in the file") }
            guard s.count == rank, s.allSatisfy({ $0 > 0 }) else {
                throw SafetensorsError(path: path, tensor: name, reason: "shape \(s), expected \(rank) positive dimensions")
            }
            return s
        }
        let convs = try (1...5).map { try shape("conv\($0).weight", rank: 4) }
        let fc6 = try shape("fc6.weight", rank: 2), fc8 = try shape("fc8.weight", rank: 2)
        var config = NetworkConfig(variant: variant, widths: convs.map { $0[0] }, hidden: fc6[0], classes: fc8[0],
                                   conv1Kernel: convs[0][2], conv1Padding: variant == .torchvision ? 2 : 5)
        if let s = metadata["conv1_stride"].flatMap(Int.init) { config.conv1Stride = s }
        if let p = metadata["conv1_padding"].flatMap(Int.init) { config.conv1Padding = p }
        if let s = inputSize ?? metadata["input_size"].flatMap(Int.init) {
            config.inputSize = s
        } else if config.flatFeatures != fc6[1] {
            guard let s = (config.conv1Kernel...2048).first(where: { size in
                var c = config; c.inputSize = size
                return (try? c.shapes()) != nil && c.flatFeatures == fc6[1]
            }) else {
                throw SafetensorsError(path: path, tensor: "fc6.weight",
                                       reason: "\(fc6[1]) input features fit no input size for conv5's \(config.widths[4]) channels")
            }
            config.inputSize = s
        }
        return config
    }
}
