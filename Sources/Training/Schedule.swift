import AlexNetModel
import Foundation

/// Learning-rate schedules (docs/DESIGN.md, Schedules), stepped once per epoch, with their whole
/// state in one value so a checkpoint can save it and a resumed run continue it exactly.
///
/// - `plateau`: PyTorch's `ReduceLROnPlateau` (the seed's), every parameter of it.
/// - `manual`: what the authors did by hand (paper section 5: "divide the learning rate by 10 when
///   the validation error rate stopped improving with the current learning rate … reduced three
///   times prior to termination"): either a fixed list of (epoch, lr) pairs, or that rule applied
///   automatically with a patience and a maximum number of reductions.
/// - `step`: lr × γ every s epochs (PyTorch's `StepLR`).
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case plateau, manual, step }

    /// The metric a schedule (and the best checkpoint) watches; all three are errors or losses,
    /// so lower is better unless `Plateau.mode` says otherwise.
    public enum Metric: String, Sendable, Codable, CaseIterable {
        case top1Error = "top1_error", top5Error = "top5_error", loss
    }

    public struct Plateau: Sendable, Equatable, Codable {
        public enum Mode: String, Sendable, Codable, CaseIterable { case min, max }
        public enum ThresholdMode: String, Sendable, Codable, CaseIterable { case rel, abs }
        public var mode = Mode.min
        public var factor = 0.1
        public var patience = 10
        public var threshold = 1e-4
        public var thresholdMode = ThresholdMode.rel
        public var cooldown = 0
        public var minLR = 0.0
        public var eps = 1e-8
        public init() {}

        /// PyTorch's `is_better`.
        func isBetter(_ a: Double, than best: Double) -> Bool {
            switch (mode, thresholdMode) {
            case (.min, .rel): return a < best * (1 - threshold)
            case (.min, .abs): return a < best - threshold
            case (.max, .rel): return a > best * (threshold + 1)
            case (.max, .abs): return a > best + threshold
            }
        }
    }

    public struct Manual: Sendable, Equatable, Codable {
        /// (epoch, lr): from that epoch (counted from 1) on, the learning rate is lr. When empty,
        /// the paper's rule runs instead, with the fields below.
        public var milestones: [Milestone] = []
        public var factor = 0.1
        /// Epochs in a row without improvement (relative `threshold`) at the current rate before
        /// dividing it.
        public var patience = 5
        public var threshold = 1e-4
        /// The paper reduced the rate three times.
        public var maxDrops = 3
        public init() {}
    }

    public struct Milestone: Sendable, Equatable, Codable {
        public var epoch: Int
        public var lr: Double
        public init(epoch: Int, lr: Double) { (self.epoch, self.lr) = (epoch, lr) }
    }

    public struct Step: Sendable, Equatable, Codable {
        public var stepSize = 30
        public var gamma = 0.1
        public init() {}
    }

    /// What changes from epoch to epoch (everything a resumed run needs).
    public struct State: Sendable, Equatable, Codable {
        public var lr: Double
        /// Epochs stepped so far.
        public var epochs = 0
        /// Best metric seen (plateau: at all; manual: at the current rate).
        public var best: Double?
        public var badEpochs = 0
        public var cooldownCounter = 0
        public var drops = 0
    }

    public var kind: Kind
    public var baseLR: Double
    public var plateau = Plateau()
    public var manual = Manual()
    public var step = Step()
    public var state: State

    public init(kind: Kind, baseLR: Double, plateau: Plateau = .init(), manual: Manual = .init(), step: Step = .init()) {
        (self.kind, self.baseLR, self.plateau, self.manual, self.step) = (kind, baseLR, plateau, manual, step)
        state = State(lr: baseLR)
        state.lr = lr(forEpoch: 1)
    }

    public var learningRate: Double { state.lr }

    /// Whether `step(metric:)` needs a validation metric.
    public var needsMetric: Bool {
        switch kind {
        case .plateau: return true
        case .manual: return manual.milestones.isEmpty
        case .step: return false
        }
    }

    /// The rate fixed schedules give to `epoch` (counted from 1).
    private func lr(forEpoch epoch: Int) -> Double {
        switch kind {
        case .step: return baseLR * pow(step.gamma, Double((epoch - 1) / step.stepSize))
        case .manual where !manual.milestones.isEmpty:
            return manual.milestones.filter { $0.epoch <= epoch }.max { $0.epoch < $1.epoch }?.lr ?? baseLR
        default: return state.lr
        }
    }

    /// Called after each epoch with the watched metric (nil when the epoch was not validated);
    /// returns the rate for the next epoch.
    @discardableResult
    public mutating func step(metric: Double?) -> Double {
        state.epochs += 1
        switch kind {
        case .plateau:
            // torch.optim.lr_scheduler.ReduceLROnPlateau.step, line for line.
            guard let current = metric else { break }
            if state.best.map({ plateau.isBetter(current, than: $0) }) ?? (plateau.mode == .min ? current < .infinity : current > -.infinity) {
                state.best = current
                state.badEpochs = 0
            } else {
                state.badEpochs += 1
            }
            if state.cooldownCounter > 0 {
                state.cooldownCounter -= 1
                state.badEpochs = 0
            }
            if state.badEpochs > plateau.patience {
                let new = max(state.lr * plateau.factor, plateau.minLR)
                if state.lr - new > plateau.eps { state.lr = new }
                state.cooldownCounter = plateau.cooldown
                state.badEpochs = 0
            }
        case .manual where manual.milestones.isEmpty:
            guard let current = metric, state.drops < manual.maxDrops else { break }
            if let best = state.best, !(current < best * (1 - manual.threshold)) {
                state.badEpochs += 1
            } else {
                state.best = current
                state.badEpochs = 0
            }
            if state.badEpochs >= manual.patience {
                state.lr *= manual.factor
                state.drops += 1
                // "Improving with the current learning rate": the comparison starts afresh.
                state.best = nil
                state.badEpochs = 0
            }
        case .manual, .step:
            state.lr = lr(forEpoch: state.epochs + 1)
        }
        return state.lr
    }
}
