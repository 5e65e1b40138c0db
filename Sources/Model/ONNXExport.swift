import AlexNetCore
import AlexNetInterop

/// The network at inference as an ONNX graph, read off the one list of layers
/// (`NetworkConfig.layers`): one node per layer, dropout left out (the identity at inference),
/// the weights as initializers under this project's names (`conv1.weight` …).
///
///   input (N, 3, S, S) → Conv → Relu → LRN → MaxPool → … → Flatten → Gemm → Relu → … → Gemm → logits (N, classes)
///
/// LRN's `alpha` is PyTorch's (the paper's α × n: ONNX divides it by `size` as PyTorch does), so
/// the same constants give the same function. torchvision's adaptive pool becomes nothing (6×6
/// maps already, as at 224 pixels), a GlobalAveragePool (to 1×1), an AveragePool whose window
/// and stride are the input side over the output side (when it divides), or a nearest-neighbour
/// Resize (when the output side is a multiple of the input's, every window is one value); other
/// sizes have windows of unequal size, which no ONNX operator has, and are refused.
public enum ONNXExport {
    public enum Batch: Sendable, Equatable {
        case fixed(Int)
        /// The first dimension named `batch`: any batch size at run time.
        case dynamic
    }

    /// Opset 13 (ONNX 1.8, 2020) has every operator used here in its current form.
    public static let opset = 13

    public static func model(network: NetworkConfig, parameters: ParameterStore, batch: Batch) throws -> ONNXModel {
        try network.validate()
        var m = ONNXModel(graphName: "alexnet_\(network.variant.rawValue)", opset: opset)
        let n: ONNXModel.Dimension
        switch batch {
        case .fixed(let b):
            guard b > 0 else { throw ONNXError(message: "batch size must be positive, got \(b)") }
            n = .fixed(b)
        case .dynamic:
            n = .symbolic("batch")
        }
        try m.addInput("input", shape: [n, .fixed(3), .fixed(network.inputSize), .fixed(network.inputSize)])
        for e in parameters.entries {
            try m.addInitializer(e.name, shape: e.shape, values: UnsafeBufferPointer(start: parameters.values.pointer + e.offset, count: e.count))
        }

        // Each node reads the tensor the one before wrote, named after its layer; the last is renamed `logits`.
        var nodes: [(op: String, name: String, inputs: [String], attributes: [(String, ONNXModel.Attribute)])] = []
        var x = "input"
        func add(_ op: String, _ name: String, _ extra: [String] = [], _ attributes: [(String, ONNXModel.Attribute)] = []) {
            nodes.append((op, name, [x] + extra, attributes))
            x = name
        }
        for (spec, input, _) in try network.shapes() {
            switch spec {
            case .convolution(let name, let g):
                add("Conv", name, ["\(name).weight", "\(name).bias"],
                    [("kernel_shape", .ints([g.kernel, g.kernel])), ("strides", .ints([g.stride, g.stride])),
                     ("pads", .ints([g.padding, g.padding, g.padding, g.padding])), ("dilations", .ints([1, 1])), ("group", .int(1))])
            case .relu(let name):
                add("Relu", name)
            case .lrn(let name, let c):
                add("LRN", name, [], [("size", .int(c.size)), ("alpha", .float(c.alpha)), ("beta", .float(c.beta)), ("bias", .float(c.k))])
            case .maxPool(let name, let kernel, let stride):
                add("MaxPool", name, [], [("kernel_shape", .ints([kernel, kernel])), ("strides", .ints([stride, stride])),
                                          ("pads", .ints([0, 0, 0, 0]))])
            case .adaptiveAveragePool(let name, let size):
                let (h, w) = (input[1], input[2])
                if h == size && w == size { continue }
                if size == 1 {
                    add("GlobalAveragePool", name)
                } else if h % size == 0 && w % size == 0 {
                    add("AveragePool", name, [], [("kernel_shape", .ints([h / size, w / size])), ("strides", .ints([h / size, w / size])),
                                                  ("pads", .ints([0, 0, 0, 0]))])
                } else if size % h == 0 && size % w == 0 {
                    // Smaller maps than the output: every window is the one input ⌊i·h/size⌋,
                    // which is nearest-neighbour upsampling with that rounding.
                    let scales = [1, 1, Float(size / h), Float(size / w)]
                    try scales.withUnsafeBufferPointer { try m.addInitializer("\(name).scales", shape: [4], values: $0) }
                    add("Resize", name, ["", "\(name).scales"], [("mode", .string("nearest")),
                                                                  ("coordinate_transformation_mode", .string("asymmetric")),
                                                                  ("nearest_mode", .string("floor"))])
                } else {
                    throw ONNXError(message: "\(name): adaptive average pooling of \(h)×\(w) maps to \(size)×\(size) has windows of unequal size, which no ONNX operator has; export at an input size whose pool5 maps are \(size)×\(size) (224 pixels), a multiple of it, or a divisor")
                }
            case .flatten(let name):
                add("Flatten", name, [], [("axis", .int(1))])
            case .dropout:
                continue
            case .linear(let name, _, _):
                add("Gemm", name, ["\(name).weight", "\(name).bias"], [("transB", .int(1))])
            }
        }
        for (i, node) in nodes.enumerated() {
            try m.addNode(node.op, name: node.name, inputs: node.inputs, outputs: [i == nodes.count - 1 ? "logits" : node.name],
                          attributes: node.attributes)
        }
        m.addOutput("logits", shape: [n, .fixed(network.classes)])
        return m
    }
}
