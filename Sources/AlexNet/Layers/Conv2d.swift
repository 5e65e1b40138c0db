import CDNNL

/// 2-D convolution with bias, optionally followed by a fused ReLU (SPEC section 1).
///
/// Shapes: x (N, C, H, W) → y (N, K, OH, OW), OH = (H + 2p − kh) / s + 1 (floor), likewise OW;
/// weight (K, C, kh, kw) and bias (K) are views into a `ParameterStore`, in PyTorch's layout.
///
/// oneDNN picks the layouts of y and of its private weight copies (`format_tag_any`); the
/// parameters stay plain and are reordered into those copies each pass, which costs little
/// beside the convolution (the five layers hold 2.3 M weights).
public final class Conv2d: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    public let geometry: Geometry
    let engine: Engine
    let fusedReLU: Bool

    let forwardPrimitive: Primitive
    /// The input in the layout this convolution chose for it, when that is not the layout the
    /// previous layer produces (each layer gets oneDNN's best implementation for the ISA at
    /// hand instead of inheriting conv1's layout), and the reorders into it and, for the
    /// gradient, back.
    let sourceCopy: Memory?
    let sourceReorder: Reorder?
    let chosenDInput: Memory?
    let dInputReorder: Reorder?
    /// When the implementation writes a plain output (a GEMM: conv1 with its 3 input channels)
    /// while the layers after it have JIT kernels only for a blocked one, the plain result and
    /// the reorders to the blocked `output` and, for the gradient, back.
    let plainOutput: Memory?
    let outputReorder: Reorder?
    let plainDOutput: Memory?
    let dOutputReorder: Reorder?
    let weight: Memory, bias: Memory, dWeight: Memory?, dBias: Memory?
    let forwardWeight: Memory
    let forwardWeightReorder: Reorder?

    let backwardData: Primitive?
    let backwardDataWeight: Memory?
    let backwardDataWeightReorder: Reorder?
    let backwardWeights: Primitive?
    let chosenDWeight: Memory?
    let dWeightReorder: Reorder?
    let reluBackward: ReLUBackward?

    public struct Geometry: Sendable, Equatable {
        public var inChannels, outChannels, kernel, stride, padding: Int
        public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
            (self.inChannels, self.outChannels, self.kernel, self.stride, self.padding) =
                (inChannels, outChannels, kernel, stride, padding)
        }
        public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
        public var weightShape: [Int] { [outChannels, inChannels, kernel, kernel] }
    }

    /// - Parameters:
    ///   - input: the layout of x, fixed by whoever produces it.
    ///   - parameters: where `<name>.weight` and `<name>.bias` (and their gradients) live.
    ///   - inputGradient: whether backward computes ∂x (not for the network's first layer).
    public init(name: String, geometry g: Geometry, input: MemoryDesc, fusedReLU: Bool, mode: Mode,
                inputGradient: Bool = true, parameters: ParameterStore, engine: Engine) throws {
        self.name = name
        self.geometry = g
        self.engine = engine
        self.fusedReLU = fusedReLU
        let inDims = input.dims
        guard inDims.count == 4, inDims[1] == g.inChannels else {
            throw LayerError.badShape("\(name): input \(inDims) does not have \(g.inChannels) channels in NCHW")
        }
        let outDims = [inDims[0], g.outChannels, g.outputSize(inDims[2]), g.outputSize(inDims[3])]
        guard outDims[2] > 0, outDims[3] > 0 else {
            throw LayerError.badShape("\(name): input \(inDims) is smaller than the \(g.kernel)×\(g.kernel) kernel")
        }
        let plainWeight = try MemoryDesc(g.weightShape, .plain)
        let plainBias = try MemoryDesc([g.outChannels], .plain)
        weight = try Memory(plainWeight, engine: engine, borrowing: parameters.value("\(name).weight", shape: g.weightShape))
        bias = try Memory(plainBias, engine: engine, borrowing: parameters.value("\(name).bias", shape: [g.outChannels]))

        var src = try MemoryDesc(inDims, .any).md
        var anyWeight = try MemoryDesc(g.weightShape, .any).md
        var biasMD = plainBias.md
        var anyDst = try MemoryDesc(outDims, .any).md
        let strides = [g.stride, g.stride], pads = [g.padding, g.padding]
        var fd = dnnl_convolution_desc_t()
        try withDims(strides) { s in try withDims(pads) { p in
            try check(dnnl_convolution_forward_desc_init(&fd, mode == .training ? dnnl_forward_training : dnnl_forward_inference,
                                                         dnnl_convolution_direct, &src, &anyWeight, &biasMD, &anyDst, s, p, p),
                      "dnnl_convolution_forward_desc_init", "describing \(name) on \(input)")
        } }
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine,
                                         attr: try Attributes(fusedReLU: fusedReLU))
        let chosenSource = forwardPrimitive.desc(dnnl_query_src_md)
        src = chosenSource.md
        if chosenSource.sameLayout(as: input) {
            (sourceCopy, sourceReorder) = (nil, nil)
        } else {
            sourceCopy = try Memory(chosenSource, engine: engine)
            sourceReorder = try Reorder(from: input, to: chosenSource, engine: engine, name: "\(name) input reorder")
        }
        let written = forwardPrimitive.desc(dnnl_query_dst_md)
        let preferred = try Self.preferredLayout(outDims, engine: engine)
        if written.sameLayout(as: try MemoryDesc(outDims, .plain)) && !preferred.sameLayout(as: written) {
            let plain = try Memory(written, engine: engine)
            let blocked = try Memory(preferred, engine: engine)
            (plainOutput, output) = (plain, blocked)
            outputReorder = try Reorder(from: plain, to: blocked, engine: engine, name: "\(name) output reorder")
        } else {
            output = try Memory(written, engine: engine)
            (plainOutput, outputReorder) = (nil, nil)
        }
        (forwardWeight, forwardWeightReorder) = try Self.copy(of: weight, as: forwardPrimitive.desc(dnnl_query_weights_md),
                                                              engine: engine, name: "\(name) weight reorder")

        guard mode == .training else {
            (dInput, dWeight, dBias, backwardData, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil, nil, nil)
            (backwardWeights, chosenDWeight, dWeightReorder, reluBackward) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder, plainDOutput, dOutputReorder) = (nil, nil, nil, nil)
            return
        }
        dWeight = try Memory(plainWeight, engine: engine, borrowing: parameters.grad("\(name).weight", shape: g.weightShape))
        dBias = try Memory(plainBias, engine: engine, borrowing: parameters.grad("\(name).bias", shape: [g.outChannels]))
        var dst = written.md
        reluBackward = fusedReLU ? try ReLUBackward(name: name, desc: output.desc, engine: engine) : nil
        if let plainOutput {
            plainDOutput = try Memory(plainOutput.desc, engine: engine)
            dOutputReorder = try Reorder(from: output.desc, to: plainOutput.desc, engine: engine, name: "\(name) output-gradient reorder")
        } else {
            (plainDOutput, dOutputReorder) = (nil, nil)
        }

        var wd = dnnl_convolution_desc_t()
        try withDims(strides) { s in try withDims(pads) { p in
            try check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src, &anyWeight, &biasMD,
                                                                  &dst, s, p, p),
                      "dnnl_convolution_backward_weights_desc_init", "describing \(name)'s weight gradient")
        } }
        let bw = try Primitive(&wd, name: "\(name) backward weights", engine: engine, hint: forwardPrimitive)
        backwardWeights = bw
        let chosen = bw.desc(dnnl_query_diff_weights_md)
        if chosen.sameLayout(as: plainWeight) {
            (chosenDWeight, dWeightReorder) = (dWeight, nil)
        } else {
            let m = try Memory(chosen, engine: engine)
            chosenDWeight = m
            dWeightReorder = try Reorder(from: m, to: dWeight!, engine: engine, name: "\(name) weight-gradient reorder")
        }

        if inputGradient {
            var dd = dnnl_convolution_desc_t()
            try withDims(strides) { s in try withDims(pads) { p in
                try check(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &src, &anyWeight, &dst, s, p, p),
                          "dnnl_convolution_backward_data_desc_init", "describing \(name)'s input gradient")
            } }
            let bd = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forwardPrimitive)
            backwardData = bd
            let dIn = try Memory(input, engine: engine)
            dInput = dIn
            if sourceCopy == nil {
                (chosenDInput, dInputReorder) = (dIn, nil)
            } else {
                chosenDInput = try Memory(chosenSource, engine: engine)
                dInputReorder = try Reorder(from: chosenSource, to: input, engine: engine, name: "\(name) input-gradient reorder")
            }
            let wanted = bd.desc(dnnl_query_weights_md)
            if wanted.sameLayout(as: forwardWeight.desc) {
                (backwardDataWeight, backwardDataWeightReorder) = (forwardWeight, nil)
            } else {
                (backwardDataWeight, backwardDataWeightReorder) = try Self.copy(of: weight, as: wanted, engine: engine,
                                                                                name: "\(name) backward weight reorder")
            }
        } else {
            (backwardData, dInput, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder) = (nil, nil)
        }
    }

    /// `source` itself when it already has the layout, else a new buffer and the reorder into it.
    static func copy(of source: Memory, as desc: MemoryDesc, engine: Engine, name: String) throws -> (Memory, Reorder?) {
        if desc.sameLayout(as: source.desc) { return (source, nil) }
        let m = try Memory(desc, engine: engine)
        return (m, try Reorder(from: source, to: m, engine: engine, name: name))
    }

    /// The layout a JIT convolution reading a tensor of `dims` would choose for it: what the
    /// layers after a convolution run fastest on, whatever the ISA (nChw8c with AVX2, nChw16c
    /// with AVX-512).
    static func preferredLayout(_ dims: [Int], engine: Engine) throws -> MemoryDesc {
        var src = try MemoryDesc(dims, .any).md
        var w = try MemoryDesc([dims[1], dims[1], 3, 3], .any).md
        var dst = try MemoryDesc(dims, .any).md
        var fd = dnnl_convolution_desc_t()
        try withDims([1, 1]) { s in try withDims([1, 1]) { p in
            try check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_inference, dnnl_convolution_direct, &src, &w, nil, &dst, s, p, p),
                      "dnnl_convolution_forward_desc_init", "probing the preferred layout of \(dims)")
        } }
        return try Primitive(&fd, name: "layout probe", engine: engine).desc(dnnl_query_src_md)
    }

    /// The input as the primitives read it: reordered by `forward` into `sourceCopy` if needed.
    private func source(_ input: Memory) -> Memory { sourceCopy ?? input }

    public func forward(_ input: Memory) throws {
        try forwardWeightReorder?.run(engine)
        if let sourceReorder, let sourceCopy { try sourceReorder.run(engine, from: input, to: sourceCopy) }
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_WEIGHTS, forwardWeight),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, plainOutput ?? output)])
        try outputReorder?.run(engine)
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        guard let backwardWeights, let chosenDWeight, let dBias else { throw LayerError.notTraining(name) }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        var gradient = dOutput
        if let dOutputReorder, let plainDOutput {
            try dOutputReorder.run(engine, from: dOutput, to: plainDOutput)
            gradient = plainDOutput
        }
        try backwardWeights.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_DIFF_DST, gradient),
                                             (DNNL_ARG_DIFF_WEIGHTS, chosenDWeight), (DNNL_ARG_DIFF_BIAS, dBias)])
        try dWeightReorder?.run(engine)
        if let backwardData, let dInput, let chosenDInput, let backwardDataWeight {
            try backwardDataWeightReorder?.run(engine)
            try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, gradient), (DNNL_ARG_WEIGHTS, backwardDataWeight),
                                              (DNNL_ARG_DIFF_SRC, chosenDInput)])
            try dInputReorder?.run(engine, from: chosenDInput, to: dInput)
        }
    }

    // MARK: plain-Swift reference (tests only): direct loops in double precision.

    public static func referenceForward(x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        var y = Tensor(zeros: [n, k, oh, ow])
        for b in 0..<n { for o in 0..<k { for i in 0..<oh { for j in 0..<ow {
            var acc = Double(bias.data[o])
            for ci in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let yy = i * stride - padding + u, xx = j * stride - padding + v
                guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                acc += Double(x.data[((b * c + ci) * h + yy) * w + xx]) * Double(weight.data[((o * c + ci) * kh + u) * kw + v])
            } } }
            y.data[((b * k + o) * oh + i) * ow + j] = Float(acc)
        } } } }
        return y
    }

    /// Returns (∂x, ∂weight, ∂bias) for ∂y.
    public static func referenceBackward(x: Tensor, weight: Tensor, dy: Tensor, stride: Int, padding: Int)
        -> (dx: Tensor, dWeight: Tensor, dBias: Tensor) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: k)
        for b in 0..<n { for o in 0..<k { for i in 0..<oh { for j in 0..<ow {
            let g = Double(dy.data[((b * k + o) * oh + i) * ow + j])
            db[o] += g
            for ci in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let yy = i * stride - padding + u, xx = j * stride - padding + v
                guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                let xi = ((b * c + ci) * h + yy) * w + xx, wi = ((o * c + ci) * kh + u) * kw + v
                dx[xi] += g * Double(weight.data[wi])
                dw[wi] += g * Double(x.data[xi])
            } } }
        } } } }
        return (Tensor(shape: x.shape, data: dx.map(Float.init)), Tensor(shape: weight.shape, data: dw.map(Float.init)),
                Tensor(shape: [k], data: db.map(Float.init)))
    }
}
