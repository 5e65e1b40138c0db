import AlexNetCore
import Foundation

/// Stochastic gradient descent with momentum and weight decay (paper section 5; docs/DESIGN.md,
/// Optimiser).
public enum UpdateRule: String, Sendable, Codable, CaseIterable {
    /// PyTorch's (the seed's): g ← ∇ + wd·w; v ← μ·v + g (v = g on the first step); w ← w − lr·v.
    case pytorch
    /// The paper's: v ← μ·v − wd·lr·w − lr·∇; w ← w + v. Equal to `pytorch` while lr is constant.
    case paper
}

public final class SGD {
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float
    public let rule: UpdateRule
    /// The momentum buffers, laid out like the parameter store they were made for.
    public let velocity: FloatBuffer
    /// Updates applied so far (PyTorch's first step sets v = g); a resumed run sets it back.
    public var steps: Int = 0
    let workers: Int

    public init(for parameters: ParameterStore, learningRate: Float = 0.01, momentum: Float = 0.9,
                weightDecay: Float = 5e-4, rule: UpdateRule = .pytorch, workers: Int = 1) {
        (self.learningRate, self.momentum, self.weightDecay, self.rule) = (learningRate, momentum, weightDecay, rule)
        velocity = FloatBuffer(count: parameters.values.count)
        self.workers = workers
    }

    /// One update over the whole flat block (gaps between tensors hold zeros and stay zero).
    /// Returns whether every updated weight is finite. A NaN or an infinity in a gradient, a
    /// momentum buffer, a weight or the learning rate reaches the updated weight, so this one
    /// check, made in the same pass, sees them all (`ParameterStore.nonFiniteOrigin` says where).
    @discardableResult
    public func step(_ parameters: ParameterStore) -> Bool {
        require(parameters.values.count == velocity.count, "SGD: parameter store does not match the momentum buffers")
        let w = parameters.values.pointer, g = parameters.grads.pointer, v = velocity.pointer
        let (lr, mu, wd) = (learningRate, momentum, weightDecay)
        let first = steps == 0
        let lock = NSLock()
        var finite = true
        parallelChunks(velocity.count, workers: workers) { r in
            // Bit 31 of (exponent bits + one exponent step) is set only for an all-ones
            // exponent (NaN, ±infinity): integer operations the loop vectorizes.
            var flags: UInt32 = 0
            @inline(__always) func note(_ x: Float) { flags |= (x.bitPattern & 0x7F80_0000) &+ 0x0080_0000 }
            switch self.rule {
            case .pytorch:
                if first {
                    for i in r { let d = g[i] + wd * w[i]; v[i] = d; let nw = w[i] - lr * d; w[i] = nw; note(nw) }
                } else {
                    for i in r { let d = g[i] + wd * w[i]; let nv = mu * v[i] + d; v[i] = nv; let nw = w[i] - lr * nv; w[i] = nw; note(nw) }
                }
            case .paper:
                for i in r { let nv = mu * v[i] - wd * lr * w[i] - lr * g[i]; v[i] = nv; let nw = w[i] + nv; w[i] = nw; note(nw) }
            }
            if flags & 0x8000_0000 != 0 { lock.lock(); finite = false; lock.unlock() }
        }
        steps += 1
        return finite
    }

    /// The momentum buffers as named tensors (`momentum.<parameter>` in checkpoints).
    public func state(_ parameters: ParameterStore) -> [(String, Tensor)] {
        parameters.entries.map { e in
            ("momentum.\(e.name)", Tensor(shape: e.shape, data: Array(UnsafeBufferPointer(start: velocity.pointer + e.offset, count: e.count))))
        }
    }

    /// Restores momentum buffers saved by `state`, and the step count.
    public func restore(_ tensors: [String: Tensor], steps: Int, parameters: ParameterStore) throws {
        for e in parameters.entries {
            let key = "momentum.\(e.name)"
            guard let t = tensors[key] else { throw ParameterError.unknown(key, known: Array(tensors.keys).sorted()) }
            guard t.shape == e.shape else { throw ParameterError.shape(key, expected: e.shape, found: t.shape) }
            t.data.withUnsafeBufferPointer { (velocity.pointer + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        self.steps = steps
    }
}
