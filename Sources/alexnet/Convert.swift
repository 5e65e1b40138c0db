import AlexNetCore
import AlexNetKernels
import AlexNetModel
import ArgumentParser
import Foundation

extension ParameterNaming: ExpressibleByArgument {}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights between this project's checkpoints, PyTorch files and safetensors.",
        discussion: """
        IN is a training checkpoint, a safetensors weights file, or a PyTorch file written by \
        torch.save (a state dict such as the seed's alexnet_best_*.pt, or the seed's \
        alexnet_*_full.pt checkpoint dict), read without Python. OUT's extension chooses the \
        format: .pt or .pth writes the state dict torch.save(model.state_dict()) would, which \
        loads with torch.load(path, weights_only=True) and load_state_dict into the seed's \
        model (--names seed) or torchvision's (--names torchvision); anything else writes a \
        plain safetensors file. Names: native is conv1.weight … fc8.bias; \
        seed is block1.0 … block5.0, head.2, head.5, head.7; torchvision is features.0/3/6/8/10, \
        classifier.1/4/6. The default is the variant's own: seed for the seed variant, torchvision for \
        torchvision's, native for the paper's. OUT \
        is written to a temporary file, flushed and renamed.
        """
    )

    @Argument(help: "Weights to read (checkpoint, safetensors or .pt).")
    var input: String

    @Argument(help: "File to write (.pt/.pth for PyTorch, else safetensors).")
    var output: String

    @Option(help: "Parameter names to write: native, seed or torchvision.")
    var names: ParameterNaming?

    @Option(help: "Variant of a plain safetensors file with native names (the seed's and torchvision's names imply theirs).")
    var variant: Variant?

    func run() throws {
        do { try OutputRule(inputs: [input]).check(output, what: "OUT") } catch { throw usageError(error) }
        let loaded = try loadWeights(input, variant: variant)
        try loaded.write(to: output, names: names)
        let n = loaded.network
        print("convert: \(input) → \(output) (\(n.variant.rawValue) variant, widths \(n.widths), hidden \(n.hidden), \(n.classes) classes, names \((names ?? .default(for: n.variant)).rawValue))")
    }
}
