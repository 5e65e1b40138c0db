import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import Foundation
import Logging

// Setting up a run: the state to start from (fresh, a checkpoint of ours, or the seed's full
// PyTorch checkpoint), and everything the run holds, made once before the first step.
extension Trainer {
    /// Everything a run holds, made once before the first step.
    struct Session {
        let engine: Engine
        let loaderThreads: Int
        let dataset: Dataset
        let val: DatasetSplit
        let trainLabels: [Int], valLabels: [Int]
        let classes: [String]
        let statistics: DatasetStatistics?
        /// Training crops and lighting; validation reads only its mean and crop size.
        let augmentation: Augmentation
        let parameters: ParameterStore
        let sgd: SGD
        let epochStart: FloatBuffer
        let inference: InferenceNetworks
        let checkpointDirectory: String, logDirectory: String
        /// Rank 0's claim on the two folders, held for the run; nil on the other ranks.
        let folders: RunFolders?
        /// Rank 0's; nil on the other ranks.
        let tensorboard: TensorBoardWriter?
        /// Sums the gradients over the ranks during backward (distributed runs only).
        let reducer: GradientReducer?
    }

    /// Where a resumed run stands, and how its file fills the parameters and buffers.
    struct Resumption {
        /// The class names the weights were trained on; nil where the file keeps none (PyTorch's).
        var classes: [String]?
        /// Fills the parameters, the momentum buffers (in the configured update rule's terms)
        /// and, mid-epoch, the weights at the epoch's start.
        let load: (_ parameters: ParameterStore, _ sgd: SGD, _ epochStart: FloatBuffer) throws -> Void
    }

    func prepare(_ state: inout TrainingState, resumed: Resumption?) throws -> Session {
        // A precision the CPU cannot run is refused before the dataset is read.
        try CPUCapabilities.check(config.training.precision)
        // Several ranks on one machine share its cores.
        let budget = config.training.threads > 0 ? config.training.threads
            : max(1, ProcessInfo.processInfo.activeProcessorCount / communicator.localSize)
        // The loader needs a few percent of a core (it decodes and augments far faster per core
        // than the network trains), so oneDNN keeps the whole budget and the loader's workers
        // share its cores at the same priority: at a lower one they starve and the network waits
        // for data. docs/DESIGN.md, One thread budget, has the figures.
        let loaderThreads = config.training.loaderThreads > 0 ? config.training.loaderThreads : max(1, budget / 4)
        let engine = try Engine(threads: budget)

        let dataset = try Dataset.open(config.path.dataset)
        guard let val = dataset.val else {
            throw ConfigurationError(source: "path.dataset", key: nil,
                                     message: "\(config.path.dataset) has no val/ (or val_images/) split; training validates every epoch")
        }
        let classes = dataset.labels.classes
        guard classes.count == config.model.classes else {
            throw ConfigurationError(source: "configuration", key: "model.classes",
                                     message: "is \(config.model.classes) but \(config.path.dataset) has \(classes.count) classes; set model.classes: \(classes.count)")
        }
        if let resumed, let saved = resumed.classes, saved != classes {
            throw ConfigurationError(source: config.training.resumeFrom, key: "path.dataset",
                                     message: "the checkpoint was trained on other classes than those of \(config.path.dataset)")
        }
        let statistics = config.augmentations.statistics.isEmpty ? nil : try DatasetStatistics(file: config.augmentations.statistics)
        var train = Augmentation(statistics: statistics ?? .imagenetFallback, crop: config.augmentations.crop, mean: config.augmentations.mean)
        train.outputSize = config.model.inputSize
        train.mirror = config.augmentations.flip
        train.lightingStd = config.augmentations.lighting ? Float(config.augmentations.lightingStd) : 0

        let parameters = try Network.makeParameters(config.model, training: config.training.precision)
        let sgd = SGD(for: parameters, learningRate: Float(state.schedule.learningRate), momentum: Float(config.optimizer.momentum),
                      weightDecay: Float(config.optimizer.weightDecay), rule: config.optimizer.updateRule, workers: engine.threads)
        let epochStart = FloatBuffer(count: parameters.values.count)
        if let resumed {
            try resumed.load(parameters, sgd, epochStart)
            let loaded = [("weights", parameters.firstNonFinite(in: parameters.values)), ("momentum buffer", parameters.firstNonFinite(in: sgd.velocity))]
                + (state.batch > 0 ? [("epoch-start weights", parameters.firstNonFinite(in: epochStart))] : [])
            for (what, found) in loaded {
                if let bad = found {
                    throw ConfigurationError(source: config.training.resumeFrom, key: nil,
                                             message: "the \(what) of \(bad.name) hold a NaN or infinite value (element \(bad.index)); a run cannot continue from it")
                }
            }
            sgd.steps = state.sgdSteps
        } else if !config.training.startFrom.isEmpty {
            try startingWeights(into: parameters)
        } else {
            config.initialization.apply(to: parameters, seed: config.training.seed)
        }
        // Every rank starts from rank 0's weights and momentum.
        try communicator.broadcastAndWait(parameters.values.pointer, count: parameters.values.count, what: "the initial weights")
        try communicator.broadcastAndWait(sgd.velocity, what: "the momentum buffers")

        // Rank 0 writes: its folders are claimed once the configuration has proved to fit the data.
        let folders = communicator.isRoot ? try RunFolders(
            checkpointRoot: config.path.checkpointDir, logRoot: config.path.logDir, name: state.runName, resuming: resumed != nil,
            rule: OutputRule(inputs: [config.augmentations.statistics, config.training.startFrom], sourceTrees: Dataset.splitPaths(config.path.dataset))) : nil
        let checkpointDirectory = (config.path.checkpointDir as NSString).appendingPathComponent(state.runName)
        let logDirectory = (config.path.logDir as NSString).appendingPathComponent(state.runName)
        var tensorboard: TensorBoardWriter?
        if communicator.isRoot {
            tensorboard = try TensorBoardWriter(directory: logDirectory)
            // Events a crashed run wrote after its last checkpoint are superseded by the rerun's.
            if resumed != nil { try tensorboard?.sessionStart(step: state.epoch + 1) }
        }
        return Session(engine: engine, loaderThreads: loaderThreads, dataset: dataset, val: val,
                       trainLabels: dataset.labels.labels(dataset.train), valLabels: dataset.labels.labels(val), classes: classes,
                       statistics: statistics, augmentation: train, parameters: parameters, sgd: sgd,
                       epochStart: epochStart, inference: InferenceNetworks(config: config.model, parameters: parameters, engine: engine,
                                                                       precision: config.training.precision),
                       checkpointDirectory: checkpointDirectory, logDirectory: logDirectory, folders: folders, tensorboard: tensorboard,
                       reducer: communicator.size > 1 ? GradientReducer(communicator: communicator, parameters: parameters) : nil)
    }

    /// `training.start_from`'s weights, which must have this network's parameters.
    func startingWeights(into parameters: ParameterStore) throws {
        let path = config.training.startFrom
        let weights = try LoadedWeights(path: path, inputSize: config.model.inputSize)
        try requireSameParameters(weights.network, path, key: "training.start_from")
        parameters.values.pointer.update(from: weights.parameters.values.pointer, count: parameters.values.count)
        logger.info("starting from the weights of \(path)")
    }

    /// Throws unless `network` (a file's) has the configured variant and parameter shapes.
    func requireSameParameters(_ network: NetworkConfig, _ path: String, key: String) throws {
        guard network.variant == config.model.variant, network.parameterShapes.elementsEqual(config.model.parameterShapes, by: { $0 == $1 }) else {
            throw ConfigurationError(source: path, key: key,
                                     message: "the file holds \(Self.describe(network)); the configuration asks for \(Self.describe(config.model))")
        }
    }

    func freshState() -> TrainingState {
        let name = config.path.runName.isEmpty
            ? RunFolders.freshName(checkpointRoot: config.path.checkpointDir, logRoot: config.path.logDir) : config.path.runName
        return TrainingState(runName: name, seed: config.training.seed, schedule: config.makeSchedule())
    }

    /// The state to start from: fresh, or the checkpoint's, after checking it fits this configuration.
    func initialState() throws -> (TrainingState, Resumption?) {
        guard !config.training.resumeFrom.isEmpty else { return (freshState(), nil) }
        let path = config.training.resumeFrom
        if LoadedWeights.isPyTorch(path) { return try seedResumption(path) }
        let contents = try Checkpoint.read(path)
        if contents.network != config.model {
            throw ConfigurationError(source: path, key: "model",
                                     message: "the checkpoint holds \(Self.describe(contents.network)); the configuration asks for \(Self.describe(config.model))")
        }
        var saved = TrainingConfig()
        try saved.apply(yaml: contents.configYAML, source: "\(path) (its configuration)")
        if contents.state.batch > 0 && saved.training.batchSize != config.training.batchSize {
            throw ConfigurationError(source: path, key: "training.batch_size",
                                     message: "the checkpoint stopped mid-epoch with batches of \(saved.training.batchSize), so it resumes only with that size (got \(config.training.batchSize))")
        }
        if contents.state.seed != config.training.seed {
            throw ConfigurationError(source: path, key: "training.seed",
                                     message: "the checkpoint's run uses seed \(contents.state.seed), the configuration \(config.training.seed)")
        }
        var state = contents.state
        try state.check(source: path, epochs: config.training.epochs)
        // The schedule's options come from the configuration; where it stands, from the
        // checkpoint, unless the configuration now asks for another learning rate.
        var schedule = config.makeSchedule()
        schedule.state = state.schedule.state
        if saved.optimizer.lr != config.optimizer.lr {
            logger.info("optimizer.lr changed from \(saved.optimizer.lr) to \(config.optimizer.lr): resuming with the new rate")
            schedule.state.lr = config.optimizer.lr
        }
        state.schedule = schedule
        return (state, Resumption(classes: contents.classes) { parameters, sgd, epochStart in
            try Checkpoint.load(contents.file, into: parameters.values, layout: parameters)
            try Checkpoint.load(contents.file, prefix: "momentum.", into: sgd.velocity, layout: parameters)
            if state.batch > 0 { try Checkpoint.load(contents.file, prefix: "epoch_start.", into: epochStart, layout: parameters) }
        })
    }

    /// Resuming the seed's full checkpoint (`alexnet_<epoch>_<metric>_full.pt`): its weights, its
    /// SGD momentum buffers, the epochs it completed, and where its ReduceLROnPlateau stood (best,
    /// bad epochs, cooldown, the current rate). PyTorch's buffer v moves the weights by −lr·v, so
    /// for the paper's update rule (w ← w + v) it is taken as −lr·v, which continues the same
    /// trajectory while the rate holds. The run continues at the next epoch's first batch; the
    /// seed's files keep no class names, so the dataset's are used.
    func seedResumption(_ path: String) throws -> (TrainingState, Resumption) {
        let torch = try PyTorchWeights(path: path)
        guard let epoch = torch.epoch, let optimizer = torch.optimizer else {
            throw ConfigurationError(source: path, key: "training.resume_from",
                                     message: "is a PyTorch state dict without the epoch and optimizer state a resumed run needs (the seed's _full.pt has them); start from its weights with training.start_from")
        }
        let weights = try LoadedWeights(path: path, inputSize: config.model.inputSize)
        try requireSameParameters(weights.network, path, key: "training.resume_from")
        var state = freshState()
        state.epoch = epoch
        state.sgdSteps = optimizer.buffers.isEmpty ? 0 : 1
        if let saved = torch.scheduler {
            if config.scheduler.name == .plateau {
                state.schedule.state = saved
            } else {
                logger.info("the checkpoint's plateau schedule is not resumed (scheduler.name is \(config.scheduler.name.rawValue)); its rate \(saved.lr) is")
                state.schedule.state.lr = saved.lr
            }
        } else {
            state.schedule.state.lr = optimizer.lr
        }
        try state.check(source: path, epochs: config.training.epochs)
        let lr = Float(optimizer.lr), rule = config.optimizer.updateRule
        return (state, Resumption(classes: nil) { parameters, sgd, _ in
            parameters.values.pointer.update(from: weights.parameters.values.pointer, count: parameters.values.count)
            for e in parameters.entries {
                var v = [Float](repeating: 0, count: e.count)
                try v.withUnsafeMutableBufferPointer { try torch.copyMomentum(e.name, shape: e.shape, into: $0.baseAddress!) }
                if rule == .paper { for i in 0..<e.count { v[i] *= -lr } }
                v.withUnsafeBufferPointer { sgd.velocity.write($0, at: e.offset) }
            }
        })
    }

    static func describe(_ n: NetworkConfig) -> String {
        "variant \(n.variant.rawValue), widths \(n.widths), hidden \(n.hidden), \(n.classes) classes, input \(n.inputSize), "
            + "conv1 \(n.conv1Kernel)/\(n.conv1Stride)/\(n.conv1Padding), dropout \(n.dropout)"
    }
}
