import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import Foundation
import Yams

/// Everything `alexnet train` reads from its YAML file (the seed's `config.yml` sections: path,
/// model, training, optimizer, scheduler, augmentations). Defaults are the paper's; every key is
/// listed once, in `TrainingConfig.fields`, which parsing, `--set`, validation messages,
/// `--print-config` and the checkpoint's copy of the configuration all read.
public struct TrainingConfig: Sendable, Equatable {
    public struct Paths: Sendable, Equatable {
        /// Empty: a generated two-word name (as the seed's `coolname.generate_slug(2)`).
        public var runName = ""
        /// A dataset root holding train/ and val/ (ImageFolder) or train_images/ and val_images/.
        public var dataset = ""
        public var logDir = "runs"
        public var checkpointDir = "checkpoints"
    }

    public struct Training: Sendable, Equatable {
        public var epochs = 90
        public var batchSize = 128
        /// Ten-crop validation batches: each is 10 forward passes of this many images.
        public var evalBatchSize = 32
        /// The one thread budget (0: one per core), shared by oneDNN and the loader.
        public var threads = 0
        /// Loader workers (0: chosen from the budget).
        public var loaderThreads = 0
        /// What the convolutions and linear layers compute in; weights, gradients, SGD and
        /// checkpoints are float32 either way (`Precision`).
        public var precision = Precision.fp32
        public var seed: UInt64 = 0
        public var checkpointEveryEpochs = 1
        /// Also a checkpoint every this many minutes of training, mid-epoch (0: never).
        public var checkpointEveryMinutes = 30.0
        /// Under mpirun: seconds a rank waits in a collective for the others before it declares
        /// the job stuck and ends it (a rank that died or hangs).
        public var collectiveTimeout = 600.0
        /// A checkpoint to continue exactly (empty: start afresh): this project's, or the seed's
        /// full PyTorch checkpoint (`alexnet_<epoch>_<metric>_full.pt`).
        public var resumeFrom = ""
        /// Weights to start from instead of the initialisation (empty: initialise): any file
        /// `evaluate` reads (a checkpoint, safetensors, a PyTorch state dict), with this network's
        /// parameter shapes; the run itself starts at epoch 1.
        public var startFrom = ""
        public var printFreq = 50
        /// Validate once before the first epoch (the seed logs the untrained error first).
        public var evaluateBeforeTraining = true
        /// Ten-crop validation after every this many epochs (and always after the last): on
        /// ImageNet here it takes an hour and a half.
        public var validateEveryEpochs = 1
    }

    public struct Optimizer: Sendable, Equatable {
        public var lr = 0.01
        public var momentum = 0.9
        public var weightDecay = 5e-4
        /// The paper's update (section 5); equal to PyTorch's while the rate is constant.
        public var updateRule = UpdateRule.paper
    }

    public struct Scheduler: Sendable, Equatable {
        /// The paper's: divide by 10 when validation error stops improving.
        public var name = LearningRateSchedule.Kind.manual
        /// Watched by the schedule and by `best.safetensors` (default: top-5 error).
        public var metric = LearningRateSchedule.Metric.top5Error
        public var plateau = LearningRateSchedule.Plateau()
        public var manual = LearningRateSchedule.Manual()
        public var step = LearningRateSchedule.Step()
    }

    public struct Augmentations: Sendable, Equatable {
        public var crop = CropMode.paper
        public var flip = true
        public var lighting = true
        public var lightingStd = 0.1
        /// `alexnet stats` output (mean image, eigenvectors); empty: the published ImageNet constants.
        public var statistics = ""
        public var mean = MeanMode.pixel
    }

    public var path = Paths()
    public var model = NetworkConfig()
    public var initialization = Initialization.paper
    public var training = Training()
    public var optimizer = Optimizer()
    public var scheduler = Scheduler()
    public var augmentations = Augmentations()

    public init() {}

    /// The schedule this configuration starts with.
    public func makeSchedule() -> LearningRateSchedule {
        LearningRateSchedule(kind: scheduler.name, baseLR: optimizer.lr, plateau: scheduler.plateau,
                             manual: scheduler.manual, step: scheduler.step)
    }
}

/// An error in a configuration: the file (or `--set`), the key path, and what is allowed.
public struct ConfigurationError: DescribedError, Sendable {
    public let source: String
    public let key: String?
    public let message: String
    public var description: String {
        "\(source): " + (key.map { "\($0): " } ?? "") + message
    }
}

// MARK: - The schema: every key once

extension TrainingConfig {
    /// One configuration key: its path, what values it takes, and how to read and show it.
    public struct Field: Sendable {
        public let path: String
        public let allowed: String
        public let help: String
        let parse: @Sendable (inout TrainingConfig, Node) throws -> Void
        let render: @Sendable (TrainingConfig) -> String
    }

    private struct Invalid: Error, CustomStringConvertible { let allowed: String; var description: String { "expected \(allowed)" } }

    private static func scalar(_ node: Node) -> String? {
        guard case let .scalar(s) = node else { return nil }
        return s.string
    }

    private static func integer(_ node: Node, min: Int, allowed: String) throws -> Int {
        guard let s = scalar(node), let v = Int(s), v >= min else { throw Invalid(allowed: allowed) }
        return v
    }

    private static func real(_ node: Node, range: ClosedRange<Double>, openLow: Bool = false, openHigh: Bool = false, allowed: String) throws -> Double {
        guard let s = scalar(node), let v = Double(s), v.isFinite, range.contains(v), !(openLow && v == range.lowerBound),
              !(openHigh && v == range.upperBound) else {
            throw Invalid(allowed: allowed)
        }
        return v
    }

    static func int(_ path: String, _ key: WritableKeyPath<TrainingConfig, Int> & Sendable, min: Int, _ help: String) -> Field {
        let allowed = min == 0 ? "an integer ≥ 0" : "an integer ≥ \(min)"
        return Field(path: path, allowed: allowed, help: help,
                     parse: { c, n in c[keyPath: key] = try integer(n, min: min, allowed: allowed) },
                     render: { "\($0[keyPath: key])" })
    }

    static func double(_ path: String, _ key: WritableKeyPath<TrainingConfig, Double> & Sendable, _ range: ClosedRange<Double>,
                       openLow: Bool = false, openHigh: Bool = false, _ help: String) -> Field {
        let low = openLow ? "> \(range.lowerBound)" : "≥ \(range.lowerBound)"
        let high = openHigh ? "< \(range.upperBound)" : "≤ \(range.upperBound)"
        let allowed = range.upperBound == .infinity ? "a number \(low)" : "a number \(low) and \(high)"
        return Field(path: path, allowed: allowed, help: help,
                     parse: { c, n in c[keyPath: key] = try real(n, range: range, openLow: openLow, openHigh: openHigh, allowed: allowed) },
                     render: { "\($0[keyPath: key])" })
    }

    static func bool(_ path: String, _ key: WritableKeyPath<TrainingConfig, Bool> & Sendable, _ help: String) -> Field {
        Field(path: path, allowed: "true or false", help: help,
              parse: { c, n in
                  guard let s = scalar(n), let v = ["true": true, "false": false][s.lowercased()] else { throw Invalid(allowed: "true or false") }
                  c[keyPath: key] = v
              },
              render: { "\($0[keyPath: key])" })
    }

    static func string(_ path: String, _ key: WritableKeyPath<TrainingConfig, String> & Sendable, _ help: String) -> Field {
        Field(path: path, allowed: "a string", help: help,
              parse: { c, n in
                  if case .scalar = n, n.null != nil { c[keyPath: key] = ""; return }
                  guard let s = scalar(n) else { throw Invalid(allowed: "a string") }
                  c[keyPath: key] = s
              },
              render: { quoted($0[keyPath: key]) })
    }

    static func choice<E: RawRepresentable & CaseIterable & Sendable>(_ path: String, _ key: WritableKeyPath<TrainingConfig, E> & Sendable,
                                                                      _ help: String) -> Field where E.RawValue == String {
        let allowed = "one of " + E.allCases.map(\.rawValue).joined(separator: ", ")
        return Field(path: path, allowed: allowed, help: help,
                     parse: { c, n in
                         guard let s = scalar(n), let v = E(rawValue: s) else { throw Invalid(allowed: allowed) }
                         c[keyPath: key] = v
                     },
                     render: { $0[keyPath: key].rawValue })
    }

    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Every key, in the order `--print-config` shows them.
    public static let fields: [Field] = [
        string("path.run_name", \.path.runName, "run name; empty: a generated two-word name"),
        string("path.dataset", \.path.dataset, "dataset root with train/ and val/ (or train_images/ and val_images/)"),
        string("path.log_dir", \.path.logDir, "TensorBoard logs go to <log_dir>/<run_name>"),
        string("path.checkpoint_dir", \.path.checkpointDir, "checkpoints go to <checkpoint_dir>/<run_name>"),

        choice("model.variant", \.model.variant, "paper (LRN α/n = 1e-4, dropout after fc6/fc7), seed (its LRN, dropout before, ReLU after fc8) or torchvision (no LRN, 6×6 adaptive average pool, dropout before; its own sizes are widths [64, 192, 384, 256, 256] and conv1_padding 2)"),
        int("model.classes", \.model.classes, min: 2, "output classes; must match the dataset's"),
        Field(path: "model.widths", allowed: "a list of 5 integers ≥ 1", help: "output channels of conv1…conv5",
              parse: { c, n in
                  guard case let .sequence(seq) = n, seq.count == 5 else { throw Invalid(allowed: "a list of 5 integers ≥ 1") }
                  c.model.widths = try seq.map { try integer($0, min: 1, allowed: "a list of 5 integers ≥ 1") }
              },
              render: { "[" + $0.model.widths.map(String.init).joined(separator: ", ") + "]" }),
        int("model.hidden", \.model.hidden, min: 1, "width of fc6 and fc7"),
        int("model.input_size", \.model.inputSize, min: 1, "crop size fed to the network (the paper's 224)"),
        int("model.conv1_kernel", \.model.conv1Kernel, min: 1, "conv1's kernel size"),
        int("model.conv1_stride", \.model.conv1Stride, min: 1, "conv1's stride"),
        int("model.conv1_padding", \.model.conv1Padding, min: 0, "conv1's zero padding"),
        Field(path: "model.dropout", allowed: "a number ≥ 0 and < 1", help: "dropout probability",
              parse: { c, n in c.model.dropout = Float(try real(n, range: 0...0.999_999, allowed: "a number ≥ 0 and < 1")) },
              render: { "\($0.model.dropout)" }),
        choice("model.initialization", \.initialization, "paper (N(0, 0.01²), some biases 1) or pytorch (the seed's uniform)"),

        int("training.epochs", \.training.epochs, min: 1, "epochs to train"),
        int("training.batch_size", \.training.batchSize, min: 1, "images per SGD step"),
        int("training.eval_batch_size", \.training.evalBatchSize, min: 1, "images per ten-crop validation batch"),
        int("training.threads", \.training.threads, min: 0, "thread budget for oneDNN and the loader; 0: one per core"),
        int("training.loader_threads", \.training.loaderThreads, min: 0, "loader workers within the budget; 0: automatic"),
        choice("training.precision", \.training.precision,
               "fp32, or bf16: bfloat16 activations in the convolutional trunk, linear layers on bfloat16 copies (CPUs with AVX-512 BF16 or AMX only), bfloat16 weight gradients and momentum, float32 weights and checkpoints"),
        Field(path: "training.seed", allowed: "an integer ≥ 0", help: "seed of initialisation, order, augmentation and dropout",
              parse: { c, n in
                  guard let s = scalar(n), let v = UInt64(s) else { throw Invalid(allowed: "an integer ≥ 0") }
                  c.training.seed = v
              },
              render: { "\($0.training.seed)" }),
        int("training.checkpoint_every_epochs", \.training.checkpointEveryEpochs, min: 0, "an epoch-NNN checkpoint every N epochs; 0: none"),
        double("training.checkpoint_every_minutes", \.training.checkpointEveryMinutes, 0...Double.infinity,
               "also save last.safetensors mid-epoch every M minutes; 0: never"),
        double("training.collective_timeout", \.training.collectiveTimeout, 0...Double.infinity, openLow: true,
               "under mpirun: seconds a rank waits for the others in a collective before ending the job"),
        string("training.resume_from", \.training.resumeFrom, "checkpoint to continue exactly (this project's, or the seed's _full.pt); empty: start afresh"),
        string("training.start_from", \.training.startFrom, "weights to start from instead of the initialisation (checkpoint, safetensors or PyTorch state dict); empty: initialise"),
        int("training.print_freq", \.training.printFreq, min: 1, "without a terminal, a progress line every N batches"),
        bool("training.evaluate_before_training", \.training.evaluateBeforeTraining, "validate the untrained network first (epoch 0)"),
        int("training.validate_every_epochs", \.training.validateEveryEpochs, min: 1,
            "ten-crop validation every N epochs and after the last; schedules and best.safetensors see only those"),

        double("optimizer.lr", \.optimizer.lr, 0...Double.infinity, openLow: true, "initial learning rate"),
        double("optimizer.momentum", \.optimizer.momentum, 0...1, openHigh: true, "momentum μ"),
        double("optimizer.weight_decay", \.optimizer.weightDecay, 0...Double.infinity, "weight decay"),
        choice("optimizer.update_rule", \.optimizer.updateRule, "pytorch (v ← μv + ∇ + wd·w) or paper (v ← μv − wd·lr·w − lr·∇)"),

        choice("scheduler.name", \.scheduler.name, "manual (the paper), plateau (the seed's) or step"),
        choice("scheduler.metric", \.scheduler.metric, "validation metric the schedule and best.safetensors watch"),
        choice("scheduler.plateau.mode", \.scheduler.plateau.mode, "ReduceLROnPlateau mode"),
        double("scheduler.plateau.factor", \.scheduler.plateau.factor, 0...1, openLow: true, openHigh: true, "ReduceLROnPlateau factor"),
        int("scheduler.plateau.patience", \.scheduler.plateau.patience, min: 0, "ReduceLROnPlateau patience"),
        double("scheduler.plateau.threshold", \.scheduler.plateau.threshold, 0...Double.infinity, "ReduceLROnPlateau threshold"),
        choice("scheduler.plateau.threshold_mode", \.scheduler.plateau.thresholdMode, "ReduceLROnPlateau threshold_mode"),
        int("scheduler.plateau.cooldown", \.scheduler.plateau.cooldown, min: 0, "ReduceLROnPlateau cooldown"),
        double("scheduler.plateau.min_lr", \.scheduler.plateau.minLR, 0...Double.infinity, "ReduceLROnPlateau min_lr"),
        double("scheduler.plateau.eps", \.scheduler.plateau.eps, 0...Double.infinity, "ReduceLROnPlateau eps"),
        Field(path: "scheduler.manual.milestones", allowed: "a list of [epoch, lr] pairs with epochs ≥ 1 in increasing order",
              help: "fixed (epoch, lr) pairs; empty: divide by factor when the metric stops improving",
              parse: { c, n in
                  let allowed = "a list of [epoch, lr] pairs with epochs ≥ 1 in increasing order"
                  guard case let .sequence(seq) = n else { throw Invalid(allowed: allowed) }
                  c.scheduler.manual.milestones = try seq.map { pair in
                      guard case let .sequence(p) = pair, p.count == 2 else { throw Invalid(allowed: allowed) }
                      return .init(epoch: try integer(p[0], min: 1, allowed: allowed),
                                   lr: try real(p[1], range: 0...Double.infinity, allowed: allowed))
                  }
                  let epochs = c.scheduler.manual.milestones.map(\.epoch)
                  guard epochs == epochs.sorted(), Set(epochs).count == epochs.count else { throw Invalid(allowed: allowed) }
              },
              render: { "[" + $0.scheduler.manual.milestones.map { "[\($0.epoch), \($0.lr)]" }.joined(separator: ", ") + "]" }),
        double("scheduler.manual.factor", \.scheduler.manual.factor, 0...1, openLow: true, openHigh: true, "rate multiplier at each reduction"),
        int("scheduler.manual.patience", \.scheduler.manual.patience, min: 1, "epochs without improvement before reducing"),
        double("scheduler.manual.threshold", \.scheduler.manual.threshold, 0...1, "relative improvement that counts"),
        int("scheduler.manual.max_drops", \.scheduler.manual.maxDrops, min: 0, "reductions at most (the paper: 3)"),
        int("scheduler.step.step_size", \.scheduler.step.stepSize, min: 1, "StepLR step_size (epochs)"),
        double("scheduler.step.gamma", \.scheduler.step.gamma, 0...1, openLow: true, "StepLR gamma"),

        choice("augmentations.crop", \.augmentations.crop, "paper (random 224 window) or random_resized (the seed's)"),
        bool("augmentations.flip", \.augmentations.flip, "mirror left-right with probability 0.5"),
        bool("augmentations.lighting", \.augmentations.lighting, "PCA lighting (paper section 4.1)"),
        double("augmentations.lighting_std", \.augmentations.lightingStd, 0...Double.infinity, "σ of the lighting coefficients"),
        string("augmentations.statistics", \.augmentations.statistics, "alexnet stats output; empty: the published ImageNet constants"),
        choice("augmentations.mean", \.augmentations.mean, "pixel (the paper's mean image) or channel"),
    ]

    static let fieldIndex: [String: Field] = Dictionary(uniqueKeysWithValues: fields.map { ($0.path, $0) })

    // MARK: reading

    /// Reads a YAML file over the defaults; unknown keys, wrong types and impossible values are
    /// errors naming the file, the line and the key path.
    public static func load(file path: String) throws -> TrainingConfig {
        let text: String
        // Foundation reads only regular files (anything else fails as "Permission denied"): a
        // FIFO, such as the shell's -c <(…), is read to its end; a folder or device is named.
        let mode = FileIO.status(path).map { $0.st_mode & S_IFMT }
        if let mode, mode != S_IFIFO, let kind = FileIO.nonRegularKind(mode) {
            throw ConfigurationError(source: FileIO.display(path), key: nil, message: "\(kind), not a configuration file")
        }
        do {
            if mode == S_IFIFO {
                guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoPermission, userInfo: [NSFilePathErrorKey: path]) }
                defer { try? handle.close() }
                guard let t = String(data: try handle.readToEnd() ?? Data(), encoding: .utf8) else {
                    throw ConfigurationError(source: FileIO.display(path), key: nil, message: "not UTF-8 text")
                }
                text = t
            } else {
                text = try String(contentsOfFile: path, encoding: .utf8)
            }
        } catch let e as ConfigurationError { throw e } catch {
            throw ConfigurationError(source: path, key: nil, message: "cannot read the configuration (\(FileIO.describe(error)))")
        }
        var config = TrainingConfig()
        try config.apply(yaml: text, source: path)
        return config
    }

    /// Applies a YAML document (a file's text) over this configuration.
    public mutating func apply(yaml text: String, source: String) throws {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigurationError(source: source, key: nil, message: "not valid YAML (\(error))")
        }
        guard let node else { return }   // an empty file: all defaults
        guard case let .mapping(root) = node else {
            throw ConfigurationError(source: source, key: nil, message: "the top level must be a mapping of sections (path, model, training, …)")
        }
        try apply(mapping: root, prefix: "", source: source)
    }

    private mutating func apply(mapping: Node.Mapping, prefix: String, source: String) throws {
        for (keyNode, value) in mapping {
            guard let key = Self.scalar(keyNode) else {
                throw ConfigurationError(source: Self.at(source, keyNode), key: prefix.isEmpty ? nil : prefix, message: "keys must be plain names")
            }
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let field = Self.fieldIndex[path] {
                try set(field, value, source: Self.at(source, value))
            } else if Self.fields.contains(where: { $0.path.hasPrefix(path + ".") }) {
                guard case let .mapping(sub) = value else {
                    throw ConfigurationError(source: Self.at(source, value), key: path,
                                             message: "must be a section with keys \(Self.children(of: path).joined(separator: ", "))")
                }
                try apply(mapping: sub, prefix: path, source: source)
            } else {
                let known = Self.children(of: prefix)
                throw ConfigurationError(source: Self.at(source, keyNode), key: path,
                                         message: "unknown key; \(prefix.isEmpty ? "the sections are" : "'\(prefix)' has") \(known.joined(separator: ", "))")
            }
        }
    }

    private mutating func set(_ field: Field, _ value: Node, source: String) throws {
        do { try field.parse(&self, value) } catch let e as Invalid {
            let shown = Self.scalar(value).map { "'\($0)'" } ?? "a \(Self.kind(value))"
            throw ConfigurationError(source: source, key: field.path, message: "expected \(e.allowed), got \(shown)")
        }
    }

    /// `--set key.path=value`: the value is read as YAML (`[8, 16, 24, 24, 16]`, `0.001`, `seed`).
    public mutating func override(_ assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
            throw ConfigurationError(source: "--set \(assignment)", key: nil, message: "expected key.path=value")
        }
        let path = String(assignment[..<eq]), text = String(assignment[assignment.index(after: eq)...])
        guard let field = Self.fieldIndex[path] else {
            let near = Self.fields.map(\.path).filter { $0.hasPrefix(path.split(separator: ".").first.map { $0 + "." } ?? "") }
            throw ConfigurationError(source: "--set", key: path,
                                     message: "unknown key; " + (near.isEmpty ? "the keys are listed by alexnet train --print-config" : "known here: \(near.joined(separator: ", "))"))
        }
        let node: Node
        do { node = try Yams.compose(yaml: text) ?? Node("", Tag(.null)) } catch {
            throw ConfigurationError(source: "--set", key: path, message: "value '\(text)' is not valid YAML (\(error))")
        }
        try set(field, node, source: "--set")
    }

    private static func at(_ source: String, _ node: Node) -> String {
        node.mark.map { "\(source):\($0.line)" } ?? source
    }

    private static func kind(_ node: Node) -> String {
        switch node {
        case .scalar: return "scalar"
        case .mapping: return "mapping"
        case .sequence: return "list"
        case .alias: return "alias"
        }
    }

    /// The next path components under `prefix` ("" for the sections).
    static func children(of prefix: String) -> [String] {
        var seen: [String] = []
        for f in fields where prefix.isEmpty || f.path.hasPrefix(prefix + ".") {
            let rest = prefix.isEmpty ? f.path : String(f.path.dropFirst(prefix.count + 1))
            let name = String(rest.split(separator: ".")[0])
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    /// The configuration `alexnet train` runs: the file (or, when resuming without one, the copy
    /// the checkpoint keeps), then `resume`, then each `--set` in order, then `validate`.
    public static func resolve(file: String?, overrides: [String], resume: String?) throws -> TrainingConfig {
        var config = TrainingConfig()
        var source = "defaults"
        if let file {
            config = try load(file: file)
            source = file
        } else if let resume {
            if LoadedWeights.isPyTorch(resume) {
                throw ConfigurationError(source: resume, key: nil,
                                         message: "a PyTorch checkpoint keeps no configuration of this project's: give one with -c (configs/seed.yml for the seed's)")
            }
            let contents = try Checkpoint.read(resume)
            try config.apply(yaml: contents.configYAML, source: "\(resume) (its configuration)")
            source = resume
        }
        let embedded = file == nil && resume != nil ? config : nil
        if let resume { config.training.resumeFrom = resume }
        for o in overrides { try config.override(o) }
        if let embedded {
            // A checkpoint is a file that may come from anywhere: the paths its configuration
            // names are followed only inside the current folder, unless the command line gives them.
            let given = Set(overrides.map { String($0.prefix { $0 != "=" }) })
            let outside = embedded.pathsOutsideTheCurrentFolder.filter { !given.contains($0.key) }
            if let first = outside.first {
                throw ConfigurationError(source: "\(resume!) (its configuration)", key: first.key, message:
                    "is '\(first.value)', outside the current folder; a checkpoint's own paths are followed only when relative and inside it. "
                    + "To use its paths, give them on the command line: " + outside.map(\.flag).joined(separator: " "))
            }
        }
        try config.validate(source: overrides.isEmpty ? source : "\(source) with --set")
        return config
    }

    /// The path keys whose values are absolute or climb out of the current folder (`..`), as
    /// the `--set` flags that give them on the command line: what resuming from a checkpoint's
    /// own configuration needs (`resolve`).
    public var pathsOutsideTheCurrentFolder: [(key: String, value: String, flag: String)] {
        Self.pathKeys.compactMap { key, path in
            let value = self[keyPath: path]
            guard value.hasPrefix("/") || value.split(separator: "/").contains("..") else { return nil }
            let plain = value.allSatisfy { $0.isLetter || $0.isNumber || "/._-+,:@".contains($0) }
            return (key, value, "--set " + (plain ? "\(key)=\(value)" : "'\(key)=\(value.replacingOccurrences(of: "'", with: "'\\''"))'"))
        }
    }

    /// The keys that name files or folders.
    static let pathKeys: [(String, WritableKeyPath<TrainingConfig, String>)] = [
        ("path.dataset", \.path.dataset), ("path.log_dir", \.path.logDir), ("path.checkpoint_dir", \.path.checkpointDir),
        ("augmentations.statistics", \.augmentations.statistics), ("training.start_from", \.training.startFrom),
    ]

    // MARK: checks across keys

    /// What no single key can check: combinations, and the network's shape. Runs before any work.
    public func validate(source: String) throws {
        func fail(_ key: String, _ message: String) -> ConfigurationError { ConfigurationError(source: source, key: key, message: message) }
        if path.dataset.isEmpty && training.resumeFrom.isEmpty { throw fail("path.dataset", "is required (a folder with train/ and val/)") }
        do { try model.validate(training: training.precision) } catch let e as ConfigError { throw fail("model", e.message) }
        if augmentations.mean == .pixel && augmentations.statistics.isEmpty {
            throw fail("augmentations.mean", "pixel needs a mean image: set augmentations.statistics to the output of `alexnet stats`, or use mean: channel")
        }
        if !augmentations.statistics.isEmpty && !FileManager.default.fileExists(atPath: augmentations.statistics) {
            throw fail("augmentations.statistics", "no such file '\(augmentations.statistics)'")
        }
        for (key, file) in [("training.resume_from", training.resumeFrom), ("training.start_from", training.startFrom)]
        where !file.isEmpty && !FileManager.default.fileExists(atPath: file) {
            throw fail(key, "no such file '\(file)'")
        }
        if !training.resumeFrom.isEmpty && !training.startFrom.isEmpty {
            throw fail("training.start_from", "cannot be combined with training.resume_from (a resumed run has its weights)")
        }
        if !path.runName.isEmpty && (path.runName.contains("/") || path.runName.hasPrefix(".")) {
            throw fail("path.run_name", "'\(path.runName)' must be a plain folder name (no '/', not starting with '.')")
        }
        if training.threads > 0 && training.loaderThreads > training.threads {
            throw fail("training.loader_threads", "\(training.loaderThreads) is more than the budget training.threads = \(training.threads)")
        }
        // The bounds of `Limits`, so that a configuration cannot ask for what the command line refuses.
        for (key, value) in [("training.threads", training.threads), ("training.loader_threads", training.loaderThreads)] where value > Limits.maxThreads {
            throw fail(key, "\(value) is more than \(Limits.maxThreads) (4 threads per core on this machine)")
        }
        for (key, value) in [("training.batch_size", training.batchSize), ("training.eval_batch_size", training.evalBatchSize)] where value > Limits.maxBatch {
            throw fail(key, "\(value) is more than \(Limits.maxBatch)")
        }
    }

    // MARK: writing

    /// The whole configuration as YAML, one key per line under its section, with what each
    /// accepts as a comment: `--print-config`'s output and the copy a checkpoint keeps.
    public func yaml(comments: Bool = true) -> String {
        var out = "", open: [String] = []
        for f in Self.fields {
            let parts = f.path.split(separator: ".").map(String.init)
            var common = 0
            while common < min(open.count, parts.count - 1) && open[common] == parts[common] { common += 1 }
            open = Array(open.prefix(common))
            for depth in common..<(parts.count - 1) {
                if depth == 0 && !out.isEmpty { out += "\n" }
                out += String(repeating: "  ", count: depth) + parts[depth] + ":\n"
                open.append(parts[depth])
            }
            let line = String(repeating: "  ", count: parts.count - 1) + parts.last! + ": " + f.render(self)
            out += line + (comments ? String(repeating: " ", count: max(1, 44 - line.count)) + "# " + f.help : "") + "\n"
        }
        return out
    }
}
