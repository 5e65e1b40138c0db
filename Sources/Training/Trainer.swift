import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import Foundation
import Logging

/// What a finished (or already finished) run reports.
public struct TrainingSummary: Sendable {
    public var runName: String
    public var checkpointDirectory: String
    public var logDirectory: String
    public var lastCheckpoint: String
    public var bestCheckpoint: String?
    /// The epoch best.safetensors holds, if any.
    public var bestEpoch: Int?
    public var history: [EpochRecord]
    public var seconds: Double
    /// The last validation, if any.
    public var final: EvaluationResult? { history.last(where: { $0.validation != nil })?.validation }
}

public enum TrainingError: DescribedError {
    case nonFinite(epoch: Int, batch: Int, loss: Float, checkpoint: String?)
    /// Weights, gradients or validation outputs became NaN or infinite: what and where.
    case nonFiniteState(String, checkpoint: String?)
    /// `resumeFlags`: what `--resume` needs besides the checkpoint (its paths outside the
    /// current folder, which a checkpoint's own configuration may not name).
    case interrupted(signal: Int32, checkpoint: String, resumeFlags: [String])
    case setup(String)

    public var description: String {
        switch self {
        case let .nonFinite(epoch, batch, loss, checkpoint):
            return "the training loss became \(loss) at epoch \(epoch), batch \(batch); stopped without saving this state. "
                + (checkpoint.map { "The last good checkpoint is \($0)." } ?? "No checkpoint had been written yet.")
                + " A lower optimizer.lr usually helps."
        case let .nonFiniteState(what, checkpoint):
            return "\(what); stopped without saving this state. "
                + (checkpoint.map { "The last good checkpoint is \($0)." } ?? "No checkpoint had been written yet.")
        case let .interrupted(signal, checkpoint, flags):
            return "stopped by signal \(signal) (\(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal")); "
                + "the state is saved in \(checkpoint); continue with: alexnet train --resume \(checkpoint)"
                + flags.map { " " + $0 }.joined()
        case let .setup(message): return message
        }
    }

    /// The exit status a command should end with: 128 + signal for interruptions, 1 otherwise.
    public var exitCode: Int32 {
        if case let .interrupted(signal, _, _) = self { return 128 + signal }
        return 1
    }
}

/// `alexnet train`: the paper's training loop (section 5) around the network, the loader and SGD.
///
///   per epoch e (counted from 0; the paper's epochs are e + 1):
///     batches in the shuffled order of (seed, e), from batch `state.batch` on
///       bind the loader's buffer as the input → dropout masks per sample → forward → loss
///       → backward → SGD step; every M minutes and on Ctrl-C a mid-epoch checkpoint
///     ten-crop validation → schedule step on the watched metric → TensorBoard
///     → last.safetensors (+ epoch-NNN, + best) written durably
///
/// All state that a resumed run needs is in `state` (and the three flat buffers), so a
/// checkpoint at any step boundary continues the same trajectory bit for bit.
public final class Trainer {
    public let config: TrainingConfig
    public let logger: Logger
    public let stop: StopRequest
    /// Called after every training step with (epoch counted from 1, batches done): tests stop a
    /// run at a chosen batch through `stop`.
    public var afterStep: ((_ epoch: Int, _ batch: Int) -> Void)?
    /// This process's place in a distributed run (`Communicator.single()` alone). Every rank
    /// trains its part of each global batch; rank 0 alone writes checkpoints and TensorBoard.
    public let communicator: Communicator

    public init(config: TrainingConfig, logger: Logger, stop: StopRequest = StopRequest(), communicator: Communicator = .single()) {
        (self.config, self.logger, self.stop, self.communicator) = (config, logger, stop, communicator)
    }

    /// The paper's reference error rates, logged beside ours as the seed does.
    static let paperTop1Error = 0.407, paperTop5Error = 0.182

    // MARK: set-up

    /// Everything a run holds, made once before the first step.
    private struct Session {
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
    private struct Resumption {
        /// The class names the weights were trained on; nil where the file keeps none (PyTorch's).
        var classes: [String]?
        /// Fills the parameters, the momentum buffers (in the configured update rule's terms)
        /// and, mid-epoch, the weights at the epoch's start.
        let load: (_ parameters: ParameterStore, _ sgd: SGD, _ epochStart: FloatBuffer) throws -> Void
    }

    private func prepare(_ state: inout TrainingState, resumed: Resumption?) throws -> Session {
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

        let parameters = Network.makeParameters(config.model)
        let sgd = SGD(for: parameters, learningRate: Float(state.schedule.learningRate), momentum: Float(config.optimizer.momentum),
                      weightDecay: Float(config.optimizer.weightDecay), rule: config.optimizer.updateRule, workers: engine.threads)
        let epochStart = FloatBuffer(count: parameters.values.count)
        if let resumed {
            try resumed.load(parameters, sgd, epochStart)
            let loaded = [("weights", parameters.values), ("momentum buffer", sgd.velocity)] + (state.batch > 0 ? [("epoch-start weights", epochStart)] : [])
            for (what, buffer) in loaded {
                if let bad = parameters.firstNonFinite(in: buffer) {
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
        try communicator.broadcastAndWait(sgd.velocity.pointer, count: sgd.velocity.count, what: "the momentum buffers")

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
    private func startingWeights(into parameters: ParameterStore) throws {
        let path = config.training.startFrom
        let weights = try LoadedWeights(path: path, inputSize: config.model.inputSize)
        try requireSameParameters(weights.network, path, key: "training.start_from")
        parameters.values.pointer.update(from: weights.parameters.values.pointer, count: parameters.values.count)
        logger.info("starting from the weights of \(path)")
    }

    /// Throws unless `network` (a file's) has the configured variant and parameter shapes.
    private func requireSameParameters(_ network: NetworkConfig, _ path: String, key: String) throws {
        guard network.variant == config.model.variant, network.parameterShapes.elementsEqual(config.model.parameterShapes, by: { $0 == $1 }) else {
            throw ConfigurationError(source: path, key: key,
                                     message: "the file holds \(Self.describe(network)); the configuration asks for \(Self.describe(config.model))")
        }
    }

    private func freshState() -> TrainingState {
        let name = config.path.runName.isEmpty
            ? RunFolders.freshName(checkpointRoot: config.path.checkpointDir, logRoot: config.path.logDir) : config.path.runName
        return TrainingState(runName: name, seed: config.training.seed, schedule: config.makeSchedule())
    }

    /// The state to start from: fresh, or the checkpoint's, after checking it fits this configuration.
    private func initialState() throws -> (TrainingState, Resumption?) {
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
    private func seedResumption(_ path: String) throws -> (TrainingState, Resumption) {
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
                let v = sgd.velocity.pointer + e.offset
                try torch.copyMomentum(e.name, shape: e.shape, into: v)
                if rule == .paper { for i in 0..<e.count { v[i] *= -lr } }
            }
        })
    }

    static func describe(_ n: NetworkConfig) -> String {
        "variant \(n.variant.rawValue), widths \(n.widths), hidden \(n.hidden), \(n.classes) classes, input \(n.inputSize), "
            + "conv1 \(n.conv1Kernel)/\(n.conv1Stride)/\(n.conv1Padding), dropout \(n.dropout)"
    }

    // MARK: the run

    public func run() throws -> TrainingSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        var (state, resumed) = try initialState()
        let s = try prepare(&state, resumed: resumed)
        defer { s.tensorboard?.close() }
        let paths = (last: path(s, "last.safetensors"), best: path(s, "best.safetensors"))
        var lastCheckpoint = resumed == nil ? nil as String? : config.training.resumeFrom
        var lastCheckpointTime = DispatchTime.now().uptimeNanoseconds
        logger.info("run \(state.runName): \(s.dataset.train.count) training and \(s.val.count) validation images in \(s.classes.count) classes; \(Self.describe(config.model)); \(s.engine.threads) threads for oneDNN, \(s.loaderThreads) for the loader")
        logger.info("checkpoints in \(s.checkpointDirectory), TensorBoard logs in \(s.logDirectory)")
        if resumed != nil { logger.info("resuming \(config.training.resumeFrom) at epoch \(state.epoch + 1), batch \(state.batch)") }

        func save(_ file: String, midEpoch: Bool) throws {
            // The ranks hold the same weights; rank 0 alone writes them.
            if communicator.isRoot {
                try Checkpoint.write(to: file, state: state, network: config.model, configYAML: config.yaml(comments: false), classes: s.classes,
                                     statistics: s.statistics, mean: config.augmentations.mean, parameters: s.parameters,
                                     momentum: s.sgd.velocity, epochStart: midEpoch ? s.epochStart : nil)
            }
            lastCheckpoint = file
            lastCheckpointTime = DispatchTime.now().uptimeNanoseconds
        }
        /// Saves the state where it stands and reports the interruption.
        func interrupted(_ signal: Int32) throws -> Never {
            try save(paths.last, midEpoch: true)
            throw TrainingError.interrupted(signal: signal, checkpoint: paths.last, resumeFlags: config.pathsOutsideTheCurrentFolder.map(\.flag))
        }
        func validate(label: String) throws -> EvaluationResult {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result: EvaluationResult
            do {
                result = try s.inference.evaluate(split: s.val, labels: s.valLabels, augmentation: s.augmentation,
                                                  batchSize: config.training.evalBatchSize, threads: s.loaderThreads,
                                                  communicator: communicator) { _, _ in
                    // Several ranks agree on stopping at a training step, not inside a collective.
                    if self.communicator.size == 1, let signal = self.stop.signal { try interrupted(signal) }
                }
            } catch let e as NonFiniteOutputError {
                throw TrainingError.nonFiniteState("\(label): \(e)", checkpoint: lastCheckpoint)
            }
            // Finite outputs give a finite loss; this keeps any other way out of the checkpoint's
            // history, which JSON cannot hold.
            guard result.loss.isFinite else {
                throw TrainingError.nonFiniteState("\(label): the validation loss is \(result.loss)", checkpoint: lastCheckpoint)
            }
            logger.info("\(label): val loss \(fixed(result.loss, 4)), top-1 error \(fixed(100 * result.top1Error, 2)) %, top-5 error \(fixed(100 * result.top5Error, 2)) % (\(result.images) images, ten-crop, \(fixed(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, 1)) s)")
            return result
        }

        if state.epoch == 0 && state.batch == 0 && state.history.isEmpty && config.training.evaluateBeforeTraining {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result = try validate(label: "before training")
            let record = EpochRecord(epoch: 0, trainLoss: nil, validation: result, lr: state.schedule.learningRate,
                                     seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, imagesPerSecond: nil)
            state.history.append(record)
            try log(record, s, epochStartAvailable: false)
        }

        let batchesPerEpoch = (s.dataset.train.count + config.training.batchSize - 1) / config.training.batchSize
        var trainingNetworks: [Int: Network] = [:]
        while state.epoch < config.training.epochs {
            let epoch = state.epoch + 1
            let t0 = DispatchTime.now().uptimeNanoseconds
            s.sgd.learningRate = Float(state.schedule.learningRate)
            if state.batch == 0 { s.epochStart.pointer.update(from: s.parameters.values.pointer, count: s.epochStart.count) }
            let loader = try BatchLoader(split: s.dataset.train, labels: s.trainLabels, kind: .training, augmentation: s.augmentation,
                                         batchSize: config.training.batchSize, seed: config.training.seed, epoch: state.epoch,
                                         threads: s.loaderThreads, startBatch: state.batch,
                                         shard: BatchLoader.Shard(rank: communicator.rank, ranks: communicator.size))
            s.reducer?.resetTimes()
            var stepSeconds = 0.0
            defer { loader.stop() }
            let progress = TrainingProgress(label: "epoch \(epoch)/\(config.training.epochs)", batches: batchesPerEpoch,
                                            startingAt: state.batch, printFrequency: config.training.printFreq, logger: logger)
            while true {
                let w0 = DispatchTime.now().uptimeNanoseconds
                guard let batch = loader.next() else { break }
                let wait = Double(DispatchTime.now().uptimeNanoseconds - w0) / 1e9
                if let failure = loader.failures.first {
                    throw TrainingError.setup("cannot read a training image: \(failure) (alexnet dataset-info --decode lists every broken file)")
                }
                let s0 = DispatchTime.now().uptimeNanoseconds
                // The global batch's size: this rank's part is `batch.count` of it.
                let images = min(s.dataset.train.count, (batch.index + 1) * config.training.batchSize) - batch.index * config.training.batchSize
                var loss: Float = 0
                if batch.count > 0 {
                    let net: Network
                    if let n = trainingNetworks[batch.count] { net = n } else {
                        net = try Network(config: config.model, batch: batch.count, mode: .training, precision: config.training.precision,
                                          parameters: s.parameters, engine: s.engine)
                        trainingNetworks[batch.count] = net
                    }
                    try net.bindInput(batch.images)
                    net.drawDropoutMasks(seed: config.training.seed, epoch: state.epoch, samples: batch.samples)
                    try net.forward()
                    loss = try net.loss(labels: batch.labels)
                    if let reducer = s.reducer {
                        net.criterion?.normalizer = images
                        reducer.begin()
                        try net.backward { try reducer.layerDone($0.name) }
                    } else {
                        try net.backward()
                    }
                } else {
                    // An empty part of a short last batch adds nothing to the sum.
                    s.parameters.grads.pointer.update(repeating: 0, count: s.parameters.grads.count)
                    s.reducer?.begin()
                }
                if communicator.size > 1 {
                    try s.reducer?.finish()
                    // The global batch's mean loss, and whether any rank was asked to stop, agreed by all.
                    var totals = [Double(loss) * Double(batch.count), stop.signal == nil ? 0 : 1]
                    try communicator.sum(&totals, what: "the loss")
                    loss = Float(totals[0] / Double(images))
                    if totals[1] > 0 && stop.signal == nil { stop.request(SIGTERM) }
                }
                guard loss.isFinite else {
                    throw TrainingError.nonFinite(epoch: epoch, batch: batch.index + 1, loss: loss, checkpoint: lastCheckpoint)
                }
                // The seed's final ReLU turns NaN logits into zeros and a finite loss, so the
                // updated weights are checked too (in the update's own pass).
                guard s.sgd.step(s.parameters) else {
                    let culprit = s.parameters.nonFiniteOrigin()
                    let what = culprit.map { $0.gradient ? "the gradient of \($0.name)" : "\($0.name)" } ?? "a weight"
                    throw TrainingError.nonFiniteState(
                        "after the update at epoch \(epoch), batch \(batch.index + 1), \(what) is not finite (NaN or infinite); "
                            + "learning rate \(s.sgd.learningRate), loss \(loss)", checkpoint: lastCheckpoint)
                }
                stepSeconds += Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9
                state.batch = batch.index + 1
                state.sgdSteps += 1
                state.epochLossSum += Double(loss) * Double(images)
                state.epochImages += images
                progress.batch(batch.index, count: images, loss: Double(loss), dataWait: wait)
                afterStep?(epoch, state.batch)
                if let signal = stop.signal { progress.finish(); try interrupted(signal) }
                let minutes = config.training.checkpointEveryMinutes
                if minutes > 0 && Double(DispatchTime.now().uptimeNanoseconds - lastCheckpointTime) / 6e10 >= minutes && state.batch < batchesPerEpoch {
                    try save(paths.last, midEpoch: true)
                }
            }
            progress.finish()
            let trainSeconds = progress.seconds
            let trainLoss = state.epochLossSum / Double(max(state.epochImages, 1))
            logger.info("epoch \(epoch)/\(config.training.epochs): train loss \(fixed(trainLoss, 4)), \(fixed(Double(progress.images) / max(trainSeconds, 1e-9), 1)) img/s, \(fixed(trainSeconds, 1)) s, of which \(fixed(100 * progress.dataSeconds / max(trainSeconds, 1e-9), 1)) % waiting for data")
            if let r = s.reducer {
                // The overlap made visible: time in the steps split into computing, MPI calls that
                // start and progress the sums, and waiting for them.
                logger.info("epoch \(epoch)/\(config.training.epochs) on \(communicator.size) ranks: compute \(fixed(stepSeconds - r.communicationSeconds - r.waitSeconds, 1)) s, communication \(fixed(r.communicationSeconds, 2)) s, waiting for communication \(fixed(r.waitSeconds, 2)) s")
            }
            let validated = epoch % config.training.validateEveryEpochs == 0 || epoch == config.training.epochs
            let result = validated ? try validate(label: "epoch \(epoch)/\(config.training.epochs)") : nil
            let lr = state.schedule.learningRate
            let metric = result?.value(config.scheduler.metric)
            let improved = metric.map { m in state.best.map { m < $0 } ?? true } ?? false
            if improved { (state.best, state.bestEpoch) = (metric, epoch) }
            let next = state.schedule.step(metric: metric)
            if next != lr { logger.info("learning rate \(lr) → \(next) (scheduler \(config.scheduler.name.rawValue) on \(config.scheduler.metric.rawValue))") }
            let record = EpochRecord(epoch: epoch, trainLoss: trainLoss, validation: result, lr: lr,
                                     seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9,
                                     imagesPerSecond: Double(progress.images) / max(trainSeconds, 1e-9))
            state.history.append(record)
            try log(record, s, epochStartAvailable: true)
            (state.epoch, state.batch, state.epochLossSum, state.epochImages) = (epoch, 0, 0, 0)

            try save(paths.last, midEpoch: false)
            if config.training.checkpointEveryEpochs > 0 && epoch % config.training.checkpointEveryEpochs == 0 {
                try link(paths.last, to: path(s, String(format: "epoch-%04d.safetensors", epoch)))
            }
            if improved {
                try link(paths.last, to: paths.best)
                logger.info("best \(config.scheduler.metric.rawValue) so far: \(fixed(metric ?? 0, 4)) → \(paths.best)")
            }
            if let signal = stop.signal { throw TrainingError.interrupted(signal: signal, checkpoint: paths.last, resumeFlags: config.pathsOutsideTheCurrentFolder.map(\.flag)) }
        }
        if lastCheckpoint == nil { try save(paths.last, midEpoch: false) }
        try s.tensorboard?.flush()
        return TrainingSummary(runName: state.runName, checkpointDirectory: s.checkpointDirectory, logDirectory: s.logDirectory,
                               lastCheckpoint: paths.last, bestCheckpoint: state.bestEpoch == nil ? nil : paths.best, bestEpoch: state.bestEpoch,
                               history: state.history, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }

    private func path(_ s: Session, _ name: String) -> String { (s.checkpointDirectory as NSString).appendingPathComponent(name) }

    /// Gives `source`'s complete file a second name, atomically and durably (see
    /// `FileIO.linkDurably`), so epoch-NNN and best cost no second write.
    private func link(_ source: String, to destination: String) throws {
        guard communicator.isRoot else { return }
        do { try FileIO.linkDurably(source, to: destination) } catch {
            throw TrainingError.setup("cannot save \(destination): \(error)")
        }
    }

    // MARK: TensorBoard

    /// One epoch's scalars (the seed's tags) and histograms; `epoch` 0 is the untrained network.
    private func log(_ record: EpochRecord, _ s: Session, epochStartAvailable: Bool) throws {
        guard let tb = s.tensorboard else { return }
        let step = record.epoch
        if let v = record.validation {
            try tb.scalar("Metrics/val_error_rate@1", v.top1Error, step: step)
            try tb.scalar("Metrics/val_error_rate@5", v.top5Error, step: step)
            try tb.scalar("Metrics/paper_error_rate@1", Self.paperTop1Error, step: step)
            try tb.scalar("Metrics/paper_error_rate@5", Self.paperTop5Error, step: step)
            try tb.scalar("Losses/val_loss", v.loss, step: step)
        }
        if let loss = record.trainLoss { try tb.scalar("Losses/train_loss", loss, step: step) }
        try tb.scalar("Optimizer/Group0_lr", record.lr, step: step)
        try tb.scalar("Optimizer/Group0_weight_decay", config.optimizer.weightDecay, step: step)
        if let ips = record.imagesPerSecond { try tb.scalar("Speed/train_images_per_second", ips, step: step) }
        let p = s.parameters
        for e in p.entries {
            let layer = String(e.name.split(separator: ".")[0])
            let values = UnsafeBufferPointer(start: p.values.pointer + e.offset, count: e.count)
            try tb.histogram((e.name.hasSuffix(".bias") ? "Biases/" : "Weights/") + layer, values, step: step)
            guard epochStartAvailable else { continue }
            // The gradients of the epoch's last step, and how far the epoch moved the weights.
            try tb.histogram("Gradients/\(e.name)", UnsafeBufferPointer(start: p.grads.pointer + e.offset, count: e.count), step: step)
            var change = 0.0
            let before = s.epochStart.pointer + e.offset
            for i in 0..<e.count { let d = Double(values[i] - before[i]); change += d * d }
            try tb.scalar("Diff/\(e.name)", change.squareRoot(), step: step)
        }
        try tb.flush()
    }
}
