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
    /// The momentum buffers, laid out like the parameter store they were made for and kept in
    /// its gradients' format (bfloat16 for a bf16 run; the arithmetic is float32 either way).
    public let velocity: NumberBuffer
    /// Updates applied so far (PyTorch's first step sets v = g); a resumed run sets it back.
    public var steps: Int = 0
    let workers: Int

    public init(for parameters: ParameterStore, learningRate: Float = 0.01, momentum: Float = 0.9,
                weightDecay: Float = 5e-4, rule: UpdateRule = .pytorch, workers: Int = 1) {
        (self.learningRate, self.momentum, self.weightDecay, self.rule) = (learningRate, momentum, weightDecay, rule)
        velocity = NumberBuffer(count: parameters.values.count, format: parameters.grads.format)
        self.workers = workers
    }

    /// One update over the whole flat block (gaps between tensors hold zeros and stay zero).
    /// Returns whether every updated weight is finite. A NaN or an infinity in a gradient, a
    /// momentum buffer, a weight or the learning rate reaches the updated weight, so this one
    /// check, made in the same pass, sees them all (`ParameterStore.nonFiniteOrigin` says where).
    @discardableResult
    public func step(_ parameters: ParameterStore) -> Bool {
        require(parameters.values.count == velocity.count && parameters.grads.format == velocity.format,
                "SGD: parameter store does not match the momentum buffers")
        let w = parameters.values.pointer
        let lock = NSLock()
        var finite = true
        parallelChunks(velocity.count, workers: workers) { r in
            let flags: UInt32
            if let g = parameters.grads.floats, let v = self.velocity.floats {
                flags = self.update(r, w, FloatCells(p: g), FloatCells(p: v))
            } else {
                flags = self.update(r, w, BFloat16Cells(p: parameters.grads.halves!), BFloat16Cells(p: self.velocity.halves!))
            }
            if flags & 0x8000_0000 != 0 { lock.lock(); finite = false; lock.unlock() }
        }
        steps += 1
        return finite
    }

    /// The update of elements `r`, in float32 whatever `g` and `v` keep; returns flags whose bit
    /// 31 is set when an updated weight is NaN or infinite.
    @inline(__always)
    private func update<G: Cells, V: Cells>(_ r: Range<Int>, _ w: UnsafeMutablePointer<Float>, _ g: G, _ v: V) -> UInt32 {
        let (lr, mu, wd) = (learningRate, momentum, weightDecay)
        // Bit 31 of (exponent bits + one exponent step) is set only for an all-ones exponent
        // (NaN, ±infinity): integer operations the loop vectorizes.
        var flags: UInt32 = 0
        @inline(__always) func note(_ x: Float) { flags |= (x.bitPattern & 0x7F80_0000) &+ 0x0080_0000 }
        switch rule {
        case .pytorch:
            if steps == 0 {
                for i in r { let d = g[i] + wd * w[i]; v[i] = d; let nw = w[i] - lr * v[i]; w[i] = nw; note(nw) }
            } else {
                for i in r { let d = g[i] + wd * w[i]; v[i] = mu * v[i] + d; let nw = w[i] - lr * v[i]; w[i] = nw; note(nw) }
            }
        case .paper:
            for i in r { v[i] = mu * v[i] - wd * lr * w[i] - lr * g[i]; let nw = w[i] + v[i]; w[i] = nw; note(nw) }
        }
        return flags
    }

    /// The momentum buffers as named tensors (`momentum.<parameter>` in checkpoints).
    public func state(_ parameters: ParameterStore) -> [(String, Tensor)] {
        parameters.entries.map { e in
            ("momentum.\(e.name)", Tensor(shape: e.shape, data: velocity.read(e.offset, e.count)))
        }
    }

    /// Restores momentum buffers saved by `state`, and the step count.
    public func restore(_ tensors: [String: Tensor], steps: Int, parameters: ParameterStore) throws {
        for e in parameters.entries {
            let key = "momentum.\(e.name)"
            guard let t = tensors[key] else { throw ParameterError.unknown(key, known: Array(tensors.keys).sorted()) }
            guard t.shape == e.shape else { throw ParameterError.shape(key, expected: e.shape, found: t.shape) }
            t.data.withUnsafeBufferPointer { velocity.write($0, at: e.offset) }
        }
        self.steps = steps
    }
}

/// Numbers read and written as floats, whatever they are kept in: the update's one loop serves
/// float32 and bfloat16 gradients and momentum.
private protocol Cells {
    subscript(i: Int) -> Float { get nonmutating set }
}

private struct FloatCells: Cells {
    let p: UnsafeMutablePointer<Float>
    subscript(i: Int) -> Float {
        @inline(__always) get { p[i] }
        @inline(__always) nonmutating set { p[i] = newValue }
    }
}

/// Reads widen exactly; writes round to nearest even.
private struct BFloat16Cells: Cells {
    let p: UnsafeMutablePointer<UInt16>
    subscript(i: Int) -> Float {
        @inline(__always) get { float(bfloat16: p[i]) }
        @inline(__always) nonmutating set { p[i] = bfloat16Bits(newValue) }
    }
}
