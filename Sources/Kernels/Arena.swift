import AlexNetCore

/// What a buffer a kernel makes holds, which fixes the steps its contents must survive. Built
/// into a network, every lifetime but `persistent` is placed in the network's one arena
/// (`BufferPlan`); a layer built alone gives each buffer its own memory, whatever its lifetime.
public enum BufferLifetime: String, Sendable, Equatable {
    /// Its own memory, always: contents that must outlive one training step (a zero border
    /// written once, weights' copies kept between passes).
    case persistent
    /// The layer's forward result: the network keeps it until its last reader (the next layer's
    /// forward pass, and the backward passes that read it).
    case output
    /// Written by the layer's forward pass and read by its backward pass (a workspace, a copy of
    /// the input in the layout or type the backward kernels read).
    case saved
    /// Only during the layer's forward pass.
    case forwardScratch
    /// Only during the layer's backward pass.
    case backwardScratch
    /// During the layer's forward pass and during its backward pass, not kept between them.
    case scratch
    /// ∂input: written by the layer's backward pass, read by the previous layer's.
    case inputGradient
}

/// Collects the buffers the kernels of a network ask for while it is built (`Engine.recorder`),
/// each with its lifetime and the layer that made it, so the network can plan one arena for
/// them all and then place them in it.
package final class ArenaRecorder {
    package struct Entry {
        package let tensor: DeviceTensor
        package let bytes: Int
        package let lifetime: BufferLifetime
        /// The index of the layer being built when the buffer was made.
        package let layer: Int
    }
    /// The layer whose kernels are being made.
    package var layer = 0
    private(set) var entries: [Entry] = []

    package init() {}

    func record(_ tensor: DeviceTensor, bytes: Int, lifetime: BufferLifetime) {
        entries.append(Entry(tensor: tensor, bytes: bytes, lifetime: lifetime, layer: layer))
    }

    /// Plans the arena: `steps` gives each entry's live steps, `name` its name in the plan.
    package func plan(steps: (Entry) -> [ClosedRange<Int>], name: (Entry) -> String) throws -> BufferPlan {
        let plan = BufferPlan(entries.map { BufferPlan.Request(name: name($0), bytes: $0.bytes, steps: steps($0)) })
        try plan.validate()
        return plan
    }

    /// Allocates the arena `plan` (made by `plan(steps:name:)`) lays out and places every
    /// recorded tensor in it.
    package func place(_ plan: BufferPlan) throws -> FloatBuffer {
        precondition(plan.requests.count == entries.count, "a plan of another recorder")
        let arena = try FloatBuffer(count: plan.size / MemoryLayout<Float>.stride, zeroed: false,
                                    for: "the network's activations, gradients and scratch")
        for (entry, offset) in zip(entries, plan.offsets) {
            try entry.tensor.place(at: arena.pointer + offset / MemoryLayout<Float>.stride)
        }
        return arena
    }
}
