import AlexNetCore
import Foundation

/// The two weight initialisations (docs/DESIGN.md, Initialisation).
public enum Initialization: String, Sendable, Codable, CaseIterable {
    /// Paper section 5: weights N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6, fc7 (to give
    /// the ReLUs positive inputs early), 0 in conv1, conv3, fc8.
    case paper
    /// PyTorch's default (the seed's): weights and biases U(−1/√fan_in, 1/√fan_in).
    case pytorch

    static let paperOnes: Set<String> = ["conv2", "conv4", "conv5", "fc6", "fc7"]

    /// Fills every parameter of `store`, in its order, from one generator seeded with `seed`.
    public func apply(to store: ParameterStore, seed: UInt64) {
        var rng = RandomGenerator(seed: seed, stream: 0x1A17)
        for e in store.entries {
            let layer = String(e.name.split(separator: ".")[0])
            let isBias = e.name.hasSuffix(".bias")
            let p = store.values.pointer + e.offset
            switch self {
            case .paper:
                if isBias {
                    p.update(repeating: Self.paperOnes.contains(layer) ? 1 : 0, count: e.count)
                } else {
                    for i in 0..<e.count { p[i] = Float(rng.normalDouble() * 0.01) }
                }
            case .pytorch:
                let weightShape = (try? store.entry("\(layer).weight").shape) ?? e.shape
                let fanIn = weightShape.dropFirst().reduce(1, *)
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<e.count { p[i] = Float((2 * rng.uniformDouble() - 1) * bound) }
            }
        }
    }
}
