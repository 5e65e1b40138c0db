import AlexNetCore
import Foundation

/// safetensors (huggingface/safetensors): an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then
/// the raw little-endian tensor bytes. This reader checks every header entry against the file
/// before handing out data, and every error names the file and the tensor.
public enum DType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16",
         i8 = "I8", u8 = "U8", bool = "BOOL"
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

public struct SafetensorsError: DescribedError {
    public let path: String
    public let tensor: String?
    public let reason: String
    package init(path: String, tensor: String?, reason: String) { self.path = path; self.tensor = tensor; self.reason = reason }
    public var description: String {
        tensor.map { "\(path): tensor '\($0)': \(reason)" } ?? "\(path): \(reason)"
    }
}

/// The number of elements of `shape`, or nil when the product overflows `Int` (checked: the
/// release build does not trap on overflow, it wraps).
package func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0, case let (p, false) = n.multipliedReportingOverflow(by: d) else { return nil }
        n = p
    }
    return n
}

/// A JSON number that is exactly an integer (2 and 2.0, not 2.5, 1e30 or `true`), as an `Int`.
package func jsonInteger(_ value: Any) -> Int? {
    guard let n = value as? NSNumber else { return nil }
    // Foundation parses `true` and `false` as char-typed numbers; no JSON integer is one.
    if String(cString: n.objCType) == "c" { return nil }
    return n as? Int
}

public struct SafetensorsFile {
    public struct Info: Sendable, Equatable {
        public let dtype: DType
        public let shape: [Int]
        public let range: Range<Int>
        /// Elements (the reader checked that the shape's product fits and matches the bytes).
        public var count: Int { range.count / dtype.size }
    }

    public let path: String
    public let metadata: [String: String]
    public let tensors: [String: Info]
    private let data: Data
    private let dataStart: Int

    /// Names in file order (by offset), which is how the writer laid them out.
    public var names: [String] {
        tensors.sorted { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }
            .map(\.key)
    }

    public init(path: String) throws {
        self.path = path
        func fail(_ reason: String, _ tensor: String? = nil) -> SafetensorsError {
            SafetensorsError(path: path, tensor: tensor, reason: reason)
        }
        let data = try Self.map(path)
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header claims \(headerLength) bytes but the file has only \(data.count - 8) after the length (truncated or not safetensors)")
        }
        let start = 8 + Int(headerLength)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<start)) } catch {
            throw fail("header is not valid JSON (\(FileIO.describe(error)))")
        }
        guard let header = json as? [String: Any] else { throw fail("header is not a JSON object") }
        var meta: [String: String] = [:]
        var infos: [String: Info] = [:]
        let payload = data.count - start
        // Sorted, so that a damaged file always reports the same tensor.
        for (name, value) in header.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("metadata value for '\(k)' is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw fail("entry is not an object", name) }
            guard let ds = entry["dtype"] as? String, let dtype = DType(rawValue: ds) else {
                throw fail("unknown or missing dtype \(entry["dtype"] ?? "nil")", name)
            }
            guard let shapeAny = entry["shape"] as? [Any], let shape = shapeAny.map(jsonInteger) as? [Int],
                  shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("missing or invalid shape \(entry["shape"] ?? "nil") (a list of non-negative integers)", name)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                  let b = jsonInteger(offs[0]), let e = jsonInteger(offs[1]), 0 <= b, b <= e else {
                throw fail("missing or invalid data_offsets \(entry["data_offsets"] ?? "nil") (two integers, 0 ≤ begin ≤ end)", name)
            }
            guard e <= payload else {
                throw fail("data ends at byte \(e) but the file holds only \(payload) bytes of data (truncated?)", name)
            }
            // Checked products: the release build wraps on overflow, and a wrapped byte count
            // could match the offsets (2⁶² × 4 bytes is 0 modulo 2⁶⁴).
            guard let count = elementCount(shape), case let (expected, false) = count.multipliedReportingOverflow(by: dtype.size) else {
                throw fail("shape \(shape) has more elements than memory can address", name)
            }
            guard e - b == expected else {
                throw fail("shape \(shape) of \(dtype.rawValue) needs \(expected) bytes, data_offsets give \(e - b)", name)
            }
            infos[name] = Info(dtype: dtype, shape: shape, range: b..<e)
        }
        self.data = data
        self.dataStart = start
        self.metadata = meta
        self.tensors = infos
    }

    /// The file's bytes, mapped read-only. Only a regular file is opened: a FIFO would block the
    /// reader until some writer appeared, and a folder or device is not a safetensors file; the
    /// message says which it is (Foundation's mapping error calls all of them a permission problem).
    private static func map(_ path: String) throws -> Data {
        func fail(_ reason: String) -> SafetensorsError { SafetensorsError(path: path, tensor: nil, reason: reason) }
        func posix(_ what: String) -> SafetensorsError { fail("\(what) (\(String(cString: strerror(errno))))") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw posix("cannot open the file") }
        if let kind = FileIO.nonRegularKind(st.st_mode) { throw fail("is \(kind), not a regular file") }
        // O_NONBLOCK: should a FIFO take the file's place after the stat, opening it cannot hang.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw posix("cannot open the file") }
        defer { close(fd) }
        guard fstat(fd, &st) == 0 else { throw posix("cannot stat the file") }
        if let kind = FileIO.nonRegularKind(st.st_mode) { throw fail("is \(kind), not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { return Data() }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { throw posix("cannot map the file") }
        return Data(bytesNoCopy: p, count: size, deallocator: .custom { p, n in munmap(p, n) })
    }

    public func info(_ name: String) throws -> Info {
        guard let i = tensors[name] else {
            throw SafetensorsError(path: path, tensor: name, reason: "not in the file")
        }
        return i
    }

    private func check(_ name: String, _ dtypes: Set<DType>, _ shape: [Int]?) throws -> Info {
        let i = try info(name)
        guard dtypes.contains(i.dtype) else {
            throw SafetensorsError(path: path, tensor: name,
                                   reason: "dtype \(i.dtype.rawValue), expected \(dtypes.map(\.rawValue).sorted().joined(separator: " or "))")
        }
        if let shape, shape != i.shape {
            throw SafetensorsError(path: path, tensor: name, reason: "shape \(i.shape), expected \(shape)")
        }
        return i
    }

    private func withBytes<R>(_ i: Info, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        data.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[(dataStart + i.range.lowerBound)..<(dataStart + i.range.upperBound)]))
        }
    }

    /// A float tensor (F32, or F64 narrowed), optionally checked against `shape`.
    public func tensor(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        let i = try check(name, [.f32, .f64], shape)
        let n = i.count
        let values: [Float] = withBytes(i) { raw in
            if i.dtype == .f32 {
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        }
        return Tensor(shape: i.shape, data: values)
    }

    /// Copies an F32 tensor of `shape` straight into `destination` (parameters, momentum): one
    /// memcpy instead of a per-element decode, for the 37.7 M weights of fc6.
    public func copyFloats(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        let i = try check(name, [.f32], shape)
        withBytes(i) { raw in if raw.count > 0 { UnsafeMutableRawPointer(destination).copyMemory(from: raw.baseAddress!, byteCount: raw.count) } }
    }

    /// F64 values, exactly.
    public func doubles(_ name: String, shape: [Int]? = nil) throws -> [Double] {
        let i = try check(name, [.f64], shape)
        return withBytes(i) { raw in
            (0..<(i.range.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        }
    }

    /// Integer values (I64 or I32).
    public func integers(_ name: String, shape: [Int]? = nil) throws -> [Int] {
        let i = try check(name, [.i64, .i32], shape)
        return withBytes(i) { raw in
            if i.dtype == .i64 {
                return (0..<(i.range.count / 8)).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
            }
            return (0..<(i.range.count / 4)).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        }
    }
}

/// Collects tensors and writes one safetensors file, durably and atomically, so that a crash
/// never leaves a half-written checkpoint under the real name.
public struct SafetensorsWriter {
    private var entries: [(name: String, dtype: DType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    public mutating func add(_ name: String, _ tensor: Tensor) {
        add(name, dtype: .f32, shape: tensor.shape, bytes: tensor.data.withUnsafeBufferPointer { p in
            Data(p.map(\.bitPattern.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
        })
    }

    public mutating func add(_ name: String, doubles: [Double], shape: [Int]) {
        require(elementCount(shape) == doubles.count, "\(name): \(doubles.count) values for shape \(shape)")
        add(name, dtype: .f64, shape: shape, bytes: doubles.map(\.bitPattern.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public mutating func add(_ name: String, integers: [Int], shape: [Int]) {
        require(elementCount(shape) == integers.count, "\(name): \(integers.count) values for shape \(shape)")
        add(name, dtype: .i64, shape: shape, bytes: integers.map { Int64($0).littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    private mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: Data) {
        require(name != "__metadata__" && !entries.contains { $0.name == name }, "safetensors: duplicate or reserved name \(name)")
        entries.append((name, dtype, shape, bytes))
    }

    /// Floats straight from memory (a parameter or momentum view), copied once.
    public mutating func add(_ name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        require(elementCount(shape) == floats.count, "\(name): \(floats.count) values for shape \(shape)")
        // Little-endian hosts only (x86-64, arm64): the bytes in memory are the file's.
        add(name, dtype: .f32, shape: shape, bytes: Data(buffer: floats))
    }

    /// The header: 8-byte length, then JSON padded with spaces to a multiple of 8; entries follow
    /// in the order added.
    private func header() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.bytes.count]] as [String: Any]
            offset += e.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        out.append(Data(bytes: &n, count: 8))
        out.append(json)
        return out
    }

    /// The file's bytes.
    public func serialized() throws -> Data {
        var out = try header()
        for e in entries { out.append(e.bytes) }
        return out
    }

    /// Writes the file durably (see `FileIO.writeDurably`): a crash at any moment leaves either
    /// the previous file or the complete new one under `path`. Tensors stream out one by one.
    public func write(to path: String) throws {
        let head: Data
        do { head = try header() } catch {
            throw SafetensorsError(path: path, tensor: nil, reason: "cannot encode the header as JSON (\(error))")
        }
        do {
            try FileIO.writeDurably(to: path) { write in
                try head.withUnsafeBytes(write)
                for e in entries { try e.bytes.withUnsafeBytes(write) }
            }
        } catch let e as FileIO.Failure {
            throw SafetensorsError(path: e.path, tensor: nil, reason: e.reason)
        }
    }
}
