import AlexNetCore
import Foundation

/// Sums the gradient over the ranks while the backward pass is still running. The flat gradient
/// buffer holds conv1.weight … fc8.bias in order and backward runs from fc8 to conv1, so once a
/// layer's backward is done, everything from its first parameter to the end of the buffer is final:
/// one contiguous range. When at least `bucketElements` of it are waiting, an allreduce of that range
/// starts, and the next layers' backward runs while it is on its way; `finish` sends the rest (down
/// to conv1) and waits for all of them.
///
/// Each rank's gradient is of its shard's loss divided by the global batch's image count (see
/// `SoftmaxCrossEntropy.normalizer`), so the sum over the ranks is the gradient of the global
/// batch's mean loss: what one process would compute, up to the order of the additions.
public final class GradientReducer {
    let communicator: Communicator
    let grads: NumberBuffer
    let total: Int
    /// A parameterised layer's name → the offset of its first parameter in the flat buffer.
    let starts: [String: Int]
    let bucketElements: Int
    /// grads[ready..<sent] are final and not yet sent; grads[sent..<total] are on their way.
    private var ready = 0, sent = 0
    private var pending: [Communicator.Pending] = []
    /// Seconds spent in MPI calls that start and progress the sums, and waiting in `finish`.
    public private(set) var communicationSeconds = 0.0
    public private(set) var waitSeconds = 0.0

    /// - Parameter bucketBytes: how much gradient one allreduce carries at least (the last one
    ///   takes what is left).
    public init(communicator: Communicator, parameters: ParameterStore, bucketBytes: Int = 4 << 20) {
        self.communicator = communicator
        grads = parameters.grads
        total = parameters.grads.count
        var starts: [String: Int] = [:]
        for e in parameters.entries {
            let layer = String(e.name.split(separator: ".")[0])
            starts[layer] = min(starts[layer] ?? e.offset, e.offset)
        }
        self.starts = starts
        bucketElements = max(1, bucketBytes / parameters.grads.format.bytes)
    }

    /// Before a backward pass.
    public func begin() {
        (ready, sent) = (total, total)
        pending = []
    }

    /// After layer `name`'s backward: its gradients, and all after them, are final.
    public func layerDone(_ name: String) throws {
        if let start = starts[name] {
            ready = start
            if sent - ready >= bucketElements { try send() }
        }
        try timed { for p in pending { try communicator.test(p) } }
    }

    /// Sends what is left and waits for every sum.
    public func finish() throws {
        ready = 0
        if sent > 0 { try send() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        for p in pending { try communicator.wait(p) }
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        pending = []
    }

    public func resetTimes() { (communicationSeconds, waitSeconds) = (0, 0) }

    private func send() throws {
        try timed { pending.append(try communicator.startSum(grads, offset: ready, count: sent - ready, what: "gradients")) }
        sent = ready
    }

    private func timed(_ body: () throws -> Void) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
