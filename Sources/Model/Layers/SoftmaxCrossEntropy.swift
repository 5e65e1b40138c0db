import AlexNetCore
import AlexNetKernels
import Foundation

/// Softmax cross-entropy averaged over the batch.
/// Shapes: logits (N, K), labels N integers in 0..<K → loss (scalar); ∂logits = (softmax − onehot) / N
/// (N: the batch, or `normalizer`).
/// Plain Swift: at (128, 1000) it is a few hundred microseconds, not worth a primitive.
public final class SoftmaxCrossEntropy {
    public let batch: Int, classes: Int
    /// softmax(logits), kept for backward and for reporting.
    public let probabilities: FloatBuffer
    /// ∂loss/∂logits (plain (N, K)), filled by `backward`: the last layer's ∂output.
    public let dLogits: DeviceTensor
    private let dLogitValues: UnsafeMutablePointer<Float>
    private var labels: [Int] = []
    /// What ∂logits divides by: the batch (the mean's gradient), or, in a distributed run, the
    /// image count of the global batch this shard is part of, so that the ranks' gradients sum
    /// to the global mean's.
    public var normalizer: Int?

    public init(batch: Int, classes: Int, engine: Engine) throws {
        (self.batch, self.classes) = (batch, classes)
        probabilities = FloatBuffer(count: batch * classes)
        dLogits = try DeviceTensor.plain([batch, classes], engine: engine)
        dLogitValues = try dLogits.plainFloats().baseAddress!
    }

    /// Returns the mean loss; `logits` is plain (N, K).
    public func forward(logits: UnsafePointer<Float>, labels: [Int]) throws -> Float {
        guard labels.count == batch else {
            throw ShapeError(what: "cross-entropy labels", shape: [labels.count], expected: "[\(batch)] (one per batch sample)")
        }
        if let index = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
            throw LabelError(label: labels[index], index: index, classes: classes)
        }
        self.labels = labels
        var total = 0.0
        for b in 0..<batch {
            let row = logits + b * classes, p = probabilities.pointer + b * classes
            var m = -Float.infinity
            for k in 0..<classes { m = max(m, row[k]) }
            var sum = 0.0
            for k in 0..<classes { let e = exp(row[k] - m); p[k] = e; sum += Double(e) }
            let inv = Float(1 / sum)
            for k in 0..<classes { p[k] *= inv }
            // −log softmax_y = log Σ exp(z − m) − (z_y − m)
            total += log(sum) - Double(row[labels[b]] - m)
        }
        return Float(total / Double(batch))
    }

    public func backward() {
        let d = dLogitValues, p = probabilities.pointer
        let scale = 1 / Float(normalizer ?? batch)
        for i in 0..<(batch * classes) { d[i] = p[i] * scale }
        for (b, y) in labels.enumerated() { d[b * classes + y] -= scale }
    }

    // MARK: plain-Swift reference (tests only)

    public static func reference(logits: Tensor, labels: [Int]) -> (loss: Double, probabilities: Tensor, dLogits: Tensor) {
        let (n, k) = (logits.shape[0], logits.shape[1])
        var probs = Tensor(zeros: logits.shape), d = Tensor(zeros: logits.shape)
        var loss = 0.0
        for b in 0..<n {
            let row = (0..<k).map { Double(logits.data[b * k + $0]) }
            let m = row.max()!
            let z = row.reduce(0) { $0 + exp($1 - m) }
            for j in 0..<k {
                let p = exp(row[j] - m) / z
                probs.data[b * k + j] = Float(p)
                d.data[b * k + j] = Float((p - (j == labels[b] ? 1 : 0)) / Double(n))
            }
            loss += log(z) + m - row[labels[b]]
        }
        return (loss / Double(n), probs, d)
    }
}
