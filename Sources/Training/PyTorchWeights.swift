import AlexNetInterop
import AlexNetModel
import Foundation

/// A PyTorch file read as AlexNet weights (docs/DESIGN.md, Files): a state dict (the seed's
/// `alexnet_best_<epoch>_<metric>.pt`, torchvision's `alexnet`), or the seed's full checkpoint
/// dict (`alexnet_<epoch>_<metric>_full.pt`: `epoch`, `model`, `optimizer`, `scheduler`), whose
/// SGD momentum buffers, epoch and ReduceLROnPlateau state a resumed run takes over.
public struct PyTorchWeights {
    public let path: String
    public let naming: ParameterNaming
    /// Parameter shapes under this project's names.
    public let shapes: [String: [Int]]
    /// Epochs completed (full checkpoints).
    public let epoch: Int?
    /// The optimizer's hyperparameters and momentum buffers (full checkpoints).
    public let optimizer: Optimizer?
    /// The plateau scheduler's state (full checkpoints).
    public let scheduler: LearningRateSchedule.State?
    public let schedulerSettings: LearningRateSchedule.Plateau?

    public struct Optimizer {
        public var lr: Double
        public var momentum: Double
        public var weightDecay: Double
        /// By this project's parameter name; empty before the first step.
        public var buffers: [String: TorchTensor]
    }

    private let file: PyTorchFile
    private let tensors: [String: TorchTensor]

    public init(path: String) throws {
        let file = try PyTorchFile(path: path)
        func fail(_ reason: String) -> PyTorchFile.Failure { PyTorchFile.Failure(path: path, reason: reason) }
        let root = file.root
        let model = root["model"] ?? root["state_dict"] ?? root
        guard let stateDict = PyTorchFile.stateDict(model) else {
            throw fail("holds \(root), not a state dict (name → tensor) or a checkpoint dict with one under 'model'")
        }
        let names = stateDict.map(\.name)
        let naming: ParameterNaming
        do { naming = try ParameterNaming.detect(names) } catch { throw fail("\(error)") }
        var tensors: [String: TorchTensor] = [:], shapes: [String: [Int]] = [:]
        for (name, t) in stateDict {
            let native = naming.nativeName(name)!
            (tensors[native], shapes[native]) = (t, t.shape)
        }
        (self.path, self.file, self.naming, self.tensors, self.shapes) = (path, file, naming, tensors, shapes)
        epoch = root["epoch"]?.int

        // torch.optim.SGD's state dict: param_groups[0] (lr, momentum, weight_decay, params: the
        // indices of model.parameters(), i.e. the state dict's order) and state[index].momentum_buffer.
        if let optimizer = root["optimizer"] {
            guard let groups = optimizer["param_groups"]?.items, groups.count == 1, let group = groups.first,
                  let lr = group["lr"]?.double, let params = group["params"]?.items?.compactMap(\.int), params.count == names.count else {
                throw fail("its optimizer state is not one SGD parameter group over the model's \(names.count) parameters")
            }
            var buffers: [String: TorchTensor] = [:]
            for (key, value) in optimizer["state"]?.entries ?? [] {
                guard let i = key.int, let position = params.firstIndex(of: i), let buffer = value["momentum_buffer"]?.tensor else {
                    throw fail("optimizer state entry \(key) is not a momentum buffer of one of the parameters")
                }
                let native = naming.nativeName(names[position])!
                guard buffer.shape == shapes[native] else {
                    throw fail("the momentum buffer of \(names[position]) has shape \(buffer.shape), the parameter \(shapes[native]!)")
                }
                buffers[native] = buffer
            }
            let momentum = group["momentum"]?.double ?? 0, weightDecay = group["weight_decay"]?.double ?? 0
            guard lr.isFinite, lr > 0 else { throw fail("its optimizer's learning rate is \(lr); it must be a finite number > 0") }
            guard momentum >= 0, momentum < 1 else { throw fail("its optimizer's momentum is \(momentum); it must be ≥ 0 and < 1") }
            guard weightDecay.isFinite, weightDecay >= 0 else { throw fail("its optimizer's weight decay is \(weightDecay); it must be a finite number ≥ 0") }
            self.optimizer = Optimizer(lr: lr, momentum: momentum, weightDecay: weightDecay, buffers: buffers)
        } else {
            optimizer = nil
        }

        // ReduceLROnPlateau.state_dict(): its settings and best, num_bad_epochs, cooldown_counter,
        // last_epoch and _last_lr.
        if let s = root["scheduler"], s["num_bad_epochs"] != nil {
            var p = LearningRateSchedule.Plateau()
            if let m = s["mode"]?.string { p.mode = LearningRateSchedule.Plateau.Mode(rawValue: m) ?? p.mode }
            p.factor = s["factor"]?.double ?? p.factor
            p.patience = s["patience"]?.int ?? p.patience
            p.threshold = s["threshold"]?.double ?? p.threshold
            if let m = s["threshold_mode"]?.string { p.thresholdMode = LearningRateSchedule.Plateau.ThresholdMode(rawValue: m) ?? p.thresholdMode }
            p.cooldown = s["cooldown"]?.int ?? p.cooldown
            p.minLR = s["min_lrs"]?.items?.first?.double ?? p.minLR
            p.eps = s["eps"]?.double ?? p.eps
            guard p.factor > 0, p.factor < 1 else { throw fail("its scheduler's factor is \(p.factor); it must be > 0 and < 1") }
            guard p.threshold.isFinite, p.threshold >= 0, p.minLR.isFinite, p.minLR >= 0, p.eps.isFinite, p.eps >= 0, p.patience >= 0, p.cooldown >= 0 else {
                throw fail("its scheduler's settings are out of range (threshold \(p.threshold), min_lr \(p.minLR), eps \(p.eps), patience \(p.patience), cooldown \(p.cooldown))")
            }
            guard let lr = s["_last_lr"]?.items?.first?.double ?? optimizer?.lr else { throw fail("its scheduler state has no learning rate") }
            var state = LearningRateSchedule.State(lr: lr)
            state.epochs = s["last_epoch"]?.int ?? 0
            // PyTorch starts `best` at ±inf (mode_worse): no metric seen yet.
            state.best = s["best"]?.double.flatMap { $0.isFinite ? $0 : nil }
            state.badEpochs = s["num_bad_epochs"]?.int ?? 0
            state.cooldownCounter = s["cooldown_counter"]?.int ?? 0
            (scheduler, schedulerSettings) = (state, p)
        } else {
            (scheduler, schedulerSettings) = (nil, nil)
        }
    }

    /// Copies a parameter (this project's name) into `destination`, checking its shape.
    public func copy(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        try copy(tensors[name], name: name, shape: shape, into: destination)
    }

    /// Copies a momentum buffer; zeros where the checkpoint has none (no step taken yet).
    public func copyMomentum(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        guard let t = optimizer?.buffers[name] else { destination.update(repeating: 0, count: shape.reduce(1, *)); return }
        try copy(t, name: "momentum of " + name, shape: shape, into: destination)
    }

    private func copy(_ t: TorchTensor?, name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        guard let t else { throw PyTorchFile.Failure(path: path, reason: "no tensor for \(name) (\(naming.foreignName(name) ?? name))") }
        guard t.shape == shape else {
            throw PyTorchFile.Failure(path: path, reason: "\(naming.foreignName(name) ?? name) has shape \(t.shape), the network needs \(shape)")
        }
        let values = try file.floats(t, name: naming.foreignName(name) ?? name)
        values.withUnsafeBufferPointer { destination.update(from: $0.baseAddress!, count: values.count) }
    }
}
