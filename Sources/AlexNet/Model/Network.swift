import Foundation

/// AlexNet (SPEC section 1), built for one batch size and one mode.
///
///   x (N, 3, S, S) plain
///   conv1 + ReLU → LRN → max-pool      (N, w1, 27, 27) for S = 224
///   conv2 + ReLU → LRN → max-pool      (N, w2, 13, 13)
///   conv3 + ReLU, conv4 + ReLU, conv5 + ReLU → max-pool   (N, w5, 6, 6)
///   flatten                            (N, w5·36)
///   paper: fc6 + ReLU → dropout → fc7 + ReLU → dropout → fc8          → logits (N, classes)
///   seed:  dropout → fc6 + ReLU → dropout → fc7 + ReLU → fc8 + ReLU   → logits
///
/// The trunk runs in the blocked layouts the convolution kernels choose, each layer built for its
/// predecessor's `output.layout`; the classifier runs plain. Parameters live in a `ParameterStore` that several networks may
/// share (a training network at batch 128 and an inference network at batch 1 read the same weights).
public final class Network {
    public let config: NetworkConfig
    public let batch: Int
    public let mode: Mode
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

    public init(config: NetworkConfig, batch: Int, mode: Mode, parameters: ParameterStore, engine: Engine) throws {
        try config.validate()
        guard batch > 0 else { throw ConfigError(message: "batch size must be positive, got \(batch)") }
        (self.config, self.batch, self.mode, self.engine, self.parameters) = (config, batch, mode, engine, parameters)
        input = try DeviceTensor.plain([batch, 3, config.inputSize, config.inputSize], engine: engine)

        var layers: [Layer] = []
        var dropouts: [Dropout] = []
        var layout = input.layout
        func add(_ layer: Layer) { layers.append(layer); layout = layer.output.layout }
        func dropout(_ name: String) throws {
            guard mode == .training else { return }
            let d = try Dropout(name: name, probability: config.dropout, input: layout, engine: engine)
            dropouts.append(d); add(d)
        }

        for (i, conv) in config.convolutions.enumerated() {
            add(try Conv2d(name: conv.name, geometry: conv.geometry, input: layout, fusedReLU: true, mode: mode,
                           inputGradient: i > 0, parameters: parameters, engine: engine))
            if i < 2 { add(try LocalResponseNorm(name: "lrn\(i + 1)", constants: config.lrn, input: layout, mode: mode, engine: engine)) }
            if i < 2 || i == 4 { add(try MaxPool(name: "pool\(i == 4 ? 5 : i + 1)", input: layout, mode: mode, engine: engine)) }
        }
        add(try Flatten(input: layout, mode: mode, engine: engine))
        let (fc6, fc7, fc8) = (config.linears[0], config.linears[1], config.linears[2])
        func linear(_ l: (name: String, inFeatures: Int, outFeatures: Int), relu: Bool) throws {
            add(try Linear(name: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, input: layout, fusedReLU: relu,
                           mode: mode, parameters: parameters, engine: engine))
        }
        switch config.variant {
        case .paper:
            try linear(fc6, relu: true); try dropout("dropout6")
            try linear(fc7, relu: true); try dropout("dropout7")
            try linear(fc8, relu: false)
        case .seed:
            try dropout("dropout5"); try linear(fc6, relu: true)
            try dropout("dropout6"); try linear(fc7, relu: true)
            try linear(fc8, relu: true)
        }
        self.layers = layers
        self.dropouts = dropouts
        logitValues = try layers[layers.count - 1].output.plainFloats()
        criterion = mode == .training ? try SoftmaxCrossEntropy(batch: batch, classes: config.classes, engine: engine) : nil
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
    public func backward() throws {
        guard let criterion else { throw LayerError.notTraining("network") }
        criterion.backward()
        var dOutput = criterion.dLogits
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[i]
            let t0 = profiler == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try layer.backward(input: i == 0 ? input : layers[i - 1].output, dOutput: dOutput)
            if let profiler { profiler.add(layer.name, .backward, since: t0) }
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

/// Accumulated wall time per (layer, pass), for `alexnet bench --layers`.
public final class Profiler {
    public enum Pass: String, Sendable { case forward, backward, update }
    public private(set) var order: [String] = []
    public private(set) var seconds: [String: [Pass: Double]] = [:]

    public init() {}

    public func add(_ name: String, _ pass: Pass, since start: UInt64) {
        let dt = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if seconds[name] == nil { order.append(name); seconds[name] = [:] }
        seconds[name]![pass, default: 0] += dt
    }

    public func reset() { order = []; seconds = [:] }
}
