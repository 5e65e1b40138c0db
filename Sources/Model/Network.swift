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
    /// Where the layers' step-bound buffers (activations, what backward reads, gradients,
    /// scratch) live, when the network was built with `plannedMemory`; nil otherwise, each buffer
    /// then having its own allocation.
    public let memoryPlan: BufferPlan?
    /// The one allocation `memoryPlan` lays out.
    private let arena: FloatBuffer?
    /// A check for tests: with it set, the whole arena is filled with bytes 0xFF (a NaN in
    /// float32 and in bfloat16) at once, and each of its buffers again after the last step of
    /// each range of steps it declared, so a kernel that reads a buffer outside its lifetime, or
    /// before writing it, computes NaN instead of whatever happened to be left there
    /// (`MemoryPlanTests`). No effect without an arena.
    package var poisonsDeadBuffers = false {
        didSet {
            guard poisonsDeadBuffers, let plan = memoryPlan, let arena else { return }
            let base = UnsafeMutableRawPointer(arena.pointer)
            memset(base, 0xFF, plan.size)
            deadAfterStep = [:]
            for (request, offset) in zip(plan.requests, plan.offsets) {
                for range in request.steps { deadAfterStep[range.upperBound, default: []].append(base + offset ..< base + offset + request.bytes) }
            }
        }
    }
    /// The byte ranges of the buffers whose contents stop mattering after each step (filled
    /// while `poisonsDeadBuffers` is set).
    private var deadAfterStep: [Int: [Range<UnsafeMutableRawPointer>]] = [:]
    /// The input's own memory, made by the first `setInput` (a network fed by `bindInput` reads
    /// its caller's buffers and needs none).
    private var inputStorage: FloatBuffer?

    /// Throws `PrecisionError` for bf16 on a CPU without native bf16 instructions (from its first
    /// convolution's kernel).
    ///
    /// `plannedMemory` (the default) puts every layer's activations, saved tensors, gradients and
    /// scratch in one arena laid out once from their lifetimes (`BufferPlan`): a buffer's bytes
    /// are reused once its last reader has run. A layer's output is then valid only until its
    /// readers in the step have run; the logits stay valid until the next `forward`. Without it,
    /// every buffer is its own allocation and keeps its contents (what tests compare against).
    public init(config: NetworkConfig, batch: Int, mode: Mode, precision: Precision = .fp32, parameters: ParameterStore,
                engine: Engine, plannedMemory: Bool = true) throws {
        try config.validate()
        guard batch > 0 else { throw ConfigError(message: "batch size must be positive, got \(batch)") }
        // A first bound before any kernel is made: an image's input and every layer's output,
        // about what a training network's planned arena holds (outputs die early, gradients and
        // saved tensors take their place), more than an inference one's. The plan's own size is
        // checked before the arena is allocated. Refused here, with the size, rather than by the
        // kernel's out-of-memory killer half-way through.
        let perImage = try config.shapes().reduce(3 * config.inputSize * config.inputSize) { $0 + $1.output.reduce(1, *) }
        try Self.checkMemory(batch: batch, mode: mode, images: batch, bytesEach: perImage * MemoryLayout<Float>.stride)
        (self.config, self.batch, self.mode, self.precision, self.engine, self.parameters) = (config, batch, mode, precision, engine, parameters)
        input = try DeviceTensor.awaitingMemory(TensorLayout.plain([batch, 3, config.inputSize, config.inputSize]), engine: engine)
        let recorder = plannedMemory ? ArenaRecorder() : nil
        engine.recorder = recorder
        defer { engine.recorder = nil }

        var layers: [Layer] = []
        var dropouts: [Dropout] = []
        var layout = input.layout
        func add(_ layer: Layer) { layers.append(layer); layout = layer.output.layout; recorder?.layer = layers.count }
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
        if let recorder {
            engine.recorder = nil
            (memoryPlan, arena) = try Self.placeBuffers(recorder, layers: layers, batch: batch, mode: mode)
        } else {
            (memoryPlan, arena) = (nil, nil)
        }
        logitValues = try layers[layers.count - 1].output.plainFloats()
        criterion = mode == .training ? try SoftmaxCrossEntropy(batch: batch, classes: config.classes, engine: engine) : nil
    }

    /// The backend's implementation of each pass of each layer that has one, in network order.
    public var implementations: [(layer: String, pass: String, implementation: String)] {
        layers.flatMap { l in l.implementations.map { (l.name, $0.pass, $0.implementation) } }
    }

    /// A fresh parameter store shaped for `config` (zeros; see `Initialization`): for a training
    /// run in `training` (by default fp32), its gradients kept as that precision keeps them; for
    /// inference (nil), float32 gradients that are never touched.
    /// Throws `ConfigError` or `LimitError` for a configuration `validate` refuses (one whose
    /// parameters would not fit in memory for the use among them), before anything is allocated.
    public static func makeParameters(_ config: NetworkConfig, training: Precision? = .fp32) throws -> ParameterStore {
        try config.validate(training: training)
        return ParameterStore(config.parameterShapes, gradientFormat: (training ?? .fp32).gradientFormat)
    }

    /// (N, classes), plain.
    public var logits: DeviceTensor { layers[layers.count - 1].output }

    /// Copies a plain (N, 3, S, S) tensor into the input buffer.
    public func setInput(_ x: Tensor) throws {
        guard x.shape == input.dims else {
            throw ShapeError(what: "network input", shape: x.shape, expected: "\(input.dims) (N, 3, S, S) for this network")
        }
        if !input.hasMemory {
            let storage = try FloatBuffer(count: input.dims.reduce(1, *), zeroed: false, for: "the network's input")
            try input.place(at: storage.pointer)
            inputStorage = storage
        }
        try input.write(x)
    }

    /// The steps of one pass through a network of `layers` layers: 0 fills the input, 1 + i is
    /// layer i's forward pass, then the loss, then the backward passes from the last layer to
    /// the first, and a last step after them (what callers read afterwards).
    struct Steps {
        let layers: Int
        func forward(_ i: Int) -> Int { 1 + i }
        var loss: Int { layers + 1 }
        func backward(_ i: Int) -> Int { 2 * layers + 1 - i }
        var end: Int { 2 * layers + 2 }
    }

    /// Plans the arena for the buffers the layers' kernels asked for and places them in it.
    /// A layer's output lives from its forward pass to its last reader: the next layer's forward
    /// pass, and its own or the next layer's backward pass if they read it (the logits, to the
    /// end). In inference only the forward steps exist, so the plan is the forward half.
    static func placeBuffers(_ recorder: ArenaRecorder, layers: [Layer], batch: Int, mode: Mode) throws -> (BufferPlan, FloatBuffer) {
        let s = Steps(layers: layers.count)
        let last = layers.count - 1
        let training = mode == .training
        let plan = try recorder.plan(steps: { e in
            let i = e.layer
            let forward = s.forward(i), backward = training ? s.backward(i) : forward
            switch e.lifetime {
            case .persistent: return [0...s.end]
            case .forwardScratch: return [forward...forward]
            case .backwardScratch: return [backward...backward]
            case .scratch: return [forward...forward, backward...backward]
            case .saved: return [forward...backward]
            case .inputGradient: return [backward...(i == 0 ? s.end : s.backward(i - 1))]
            case .output:
                guard i < last else { return [forward...s.end] }
                var end = s.forward(i + 1)
                if training && layers[i].readsOutputInBackward { end = max(end, s.backward(i)) }
                if training && layers[i + 1].readsInputInBackward { end = max(end, s.backward(i + 1)) }
                return [forward...end]
            }
        }, name: { e in
            "\(e.layer < layers.count ? layers[e.layer].name : "?") \(e.lifetime.rawValue) \(e.tensor.layout)"
        })
        try checkMemory(batch: batch, mode: mode, images: 1, bytesEach: plan.size)
        return (plan, try recorder.place(plan))
    }

    /// Throws `LimitError` when a network's activations, gradients and scratch (`images` ×
    /// `bytesEach`) would take more than half of this machine's memory.
    static func checkMemory(batch: Int, mode: Mode, images: Int, bytesEach: Int) throws {
        try Limits.check(memory: images, bytesEach: bytesEach,
                         what: "the activations\(mode == .training ? ", gradients" : "") and scratch of \(mode == .training ? "training" : "inference")",
                         flags: "batch \(batch):", advice: "lower the batch size")
    }

    /// Reads the next forward (and backward) pass's input in place from `pointer`: plain
    /// (N, 3, S, S) floats that the caller keeps unchanged until the step is done (a loader's batch
    /// buffer), so batches reach the network without a copy.
    public func bindInput(_ pointer: UnsafeMutablePointer<Float>) throws {
        try input.bind(to: pointer)
    }

    public func forward() throws {
        var x = input
        for (i, layer) in layers.enumerated() {
            let t0 = profiler == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try layer.forward(x)
            if let profiler { profiler.add(layer.name, .forward, since: t0) }
            poisonBuffers(deadAfter: steps.forward(i))
            x = layer.output
        }
    }

    /// Cross-entropy of the current logits against `labels` (mean over the batch).
    public func loss(labels: [Int]) throws -> Float {
        guard let criterion else { throw LayerError.notTraining("network") }
        defer { poisonBuffers(deadAfter: steps.loss) }
        return try criterion.forward(logits: logitValues.baseAddress!, labels: labels)
    }

    private var steps: Steps { Steps(layers: layers.count) }

    private func poisonBuffers(deadAfter step: Int) {
        guard poisonsDeadBuffers else { return }
        for r in deadAfterStep[step] ?? [] { memset(r.lowerBound, 0xFF, r.upperBound - r.lowerBound) }
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
            poisonBuffers(deadAfter: steps.backward(i))
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
