/// The names the network's parameters go by in other people's files (SPEC section 6): this
/// project's (SPEC section 1: `conv1.weight` … `fc8.bias`), the seed's `nn.Sequential` blocks, and
/// torchvision's `features`/`classifier`. Each scheme names the same eight layers in order.
public enum ParameterNaming: String, Sendable, CaseIterable {
    case native, seed, torchvision

    /// This project's layer names, the order every scheme follows.
    public static let layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]

    /// The scheme's module path of each layer in `layers`.
    public var modules: [String] {
        switch self {
        case .native: return Self.layers
        case .seed: return ["block1.0", "block2.0", "block3.0", "block4.0", "block5.0", "head.2", "head.5", "head.7"]
        case .torchvision: return ["features.0", "features.3", "features.6", "features.8", "features.10",
                                   "classifier.1", "classifier.4", "classifier.6"]
        }
    }

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
            throw NamingError(message: "tensor '\(first)' maps to no AlexNet parameter under the native, seed or torchvision names (SPEC section 6)"
                              + (unknown.count > 1 ? "; \(unknown.count - 1) more like it" : ""))
        }
        let schemes = allCases.map { s in "\(s.rawValue): \(names.filter { s.nativeName($0) != nil }.count)/16" }
        throw NamingError(message: "the \(names.count) tensors are not the 16 parameters of one naming scheme (\(schemes.joined(separator: ", ")))")
    }
}

/// Tensors whose names fit no naming scheme.
public struct NamingError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
