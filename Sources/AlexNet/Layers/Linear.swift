import CDNNL

/// Fully connected layer with bias, optionally followed by a fused ReLU.
/// Shapes: x (N, in) → y (N, out) = x · Wᵀ + b; weight (out, in), bias (out): PyTorch's layout,
/// used by oneDNN as it is (plain `nc`/`oi` run on its GEMM), so fc6's 37.7 M weights are never copied.
public final class Linear: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    let engine: Engine
    let forwardPrimitive: Primitive
    let backwardData: Primitive?
    let backwardWeights: Primitive?
    let weight: Memory, bias: Memory, dWeight: Memory?, dBias: Memory?
    let reluBackward: ReLUBackward?

    public init(name: String, inFeatures: Int, outFeatures: Int, input: MemoryDesc, fusedReLU: Bool, mode: Mode,
                parameters: ParameterStore, engine: Engine) throws {
        self.name = name
        self.engine = engine
        let d = input.dims
        guard d.count == 2, d[1] == inFeatures else {
            throw LayerError.badShape("\(name): input \(d) is not (N, \(inFeatures))")
        }
        let wShape = [outFeatures, inFeatures]
        let wDesc = try MemoryDesc(wShape, .plain), bDesc = try MemoryDesc([outFeatures], .plain)
        let outDesc = try MemoryDesc([d[0], outFeatures], .plain)
        weight = try Memory(wDesc, engine: engine, borrowing: parameters.value("\(name).weight", shape: wShape))
        bias = try Memory(bDesc, engine: engine, borrowing: parameters.value("\(name).bias", shape: [outFeatures]))
        var src = input.md, w = wDesc.md, b = bDesc.md, dst = outDesc.md
        var fd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_forward_desc_init(&fd, mode == .training ? dnnl_forward_training : dnnl_forward_inference,
                                                       &src, &w, &b, &dst),
                  "dnnl_inner_product_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine, attr: try Attributes(fusedReLU: fusedReLU))
        output = try Memory(outDesc, engine: engine)
        guard mode == .training else {
            (dInput, dWeight, dBias, backwardData, backwardWeights, reluBackward) = (nil, nil, nil, nil, nil, nil)
            return
        }
        dWeight = try Memory(wDesc, engine: engine, borrowing: parameters.grad("\(name).weight", shape: wShape))
        dBias = try Memory(bDesc, engine: engine, borrowing: parameters.grad("\(name).bias", shape: [outFeatures]))
        reluBackward = fusedReLU ? try ReLUBackward(name: name, desc: outDesc, engine: engine) : nil
        var dd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_backward_data_desc_init(&dd, &src, &w, &dst),
                  "dnnl_inner_product_backward_data_desc_init", "describing \(name)'s input gradient")
        backwardData = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forwardPrimitive)
        var wd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_backward_weights_desc_init(&wd, &src, &w, &b, &dst),
                  "dnnl_inner_product_backward_weights_desc_init", "describing \(name)'s weight gradient")
        backwardWeights = try Primitive(&wd, name: "\(name) backward weights", engine: engine, hint: forwardPrimitive)
        dInput = try Memory(input, engine: engine)
    }

    public func forward(_ input: Memory) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_WEIGHTS, weight),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, output)])
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        guard let backwardData, let backwardWeights, let dInput, let dWeight, let dBias else {
            throw LayerError.notTraining(name)
        }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        try backwardWeights.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DIFF_DST, dOutput),
                                             (DNNL_ARG_DIFF_WEIGHTS, dWeight), (DNNL_ARG_DIFF_BIAS, dBias)])
        try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_WEIGHTS, weight),
                                          (DNNL_ARG_DIFF_SRC, dInput)])
    }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
        let (n, i, o) = (x.shape[0], x.shape[1], weight.shape[0])
        var y = Tensor(zeros: [n, o])
        for b in 0..<n { for r in 0..<o {
            var acc = Double(bias.data[r])
            for k in 0..<i { acc += Double(x.data[b * i + k]) * Double(weight.data[r * i + k]) }
            y.data[b * o + r] = Float(acc)
        } }
        return y
    }

    public static func referenceBackward(x: Tensor, weight: Tensor, dy: Tensor) -> (dx: Tensor, dWeight: Tensor, dBias: Tensor) {
        let (n, i, o) = (x.shape[0], x.shape[1], weight.shape[0])
        var dx = Tensor(zeros: x.shape), dw = Tensor(zeros: weight.shape), db = Tensor(zeros: [o])
        for b in 0..<n { for k in 0..<i {
            var acc = 0.0
            for r in 0..<o { acc += Double(dy.data[b * o + r]) * Double(weight.data[r * i + k]) }
            dx.data[b * i + k] = Float(acc)
        } }
        for r in 0..<o {
            var bacc = 0.0
            for b in 0..<n { bacc += Double(dy.data[b * o + r]) }
            db.data[r] = Float(bacc)
            for k in 0..<i {
                var acc = 0.0
                for b in 0..<n { acc += Double(dy.data[b * o + r]) * Double(x.data[b * i + k]) }
                dw.data[r * i + k] = Float(acc)
            }
        }
        return (dx, dw, db)
    }
}
