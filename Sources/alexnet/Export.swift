import AlexNetCore
import AlexNetKernels
import AlexNetModel
import ArgumentParser
import Foundation

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export weights as an ONNX model, for any ONNX runtime.",
        discussion: """
        Writes the network at inference (dropout left out) as an ONNX graph of opset 13: Conv, \
        Relu, LRN (its alpha is PyTorch's, the paper's α × n), MaxPool, AveragePool or \
        GlobalAveragePool for torchvision's adaptive pool where needed, Flatten and Gemm, with \
        the weights as initializers named conv1.weight … fc8.bias. The graph's input is \
        "input" (N, 3, S, S), float32, what the network sees: 0–255 RGB minus the mean (and, \
        for torchvision's weights, divided by its standard deviations); the model's metadata \
        says which mean, and the class names where the weights carry them. The output is \
        "logits" (N, classes): for the seed variant after its final ReLU. WEIGHTS is anything \
        evaluate reads (a checkpoint, safetensors, a PyTorch file). The file is written to a \
        temporary name, flushed and renamed.
        """
    )

    @Option(help: "The ONNX file to write.")
    var onnx: String

    @Option(name: .shortAndLong, help: "A checkpoint, a safetensors file, or a PyTorch file (the seed's or torchvision's state dict, the seed's _full.pt).")
    var weights: String

    @Option(help: "Fixed batch size of the graph's input and output (default 1).")
    var batch: Int?

    @Flag(help: "A symbolic batch dimension (\"batch\") instead of a fixed one: any batch size at run time.")
    var dynamicBatch = false

    @Option(help: "Variant of a plain safetensors file with native names (the seed's and torchvision's names imply theirs).")
    var variant: Variant?

    func validate() throws {
        if dynamicBatch && batch != nil { throw ValidationError("--batch and --dynamic-batch exclude each other") }
        if let batch { try validating { try Limits.check(batch: batch, flag: "--batch") } }
    }

    func run() throws {
        do { try OutputRule(inputs: [weights]).check(onnx, what: "--onnx") } catch { throw usageError(error) }
        let loaded = try loadWeights(weights, variant: variant)
        let nodes = try loaded.exportONNX(to: onnx, batch: dynamicBatch ? .dynamic : .fixed(batch ?? 1))
        let n = loaded.network
        print("export: \(weights) → \(onnx) (\(n.variant.rawValue) variant, input \(dynamicBatch ? "batch" : "\(batch ?? 1)")×3×\(n.inputSize)×\(n.inputSize), \(n.classes) classes, \(nodes) nodes, opset \(ONNXExport.opset))")
    }
}
