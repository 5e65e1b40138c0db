import AlexNetCore
import AlexNetKernels
import Foundation

/// AlexNet (docs/DESIGN.md, Network), built for one batch size and one mode from the configuration's list
/// of layers (`NetworkConfig.layers`, in Architecture.swift), one kernel-backed layer per entry:
///
///   x (N, 3, S, S) plain
///   conv1 + ReLU → LRN → max-pool      (N, w1, 27, 27) for S = 224
///   conv2 + ReLU → LRN → max-pool      (N, w2, 13, 13)
///   conv3 + ReLU, conv4 + ReLU, conv5 + ReLU → max-pool   (N, w5, 6, 6)
///   flatten                            (N, w5·36)
///   paper: fc6 + ReLU → dropout → fc7 + ReLU → dropout → fc8          → logits (N, classes)
///   seed:  dropout → fc6 + ReLU → dropout → fc7 + ReLU → fc8 + ReLU   → logits
///   (torchvision: no LRN, a 6×6 adaptive average pool before flatten, the seed's dropouts, logits)
///
/// The trunk runs in the blocked layouts the convolution kernels choose, each layer built for its
/// predecessor's `output.layout`; the classifier runs plain. Parameters live in a `ParameterStore` that several networks may
/// share (a training network at batch 128 and an inference network at batch 1 read the same weights).
public final class Network {
    public let config: NetworkConfig
    public let batch: Int
    public let mode: Mode
    /// What the convolutions and linear layers compute in (`Precision`).
    public let precision: Precision
    public let engine: Engine
    public let parameters: ParameterStore
    /// Fill this with the batch (plain NCHW) before `forward` (`setInput`, `bindInput`).
    public let input: DeviceTensor
    public let layers: [Layer]
    /// The two dropout layers in network order (training only).
    public let dropouts: [Dropout]
    public let criterion: SoftmaxCrossEntropy?
    /// Per-layer timings, when set.
    public var profiler: Profiler?
    /// The logits' floats in place: fc8's output is plain (N, classes).
    private let logitValues: UnsafeMutableBufferPointer<Float>

    /// Throws `PrecisionError` for bf16 on a CPU without native bf16 instructions (from its first
    /// convolution's kernel).
    public init(config: NetworkConfig, batch: Int, mode: Mode, precision: Precision = .fp32, parameters: ParameterStore,
                engine: Engine) throws {
        try config.validate()
        guard batch > 0 else { throw ConfigError(message: "batch size must be positive, got \(batch)") }
        // Every image keeps its input and each layer's output; training also keeps their
        // gradients and the layers' saved state, about three times as much. Refused here, with
        // the size, rather than by the kernel's out-of-memory killer half-way through.
        let perImage = try config.shapes().reduce(3 * config.inputSize * config.inputSize) { $0 + $1.output.reduce(1, *) }
        try Limits.check(memory: batch, bytesEach: perImage * MemoryLayout<Float>.stride * (mode == .training ? 3 : 1),
                         what: "the activations\(mode == .training ? " and gradients" : "") of \(mode == .training ? "training" : "inference")",
                         flags: "batch \(batch):", advice: "lower the batch size")
        (self.config, self.batch, self.mode, self.precision, self.engine, self.parameters) = (config, batch, mode, precision, engine, parameters)
        input = try DeviceTensor.plain([batch, 3, config.inputSize, config.inputSize], engine: engine)

        var layers: [Layer] = []
        var dropouts: [Dropout] = []
        var layout = input.layout
        func add(_ layer: Layer) { layers.append(layer); layout = layer.output.layout }
        let specs = config.layers
        for (i, spec) in specs.enumerated() {
            // A ReLU right after a convolution or linear layer runs fused into it (a post-op, and
            // its backward in place on their ∂output).
            let fuseReLU = i + 1 < specs.count && specs[i + 1].isReLU
            switch spec {
            case .convolution(let name, let g):
                add(try Conv2d(name: name, geometry: g, input: layout, fusedReLU: fuseReLU, mode: mode,
                               inputGradient: !layers.isEmpty, precision: precision, parameters: parameters, engine: engine))
            case .linear(let name, let inFeatures, let outFeatures):
                add(try Linear(name: name, inFeatures: inFeatures, outFeatures: outFeatures, input: layout, fusedReLU: fuseReLU,
                               mode: mode, precision: precision, parameters: parameters, engine: engine))
            case .relu(let name):
                if i == 0 || !specs[i - 1].takesFusedReLU { add(try ReLU(name: name, input: layout, mode: mode, engine: engine)) }
            case .lrn(let name, let constants):
                add(try LocalResponseNorm(name: name, constants: constants, input: layout, mode: mode, engine: engine))
            case .maxPool(let name, let kernel, let stride):
                add(try MaxPool(name: name, kernel: kernel, stride: stride, input: layout, mode: mode, engine: engine))
            case .adaptiveAveragePool(let name, let size):
                // Maps of the pool's size already (torchvision at 224 pixels) pass unchanged.
                if layout.dims[2] != size || layout.dims[3] != size {
                    add(try AdaptiveAveragePool(name: name, size: size, input: layout, mode: mode, engine: engine))
                }
            case .flatten(let name):
                add(try Flatten(name: name, input: layout, mode: mode, engine: engine))
            case .dropout(let name, let probability):
                // Inference keeps every unit (PyTorch's inverted dropout scales at training time).
                guard mode == .training else { continue }
                let d = try Dropout(name: name, probability: probability, input: layout, engine: engine)
                dropouts.append(d); add(d)
            }
        }
        self.layers = layers
        self.dropouts = dropouts
        logitValues = try layers[layers.count - 1].output.plainFloats()
        criterion = mode == .training ? try SoftmaxCrossEntropy(batch: batch, classes: config.classes, engine: engine) : nil
    }

    /// The backend's implementation of each pass of each layer that has one, in network order.
    public var implementations: [(layer: String, pass: String, implementation: String)] {
        layers.flatMap { l in l.implementations.map { (l.name, $0.pass, $0.implementation) } }
    }

    /// A fresh parameter store shaped for `config` (zeros; see `Initialization`).
    public static func makeParameters(_ config: NetworkConfig) -> ParameterStore {
        ParameterStore(config.parameterShapes)
    }

    /// (N, classes), plain.
    public var logits: DeviceTensor { layers[layers.count - 1].output }

    /// Copies a plain (N, 3, S, S) tensor into the input buffer.
    public func setInput(_ x: Tensor) throws {
        guard x.shape == input.dims else {
            throw ShapeError(what: "network input", shape: x.shape, expected: "\(input.dims) (N, 3, S, S) for this network")
        }
        try input.write(x)
    }

    /// Reads the next forward (and backward) pass's input in place from `pointer`: plain
    /// (N, 3, S, S) floats that the caller keeps unchanged until the step is done (a loader's batch
    /// buffer), so batches reach the network without a copy.
    public func bindInput(_ pointer: UnsafeMutablePointer<Float>) throws {
        try input.bind(to: pointer)
    }

    public func forward() throws {
        var x = input
        for layer in layers {
            let t0 = profiler == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try layer.forward(x)
            if let profiler { profiler.add(layer.name, .forward, since: t0) }
            x = layer.output
        }
    }

    /// Cross-entropy of the current logits against `labels` (mean over the batch).
    public func loss(labels: [Int]) throws -> Float {
        guard let criterion else { throw LayerError.notTraining("network") }
        return try criterion.forward(logits: logitValues.baseAddress!, labels: labels)
    }

    /// Fills every parameter gradient (overwriting, not accumulating) from the last `loss`.
    /// `afterEach` runs after each layer's backward, fc8 first (a distributed run starts summing
    /// the gradients that are final while the rest of the pass runs).
    public func backward(afterEach: ((Layer) throws -> Void)? = nil) throws {
        guard let criterion else { throw LayerError.notTraining("network") }
        criterion.backward()
        var dOutput = criterion.dLogits
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[i]
            let t0 = profiler == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try layer.backward(input: i == 0 ? input : layers[i - 1].output, dOutput: dOutput)
            if let profiler { profiler.add(layer.name, .backward, since: t0) }
            try afterEach?(layer)
            guard let d = layer.dInput else { break }
            dOutput = d
        }
    }

    /// Draws this step's dropout masks: row i for dataset sample `samples[i]`, from generators
    /// seeded by (seed, epoch, sample, layer) (see `Dropout.drawMask`).
    public func drawDropoutMasks(seed: UInt64, epoch: Int, samples: [Int]) {
        for (layer, d) in dropouts.enumerated() { d.drawMask(seed: seed, epoch: epoch, samples: samples, layer: layer) }
    }

    /// Copies of the logits as a plain tensor.
    public func logitsTensor() -> Tensor {
        Tensor(shape: [batch, config.classes], data: Array(logitValues))
    }
}
