import AlexNetCore

/// The names the network's parameters go by in other people's files (the name tables of
/// docs/DESIGN.md, Files): this project's (`conv1.weight` … `fc8.bias`), the seed's `nn.Sequential`
/// blocks, and torchvision's `features`/`classifier`. Each scheme names the same eight layers in
/// order.
public enum ParameterNaming: String, Sendable, CaseIterable {
    case native, seed, torchvision

    /// This project's names of the layers with parameters, in order (conv1 … fc8): the order
    /// every scheme follows.
    public static let layers = NetworkConfig().layers.filter { !$0.parameters.isEmpty }.map(\.name)

    /// The names a variant's files carry by default: its own framework's.
    public static func `default`(for variant: Variant) -> ParameterNaming {
        switch variant {
        case .paper: return .native
        case .seed: return .seed
        case .torchvision: return .torchvision
        }
    }

    /// The scheme's module path of each layer in `layers`.
    public var modules: [String] {
        let paths: [String: String]
        switch self {
        case .native: return Self.layers
        case .seed: paths = Self.seedModules
        case .torchvision: paths = Self.torchvisionModules
        }
        return Self.layers.map { paths[$0]! }
    }

    /// The seed's model, read off the seed variant's layers: an `nn.Sequential` `block<k>` starts
    /// at the k-th convolution and `head` at flatten, and PyTorch numbers each one's modules from
    /// 0, ReLU, LRN, pooling and dropout included (conv2 is `block2.0`, fc6 `head.2`).
    static let seedModules: [String: String] = {
        var paths: [String: String] = [:], container = "", index = 0, convolutions = 0
        for spec in NetworkConfig(variant: .seed).layers {
            switch spec {
            case .convolution: convolutions += 1; (container, index) = ("block\(convolutions)", 0)
            case .flatten: (container, index) = ("head", 0)
            default: break
            }
            if !spec.parameters.isEmpty { paths[spec.name] = "\(container).\(index)" }
            index += 1
        }
        return paths
    }()

    /// torchvision's `alexnet`, read off its layers: `features` (an `nn.Sequential` from conv1
    /// to pool5), `avgpool`, then `torch.flatten` (a call, not a module) and `classifier`
    /// (conv1 is `features.0`, fc6 `classifier.1`).
    static let torchvisionModules: [String: String] = {
        var paths: [String: String] = [:], container = "features", index = 0
        for spec in NetworkConfig.torchvision().layers {
            switch spec {
            case .adaptiveAveragePool: container = "avgpool"; continue
            case .flatten: (container, index) = ("classifier", 0); continue
            default: break
            }
            if !spec.parameters.isEmpty { paths[spec.name] = "\(container).\(index)" }
            index += 1
        }
        return paths
    }()

    /// This project's name for one of the scheme's (`head.2.weight` → `fc6.weight`), nil for a name
    /// the scheme does not have.
    public func nativeName(_ name: String) -> String? {
        for (module, layer) in zip(modules, Self.layers) {
            for kind in ["weight", "bias"] where name == module + "." + kind { return layer + "." + kind }
        }
        return nil
    }

    /// The scheme's name for one of this project's.
    public func foreignName(_ native: String) -> String? {
        for (module, layer) in zip(modules, Self.layers) {
            for kind in ["weight", "bias"] where native == layer + "." + kind { return module + "." + kind }
        }
        return nil
    }

    /// The one scheme under which every name maps to a parameter, and each parameter is there
    /// once; the error names what fits nothing.
    public static func detect(_ names: [String]) throws -> ParameterNaming {
        for scheme in allCases {
            let mapped = names.map(scheme.nativeName)
            if mapped.allSatisfy({ $0 != nil }), Set(mapped.compactMap { $0 }).count == 16 { return scheme }
        }
        let unknown = names.filter { n in !allCases.contains { $0.nativeName(n) != nil } }
        if let first = unknown.first {
            throw NamingError(message: "tensor '\(first)' maps to no AlexNet parameter under the native, seed or torchvision names (see alexnet convert --help)"
                              + (unknown.count > 1 ? "; \(unknown.count - 1) more like it" : ""))
        }
        let schemes = allCases.map { s in "\(s.rawValue): \(names.filter { s.nativeName($0) != nil }.count)/16" }
        throw NamingError(message: "the \(names.count) tensors are not the 16 parameters of one naming scheme (\(schemes.joined(separator: ", ")))")
    }
}

/// Tensors whose names fit no naming scheme.
public struct NamingError: DescribedError {
    public let message: String
    public var description: String { message }
}
