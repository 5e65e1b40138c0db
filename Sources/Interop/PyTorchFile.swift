import AlexNetCore
import Foundation

/// A file written by `torch.save` (PyTorch 1.6 and later): a zip archive holding `<name>/data.pkl`
/// (the object, pickled, with tensors as persistent ids of storages), the storages as
/// `<name>/data/<key>` (raw little-endian elements), `byteorder` and `version`. Read without
/// Python: the archive by `ZipArchive`, the pickle by the restricted `Unpickler`, the tensors
/// copied out of their storages as float32 with their strides applied.
public struct PyTorchFile {
    public let path: String
    /// The saved object: a state dict, or a dict holding one (`model`, `optimizer`, …).
    public let root: PickleValue
    private let archive: ZipArchive
    private let prefix: String

    public struct Failure: DescribedError {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
        package init(path: String, reason: String) { self.path = path; self.reason = reason }
    }

    /// Whether `bytes` (the start of a file) are a PyTorch file of the zip kind.
    public static func looksLikePyTorch(_ bytes: UnsafeRawBufferPointer) -> Bool { ZipArchive.looksLikeZip(bytes) }

    /// Whether the file's first bytes are PyTorch's legacy format (before 1.6, or saved with
    /// `_use_new_zipfile_serialization=False`): a pickle starting with its magic number.
    public static func isLegacy(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        return bytes.count >= magic.count && zip(bytes.prefix(magic.count), magic).allSatisfy { $0 == $1 }
    }

    /// Whether the file's first bytes are a pickle of protocol 2 to 5 (PROTO, then its number)
    /// written straight to the file, as `pickle.dump` does, rather than inside `torch.save`'s zip.
    public static func isRawPickle(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x80 && (2...5).contains(bytes[1])
    }

    public init(path: String) throws {
        self.path = path
        let data: Data
        do { data = try FileIO.mapped(path) } catch let f as FileIO.Failure { throw Failure(path: path, reason: f.reason) }
        let head = data.prefix(16)
        if head.withUnsafeBytes(Self.isLegacy) {
            throw Failure(path: path, reason: "PyTorch's legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False) is not supported: load it in PyTorch and save it again with torch.save")
        }
        if head.withUnsafeBytes(Self.isRawPickle) {
            throw Failure(path: path, reason: "a raw pickle, not a torch.save zip file: load it in Python and save it with torch.save (PyTorch 1.6 or later)")
        }
        guard head.withUnsafeBytes(ZipArchive.looksLikeZip) else {
            throw Failure(path: path, reason: "not a PyTorch file (torch.save writes a zip archive; this starts with \(head.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")))")
        }
        archive = try ZipArchive(path: path, bytes: data)
        let pickles = archive.entries.map(\.name).filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }
        guard pickles.count == 1 else {
            throw Failure(path: path, reason: pickles.isEmpty ? "no <name>/data.pkl in the archive: not a torch.save file" : "\(pickles.count) data.pkl entries")
        }
        prefix = String(pickles[0].dropLast("data.pkl".count))
        if archive.entry(prefix + "byteorder") != nil {
            let order = String(decoding: try archive.contents(prefix + "byteorder"), as: UTF8.self)
            guard order == "little" else { throw Failure(path: path, reason: "byte order '\(order)': only little-endian files are read") }
        }
        root = try Unpickler.load([UInt8](try archive.contents(pickles[0])), path: path)
    }

    /// A tensor's elements in row-major order, as float32 (float64, float16 and bfloat16 are
    /// converted; integer and bool storages too).
    public func floats(_ t: TorchTensor, name: String) throws -> [Float] {
        let entry = prefix + "data/" + t.storage.key
        guard let info = archive.entry(entry) else { throw Failure(path: path, reason: "tensor '\(name)': its storage \(entry) is not in the archive") }
        let (bytes, overflow) = t.storage.count.multipliedReportingOverflow(by: t.storage.dtype.size)
        guard !overflow, info.size >= bytes else {
            throw Failure(path: path, reason: "tensor '\(name)': storage \(t.storage.key) holds \(info.size) bytes, shorter than its \(t.storage.count) \(t.storage.dtype) elements")
        }
        let data = try archive.contents(entry)
        let n = t.elementCount
        var out = [Float](repeating: 0, count: n)
        guard n > 0 else { return out }
        data.withUnsafeBytes { raw in
            func element(_ i: Int) -> Float {
                let p = raw.baseAddress! + i * t.storage.dtype.size
                switch t.storage.dtype {
                case .float32: return Float(bitPattern: p.loadUnaligned(as: UInt32.self).littleEndian)
                case .float64: return Float(Double(bitPattern: p.loadUnaligned(as: UInt64.self).littleEndian))
                case .float16: return Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self).littleEndian))
                case .bfloat16: return Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self).littleEndian) << 16)
                case .int64: return Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
                case .int32: return Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
                case .int16: return Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
                case .int8: return Float(p.load(as: Int8.self))
                case .uint8, .bool: return Float(p.load(as: UInt8.self))
                }
            }
            // Row-major walk of the view (`Unpickler.checkView` bounded every index).
            var index = [Int](repeating: 0, count: t.shape.count)
            var source = t.offset
            for i in 0..<n {
                out[i] = element(source)
                var d = t.shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    source += t.stride[d]
                    if index[d] < t.shape[d] { break }
                    source -= t.stride[d] * t.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return out
    }

    /// The tensors of a state dict (string keys to tensors, in file order).
    public static func stateDict(_ value: PickleValue) -> [(name: String, tensor: TorchTensor)]? {
        guard let entries = value.entries else { return nil }
        var out: [(String, TorchTensor)] = []
        for (k, v) in entries {
            guard let name = k.string else { return nil }
            if let t = v.tensor { out.append((name, t)) } else if case .int = v { continue } else { return nil }   // e.g. num_batches_tracked
        }
        return out.isEmpty ? nil : out
    }
}

extension PyTorchFile {
    /// Writes what `torch.save(value, path)` would for a value whose tensors are float32: the
    /// pickle, one storage per tensor (`data/0`, `data/1`, … in `tensors` order), the byte order,
    /// format version and serialization version, as one zip archive named `archive` inside,
    /// written durably (see `FileIO.writeDurably`).
    public static func write(_ value: Pickler.Value, tensors: [[Float]], archive: String = "archive", to path: String) throws {
        var pickler = Pickler()
        pickler.write(value)
        var zip = ZipWriter()
        try zip.add(archive + "/data.pkl", Data(pickler.finish()))
        try zip.add(archive + "/.format_version", Data("1".utf8))
        try zip.add(archive + "/.storage_alignment", Data("64".utf8))
        try zip.add(archive + "/byteorder", Data("little".utf8))
        for (i, t) in tensors.enumerated() {
            try zip.add(archive + "/data/\(i)", t.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        try zip.add(archive + "/version", Data("3\n".utf8))
        try FileIO.writeDurably(zip.finish(), to: path)
    }
}
