/// Inverted dropout (paper section 4.2, SPEC section 1): during training each unit is kept with
/// probability 1 − p and scaled by 1/(1 − p); at evaluation the layer is the identity (the network
/// leaves it out). Shapes: x (N, F) → y (N, F), plain.
///
/// The mask holds the multipliers themselves (0 or 1/(1 − p)), drawn from a seeded generator or
/// given by the caller (`setMask`), so tests can replay PyTorch's masks.
public final class Dropout: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    public let probability: Float
    let mask: FloatBuffer
    let workers: Int

    public init(name: String, probability: Float = 0.5, input: MemoryDesc, engine: Engine) throws {
        guard input.dims.count == 2 else { throw LayerError.badShape("\(name): input \(input.dims) is not (N, F)") }
        guard (0..<1).contains(probability) else { throw LayerError.badShape("\(name): probability \(probability) not in [0, 1)") }
        self.name = name
        self.probability = probability
        output = try Memory(input, engine: engine)
        dInput = try Memory(input, engine: engine)
        mask = FloatBuffer(count: input.dims[0] * input.dims[1])
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
        let features = output.desc.dims[1]
        require(samples.count <= output.desc.dims[0], "\(name): \(samples.count) samples for a batch of \(output.desc.dims[0])")
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
        guard m.count == mask.count else {
            throw LayerError.badShape("\(name): mask of shape \(m.shape) for \(output.desc.dims)")
        }
        mask.copy(from: m.data)
    }

    public var currentMask: Tensor { Tensor(shape: output.desc.dims, data: mask.array) }

    public func forward(_ input: Memory) throws {
        multiply(input.pointer, into: output.pointer)
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        multiply(dOutput.pointer, into: dInput!.pointer)
    }

    private func multiply(_ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let m = mask.pointer
        parallelChunks(mask.count, workers: workers) { r in
            for i in r { y[i] = x[i] * m[i] }
        }
    }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(_ x: Tensor, mask: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: zip(x.data, mask.data).map { $0 * $1 })
    }
}
