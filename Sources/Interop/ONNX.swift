import AlexNetCore
import AlexNetProtos
import Foundation
import SwiftProtobuf

/// An ONNX model under construction, written through the Swift code generated from ONNX's
/// published onnx.proto (ONNX.pb.swift; scripts/generate_protos.sh): float32 initializers, nodes
/// of the default operator set, float32 inputs and outputs whose dimensions may be symbolic
/// (a dynamic batch). It knows nothing of AlexNet; `ONNXExport` builds the network with it.
public struct ONNXModel {
    public enum Attribute: Sendable {
        case int(Int), ints([Int]), float(Float), string(String)
    }

    public enum Dimension: Sendable, Equatable {
        case fixed(Int)
        /// A size named, not fixed: any batch size at run time.
        case symbolic(String)
    }

    /// The default domain's operator set the nodes are from.
    public let opset: Int
    private var graph = Onnx_GraphProto()
    private var names: Set<String> = []

    public init(graphName: String, opset: Int = 13) {
        self.opset = opset
        graph.name = graphName
    }

    public var nodeCount: Int { graph.node.count }

    /// A constant tensor (a weight), stored as little-endian raw data.
    public mutating func addInitializer(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        try claim(name)
        guard shape.reduce(1, *) == values.count else {
            throw ONNXError(message: "initializer \(name): \(values.count) values for shape \(shape)")
        }
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = shape.map(Int64.init)
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        // x86 and ARM are little-endian, as ONNX's raw_data is.
        t.rawData = Data(buffer: values)
        graph.initializer.append(t)
    }

    public mutating func addNode(_ op: String, name: String, inputs: [String], outputs: [String],
                                 attributes: [(String, Attribute)] = []) throws {
        try claim("node:" + name)
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = (op, name, inputs, outputs)
        n.attribute = attributes.map { key, value in
            var a = Onnx_AttributeProto()
            a.name = key
            switch value {
            case .int(let v): (a.type, a.i) = (.int, Int64(v))
            case .ints(let v): (a.type, a.ints) = (.ints, v.map(Int64.init))
            case .float(let v): (a.type, a.f) = (.float, v)
            case .string(let v): (a.type, a.s) = (.string, Data(v.utf8))
            }
            return a
        }
        graph.node.append(n)
    }

    public mutating func addInput(_ name: String, shape: [Dimension]) throws {
        try claim(name)
        graph.input.append(Self.valueInfo(name, shape))
    }

    public mutating func addOutput(_ name: String, shape: [Dimension]) {
        graph.output.append(Self.valueInfo(name, shape))
    }

    /// The serialized ModelProto. IR version 7 is the one of opset 13 (ONNX 1.8), so older
    /// runtimes read it too.
    public func serialized(producer: String, version: String, metadata: [(String, String)] = []) throws -> Data {
        var m = Onnx_ModelProto()
        m.irVersion = 7
        m.producerName = producer
        m.producerVersion = version
        var set = Onnx_OperatorSetIdProto()
        (set.domain, set.version) = ("", Int64(opset))
        m.opsetImport = [set]
        m.graph = graph
        m.metadataProps = metadata.map { key, value in
            var e = Onnx_StringStringEntryProto()
            (e.key, e.value) = (key, value)
            return e
        }
        do { return try m.serializedData() } catch {
            throw ONNXError(message: "cannot serialize the model: \(error)")
        }
    }

    private mutating func claim(_ name: String) throws {
        guard names.insert(name).inserted else { throw ONNXError(message: "the name \(name) is used twice") }
    }

    private static func valueInfo(_ name: String, _ shape: [Dimension]) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape.dim = shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let v): dim.dimValue = Int64(v)
            case .symbolic(let s): dim.dimParam = s
            }
            return dim
        }
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type.tensorType = tensor
        return v
    }
}

/// A graph that cannot be built as asked (a name used twice, a shape that does not fit, a layer
/// ONNX's operators cannot express).
public struct ONNXError: DescribedError, Sendable {
    public let message: String
    package init(message: String) { self.message = message }
    public var description: String { message }
}
