import AlexNetCore
import AlexNetKernels

/// Inverted dropout (paper section 4.2): during training each unit is kept with probability
/// 1 − p and scaled by 1/(1 − p); at evaluation the layer is the identity (the network leaves it
/// out). Shapes: x (N, F) → y (N, F), plain.
///
/// The mask holds the multipliers themselves (0 or 1/(1 − p)), drawn from a seeded generator or
/// given by the caller (`setMask`), so tests can replay PyTorch's masks.
public final class Dropout: Layer {
    public let name: String
    public let output: DeviceTensor
    public let dInput: DeviceTensor?
    public let probability: Float
    /// (N, F): the batch and the features of `output`.
    let shape: [Int]
    let mask: FloatBuffer
    let workers: Int
    /// Backward reads only the mask.
    public var readsOutputInBackward: Bool { false }
    public var readsInputInBackward: Bool { false }

    public init(name: String, probability: Float = 0.5, input: TensorLayout, engine: Engine) throws {
        guard input.dims.count == 2 else { throw ShapeError(what: "\(name) input", shape: input.dims, expected: "(N, F)") }
        guard (0..<1).contains(probability) else {
            throw HyperparameterError(layer: name, name: "probability", value: "\(probability)", allowed: "in [0, 1)")
        }
        self.name = name
        self.probability = probability
        shape = input.dims
        // The mask multiplies element i by multiplier i: both ends must be row-major.
        output = try DeviceTensor.plain(shape, engine: engine, lifetime: .output)
        dInput = try DeviceTensor.plain(shape, engine: engine, lifetime: .inputGradient)
        mask = FloatBuffer(count: shape[0] * shape[1])
        workers = engine.threads
        let keep = 1 / (1 - probability)
        mask.pointer.update(repeating: keep, count: mask.count)
    }

    /// Draws a fresh mask, one row per sample, each row from its own generator seeded by
    /// (seed, epoch, sample index, layer): the mask a sample gets does not depend on which batch
    /// it is in, on the batch size, the thread count or the number of processes, so a resumed or
    /// re-split run draws the same masks. A unit is kept when its uniform draw is ≥ p.
    /// - Parameter samples: the dataset index of each row (`samples.count` ≤ the batch).
    public func drawMask(seed: UInt64, epoch: Int, samples: [Int], layer: Int) {
        let features = shape[1]
        require(samples.count <= shape[0], "\(name): \(samples.count) samples for a batch of \(shape[0])")
        let keep = 1 / (1 - probability), p = probability, m = mask.pointer
        parallelChunks(samples.count, workers: workers, minimumChunk: max(1, (1 << 15) / features)) { rows in
            for row in rows {
                var rng = RandomGenerator(seed: seed, stream: Self.stream, UInt64(epoch), UInt64(samples[row]), UInt64(layer))
                let r = m + row * features
                for i in 0..<features { r[i] = rng.uniform() >= p ? keep : 0 }
            }
        }
    }

    /// Keeps dropout's generators apart from augmentation's (seed, epoch, index) streams.
    static let stream: UInt64 = 0xD809_0A75

    /// Uses a given mask of multipliers (0 or 1/(1 − p)), shape (N, F).
    public func setMask(_ m: Tensor) throws {
        guard m.shape == shape else { throw ShapeError(what: "\(name) mask", shape: m.shape, expected: "\(shape)") }
        mask.copy(from: m.data)
    }

    public var currentMask: Tensor { Tensor(shape: shape, data: mask.array) }

    public func forward(_ input: DeviceTensor) throws {
        try multiply(input, into: try output.plainFloats().baseAddress!)
    }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let dInput else { throw LayerError.notTraining(name) }
        try multiply(dOutput, into: try dInput.plainFloats().baseAddress!)
    }

    private func multiply(_ source: DeviceTensor, into y: UnsafeMutablePointer<Float>) throws {
        guard source.dims == shape else { throw ShapeError(what: "\(name) input", shape: source.dims, expected: "\(shape)") }
        let x = try source.plainFloats().baseAddress!, m = mask.pointer
        parallelChunks(mask.count, workers: workers) { r in
            for i in r { y[i] = x[i] * m[i] }
        }
    }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(_ x: Tensor, mask: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: zip(x.data, mask.data).map { $0 * $1 })
    }
}
