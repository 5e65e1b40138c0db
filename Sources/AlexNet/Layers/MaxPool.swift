import CDNNL

/// Max-pooling, 3×3 stride 2 in AlexNet (paper section 3.4: overlapping pooling), no padding,
/// floor. Shapes: x (N, C, H, W) → y (N, C, (H − k)/s + 1, (W − k)/s + 1).
/// Training keeps oneDNN's workspace (the arg-max) for backward; ties go to the first maximum.
public final class MaxPool: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    let engine: Engine
    let forwardPrimitive: Primitive
    let backwardPrimitive: Primitive?
    let workspace: Memory?

    public init(name: String, kernel: Int = 3, stride: Int = 2, input: MemoryDesc, mode: Mode, engine: Engine) throws {
        self.name = name
        self.engine = engine
        let d = input.dims
        let outDims = [d[0], d[1], (d[2] - kernel) / stride + 1, (d[3] - kernel) / stride + 1]
        guard d[2] >= kernel, d[3] >= kernel else {
            throw LayerError.badShape("\(name): input \(d) is smaller than the \(kernel)×\(kernel) window")
        }
        var src = input.md
        var dst = try MemoryDesc(outDims, .any).md
        var fd = dnnl_pooling_desc_t()
        try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
            try check(dnnl_pooling_forward_desc_init(&fd, mode == .training ? dnnl_forward_training : dnnl_forward_inference,
                                                     dnnl_pooling_max, &src, &dst, s, k, p, p),
                      "dnnl_pooling_forward_desc_init", "describing \(name) on \(input)")
        } } }
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine)
        output = try Memory(forwardPrimitive.desc(dnnl_query_dst_md), engine: engine)
        guard mode == .training else { (backwardPrimitive, workspace, dInput) = (nil, nil, nil); return }
        workspace = try forwardPrimitive.makeWorkspace(engine)
        var outMD = output.desc.md
        var bd = dnnl_pooling_desc_t()
        try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
            try check(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &src, &outMD, s, k, p, p),
                      "dnnl_pooling_backward_desc_init", "describing \(name)'s backward")
        } } }
        backwardPrimitive = try Primitive(&bd, name: "\(name) backward", engine: engine, hint: forwardPrimitive)
        dInput = try Memory(input, engine: engine)
    }

    public func forward(_ input: Memory) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)], workspace: workspace)
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        guard let backwardPrimitive, let dInput else { throw LayerError.notTraining(name) }
        try backwardPrimitive.execute(engine, [(DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)], workspace: workspace)
    }

    // MARK: plain-Swift reference (tests only)

    /// Returns y and, per output element, the flat index of the (first) maximum in x.
    public static func referenceForward(_ x: Tensor, kernel: Int = 3, stride: Int = 2) -> (y: Tensor, argmax: [Int]) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h - kernel) / stride + 1, ow = (w - kernel) / stride + 1
        var y = Tensor(zeros: [n, c, oh, ow])
        var arg = [Int](repeating: 0, count: y.count)
        for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var best = -Float.infinity, at = 0
            for u in 0..<kernel { for v in 0..<kernel {
                let idx = (plane * h + i * stride + u) * w + j * stride + v
                if x.data[idx] > best { best = x.data[idx]; at = idx }
            } }
            let o = (plane * oh + i) * ow + j
            y.data[o] = best; arg[o] = at
        } } }
        return (y, arg)
    }

    public static func referenceBackward(x: Tensor, dy: Tensor, kernel: Int = 3, stride: Int = 2) -> Tensor {
        let arg = referenceForward(x, kernel: kernel, stride: stride).argmax
        var dx = Tensor(zeros: x.shape)
        for (o, i) in arg.enumerated() { dx.data[i] += dy.data[o] }
        return dx
    }
}
