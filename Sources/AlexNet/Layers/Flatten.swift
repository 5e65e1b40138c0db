import CDNNL

/// Flatten: x (N, C, H, W) in any layout → y (N, C·H·W) in PyTorch's order (c, h, w), which is
/// the order fc6's weights expect. It is the one reorder between the convolutional trunk's
/// blocked layout and the classifier's plain one.
public final class Flatten: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    let engine: Engine
    let forwardReorder: Reorder
    let backwardReorder: Reorder?
    let inputView: Memory
    let dOutputView: Memory?

    public init(name: String = "flatten", input: MemoryDesc, mode: Mode, engine: Engine) throws {
        self.name = name
        self.engine = engine
        let d = input.dims
        output = try Memory(MemoryDesc([d[0], d[1] * d[2] * d[3]], .plain), engine: engine)
        // The same bytes seen as plain NCHW, so a reorder can write them.
        let planar = try MemoryDesc(d, .plain)
        let asPlanar = try Memory(planar, engine: engine, borrowing: output.pointer)
        // Reorders are bound to their source and destination at creation; the source (the pool's
        // output) is given per call, so bind a view whose handle `forward` re-points.
        inputView = try Memory(input, engine: engine, borrowing: output.pointer)
        forwardReorder = try Reorder(from: inputView, to: asPlanar, engine: engine, name: "\(name) reorder")
        if mode == .training {
            let dIn = try Memory(input, engine: engine)
            let view = try Memory(planar, engine: engine, borrowing: output.pointer)
            dInput = dIn
            dOutputView = view
            backwardReorder = try Reorder(from: view, to: dIn, engine: engine, name: "\(name) backward reorder")
        } else {
            (dInput, dOutputView, backwardReorder) = (nil, nil, nil)
        }
    }

    public func forward(_ input: Memory) throws {
        try inputView.rebind(input.pointer)
        try forwardReorder.run(engine)
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        guard let backwardReorder, let dOutputView else { throw LayerError.notTraining(name) }
        try dOutputView.rebind(dOutput.pointer)
        try backwardReorder.run(engine)
    }
}
