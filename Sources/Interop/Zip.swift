import AlexNetCore
import CZlib
import Foundation

/// A zip archive read from memory (PKWARE APPNOTE 6.3: the end-of-central-directory record, ZIP64
/// where sizes or offsets pass 4 GiB, the central directory, local headers; entries stored or
/// deflated, each checked against its CRC-32). What `torch.save` writes is one such archive.
/// Every offset and length is checked against the bytes before use, so a damaged or crafted
/// archive gives an error naming the entry and the field, never a read outside the file.
public struct ZipArchive {
    public struct Entry: Sendable {
        public let name: String
        /// 0 stored, 8 deflated.
        public let method: UInt16
        public let compressedSize: Int
        public let size: Int
        public let crc: UInt32
        let localHeaderOffset: Int
    }

    public struct Failure: DescribedError {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public let path: String
    public let entries: [Entry]
    private let index: [String: Int]
    private let bytes: Data

    /// Whether `bytes` start as a zip archive does (a local file header).
    public static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B && bytes[2] == 0x03 && bytes[3] == 0x04
    }

    public init(path: String, bytes: Data) throws {
        (self.path, self.bytes) = (path, bytes)
        let reader = ByteReader(bytes, path: path)
        // The end-of-central-directory record: 22 bytes plus a comment of at most 65535.
        let lowest = max(0, bytes.count - 22 - 65535)
        guard bytes.count >= 22,
              let eocd = stride(from: bytes.count - 22, through: lowest, by: -1).first(where: { (try? reader.u32($0)) == 0x0605_4B50 }) else {
            throw Failure(path: path, reason: "not a zip archive, or truncated (no end-of-central-directory record)")
        }
        var count = Int(try reader.u16(eocd + 10))
        var directorySize = Int(try reader.u32(eocd + 12))
        var directoryOffset = Int(try reader.u32(eocd + 16))
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the record points at the 64-bit record.
            guard eocd >= 20, try reader.u32(eocd - 20) == 0x0706_4B50 else {
                throw Failure(path: path, reason: "ZIP64 sizes without a ZIP64 locator (damaged archive)")
            }
            let record = try reader.int(try reader.u64(eocd - 12), "ZIP64 record offset")
            guard try reader.u32(record) == 0x0606_4B50 else { throw Failure(path: path, reason: "bad ZIP64 end-of-central-directory record") }
            count = try reader.int(try reader.u64(record + 32), "entry count")
            directorySize = try reader.int(try reader.u64(record + 40), "central directory size")
            directoryOffset = try reader.int(try reader.u64(record + 48), "central directory offset")
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset, count <= directorySize / 46 + 1 else {
            throw Failure(path: path, reason: "the central directory (\(count) entries, \(directorySize) bytes at \(directoryOffset)) lies outside the \(bytes.count)-byte file (truncated?)")
        }
        var entries: [Entry] = [], index: [String: Int] = [:]
        var at = directoryOffset
        for _ in 0..<count {
            guard try reader.u32(at) == 0x0201_4B50 else {
                throw Failure(path: path, reason: "central directory entry \(entries.count) at byte \(at) has a bad signature")
            }
            let method = try reader.u16(at + 10)
            let crc = try reader.u32(at + 16)
            var compressed = Int(try reader.u32(at + 20)), size = Int(try reader.u32(at + 24))
            let nameLength = Int(try reader.u16(at + 28)), extraLength = Int(try reader.u16(at + 30)), commentLength = Int(try reader.u16(at + 32))
            var local = Int(try reader.u32(at + 42))
            let nameBytes = try reader.slice(at + 46, nameLength, "entry name")
            guard let name = String(validating: nameBytes, as: UTF8.self) else {
                throw Failure(path: path, reason: "entry \(entries.count): its name is not UTF-8")
            }
            // The ZIP64 extra field holds, in this order, whichever 32-bit fields were saturated.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try reader.u16(extra), length = Int(try reader.u16(extra + 2))
                if id == 0x0001 {
                    var field = extra + 4
                    func next(_ what: String) throws -> Int {
                        defer { field += 8 }
                        guard field + 8 <= extra + 4 + length else { throw Failure(path: path, reason: "entry '\(name)': ZIP64 field \(what) missing") }
                        return try reader.int(try reader.u64(field), what)
                    }
                    if size == 0xFFFF_FFFF { size = try next("size") }
                    if compressed == 0xFFFF_FFFF { compressed = try next("compressed size") }
                    if local == 0xFFFF_FFFF { local = try next("header offset") }
                }
                extra += 4 + length
            }
            guard method == 0 || method == 8 else {
                throw Failure(path: path, reason: "entry '\(name)' uses compression method \(method); only stored (0) and deflated (8) are read")
            }
            if index[name] != nil { throw Failure(path: path, reason: "entry '\(name)' appears twice") }
            index[name] = entries.count
            entries.append(Entry(name: name, method: method, compressedSize: compressed, size: size, crc: crc, localHeaderOffset: local))
            at = extraEnd + commentLength
        }
        (self.entries, self.index) = (entries, index)
    }

    public init(path: String) throws {
        let data: Data
        do { data = try FileIO.mapped(path) } catch let f as FileIO.Failure { throw Failure(path: path, reason: f.reason) }
        try self.init(path: path, bytes: data)
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The uncompressed bytes of an entry, checked against its CRC-32.
    public func contents(_ name: String) throws -> Data {
        guard let e = entry(name) else { throw Failure(path: path, reason: "no entry '\(name)' in the archive") }
        let reader = ByteReader(bytes, path: path)
        guard try reader.u32(e.localHeaderOffset) == 0x0403_4B50 else {
            throw Failure(path: path, reason: "entry '\(name)': bad local header at byte \(e.localHeaderOffset)")
        }
        let start = e.localHeaderOffset + 30 + Int(try reader.u16(e.localHeaderOffset + 26)) + Int(try reader.u16(e.localHeaderOffset + 28))
        guard start <= bytes.count, e.compressedSize <= bytes.count - start else {
            throw Failure(path: path, reason: "entry '\(name)': its \(e.compressedSize) bytes at \(start) run past the end of the \(bytes.count)-byte file (truncated?)")
        }
        let raw = bytes.subdata(in: (bytes.startIndex + start)..<(bytes.startIndex + start + e.compressedSize))
        let out: Data
        if e.method == 0 {
            guard e.compressedSize == e.size else { throw Failure(path: path, reason: "entry '\(name)': stored with \(e.compressedSize) bytes but a size of \(e.size)") }
            out = raw
        } else {
            out = try Self.inflateRaw(raw, size: e.size, fail: { Failure(path: path, reason: "entry '\(name)': \($0)") })
        }
        let crc = out.withUnsafeBytes { p -> UInt32 in
            var c: UInt = crc32(0, nil, 0)
            var offset = 0
            while offset < p.count {   // zlib takes 32-bit lengths
                let n = min(p.count - offset, 1 << 30)
                c = crc32(c, p.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, UInt32(n))
                offset += n
            }
            return UInt32(truncatingIfNeeded: c)
        }
        guard crc == e.crc else { throw Failure(path: path, reason: "entry '\(name)': CRC-32 \(String(crc, radix: 16)) where the archive says \(String(e.crc, radix: 16)) (damaged)") }
        return out
    }

    /// Raw deflate (no zlib or gzip framing) of a known uncompressed size.
    static func inflateRaw(_ input: Data, size: Int, fail: (String) -> Failure) throws -> Data {
        guard input.count < Int(UInt32.max), size < Int(UInt32.max) else { throw fail("deflated entries over 4 GiB are not read") }
        // zlib keeps a pointer back to the stream and checks it on every call, so the stream must not move.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        guard inflateInit2_(stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw fail("cannot start inflating") }
        defer { inflateEnd(stream) }
        var output = Data(count: size + 1)   // one spare byte: more output than announced is an error
        let status: Int32 = input.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: UInt8.self))
                stream.pointee.avail_in = UInt32(src.count)
                stream.pointee.next_out = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_out = UInt32(dst.count)
                return inflate(stream, Z_FINISH)
            }
        }
        let produced = size + 1 - Int(stream.pointee.avail_out)
        guard status == Z_STREAM_END, produced == size else {
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
            throw fail(status == Z_STREAM_END ? "inflates to \(produced) bytes, not the \(size) announced" : "cannot inflate (\(message))")
        }
        output.removeLast()
        return output
    }
}

/// Little-endian fields of a byte buffer, each read checked against its end.
struct ByteReader {
    let data: Data
    let path: String
    init(_ data: Data, path: String) { (self.data, self.path) = (data, path) }

    private func check(_ at: Int, _ n: Int) throws {
        guard at >= 0, n >= 0, at <= data.count, n <= data.count - at else {
            throw ZipArchive.Failure(path: path, reason: "a \(n)-byte field at byte \(at) runs past the end of the \(data.count)-byte file (truncated or damaged)")
        }
    }

    private func le(_ at: Int, _ n: Int) throws -> UInt64 {
        try check(at, n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(data[data.startIndex + at + i]) }
        return v
    }

    func u16(_ at: Int) throws -> UInt16 { UInt16(try le(at, 2)) }
    func u32(_ at: Int) throws -> UInt32 { UInt32(try le(at, 4)) }
    func u64(_ at: Int) throws -> UInt64 { try le(at, 8) }

    /// A 64-bit size or offset as Int, refused when it cannot be one.
    func int(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= UInt64(Int.max) else { throw ZipArchive.Failure(path: path, reason: "\(what) \(v) is impossible") }
        return Int(v)
    }

    func slice(_ at: Int, _ n: Int, _ what: String) throws -> [UInt8] {
        try check(at, n)
        return [UInt8](data[(data.startIndex + at)..<(data.startIndex + at + n)])
    }
}

/// Writes a zip archive of stored (uncompressed) entries, each entry's data starting at a
/// multiple of `alignment` bytes (as `torch.save` aligns storages to 64, so they can be mapped),
/// through a padding extra field in the local header. Entries and the archive stay under 4 GiB
/// (no ZIP64): enough for AlexNet's 244 MB.
public struct ZipWriter {
    public let alignment: Int
    private var body = Data()
    private var directory = Data()
    private var count = 0

    public init(alignment: Int = 64) { self.alignment = alignment }

    private static func le(_ v: UInt64, _ n: Int, into d: inout Data) { for i in 0..<n { d.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }

    public mutating func add(_ name: String, _ contents: Data) throws {
        let nameBytes = Data(name.utf8)
        guard body.count + contents.count + 1024 < Int(UInt32.max), nameBytes.count < 0xFFFF else {
            throw ZipArchive.Failure(path: name, reason: "entry too large for a zip archive without ZIP64")
        }
        let crc = contents.withUnsafeBytes { p in UInt32(truncatingIfNeeded: crc32(0, p.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(p.count))) }
        let offset = body.count
        // Local header (30 bytes) + name + a padding field (4-byte header + pad) ends on the alignment.
        let unpadded = offset + 30 + nameBytes.count + 4
        let pad = (alignment - unpadded % alignment) % alignment
        var h = Data()
        Self.le(0x0403_4B50, 4, into: &h); Self.le(20, 2, into: &h); Self.le(0, 2, into: &h); Self.le(0, 2, into: &h)
        Self.le(0, 2, into: &h); Self.le(0x21, 2, into: &h)   // time 0, date 1980-01-01
        Self.le(UInt64(crc), 4, into: &h); Self.le(UInt64(contents.count), 4, into: &h); Self.le(UInt64(contents.count), 4, into: &h)
        Self.le(UInt64(nameBytes.count), 2, into: &h); Self.le(UInt64(4 + pad), 2, into: &h)
        h.append(nameBytes)
        Self.le(0x4246, 2, into: &h); Self.le(UInt64(pad), 2, into: &h)   // "FB": padding, as PyTorch names it
        h.append(Data(count: pad))
        body.append(h)
        body.append(contents)
        var c = Data()
        Self.le(0x0201_4B50, 4, into: &c); Self.le(20, 2, into: &c); Self.le(20, 2, into: &c); Self.le(0, 2, into: &c); Self.le(0, 2, into: &c)
        Self.le(0, 2, into: &c); Self.le(0x21, 2, into: &c)
        Self.le(UInt64(crc), 4, into: &c); Self.le(UInt64(contents.count), 4, into: &c); Self.le(UInt64(contents.count), 4, into: &c)
        Self.le(UInt64(nameBytes.count), 2, into: &c); Self.le(0, 2, into: &c); Self.le(0, 2, into: &c)
        Self.le(0, 2, into: &c); Self.le(0, 2, into: &c); Self.le(0, 4, into: &c); Self.le(UInt64(offset), 4, into: &c)
        c.append(nameBytes)
        directory.append(c)
        count += 1
    }

    /// The archive's bytes: the entries, the central directory, the end record.
    public func finish() -> Data {
        var out = body
        out.append(directory)
        var e = Data()
        Self.le(0x0605_4B50, 4, into: &e); Self.le(0, 2, into: &e); Self.le(0, 2, into: &e)
        Self.le(UInt64(count), 2, into: &e); Self.le(UInt64(count), 2, into: &e)
        Self.le(UInt64(directory.count), 4, into: &e); Self.le(UInt64(body.count), 4, into: &e); Self.le(0, 2, into: &e)
        out.append(e)
        return out
    }
}
