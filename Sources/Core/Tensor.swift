/// A dense float32 tensor in row-major (PyTorch "contiguous") order: the exchange type between
/// the library and its callers, files and tests. The fast paths keep their own buffers in
/// whatever layout oneDNN prefers and convert to and from `Tensor` only at the edges.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        require(shape.reduce(1, *) == data.count,
                     "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// Values drawn from N(0, std²) with a seeded generator, for tests and benchmarks.
    public init(randomNormal shape: [Int], std: Float = 1, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        self.init(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * std })
    }

    public var count: Int { data.count }

    /// ‖a − b‖ / ‖b‖ in double precision: the golden files' error measure (docs/NUMERICS.md).
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        require(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        if den == 0 { return num == 0 ? 0 : num.squareRoot() }
        return (num / den).squareRoot()
    }
}
