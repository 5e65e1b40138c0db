import AlexNetCore
import AlexNetProtos
import Foundation

/// TensorBoard event files, written natively. A file is a sequence of TFRecords: the payload's
/// length as a little-endian UInt64, the masked CRC-32C of those 8 bytes (UInt32 LE), the payload,
/// and the payload's masked CRC-32C. Each payload is a serialized `tensorflow.Event`
/// (Protos/tensorboard.proto, generated into TensorBoard.pb.swift); the first one carries
/// `file_version = "brain.Event:2"`.
public struct TensorBoardError: DescribedError {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecords use.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { byte in
        var c = UInt32(byte)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = ~0
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int(UInt8(truncatingIfNeeded: crc) ^ b)] ^ (crc >> 8) }
        }
        return ~crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }

    /// TFRecord stores the CRC rotated right by 15 bits plus a constant, since a CRC of data that
    /// itself contains CRCs is weak.
    public static func mask(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }
}

/// Writes one event file `events.out.tfevents.<unix seconds>.<host>.<pid>.<n>` in a folder
/// (TensorBoard picks up every file whose name contains "tfevents"; pid and a per-process counter
/// keep writers started in the same second apart, and the counter's three digits keep their names
/// sorting in creation order, which is the order TensorBoard reads a folder's files in). Records are buffered in memory and reach the
/// file when the buffer fills, on `flush()` (which also fsyncs), `close()` or deinit. Not
/// thread-safe: log from one thread at a time.
public final class TensorBoardWriter {
    public let path: String
    private var fd: Int32
    private var pending: [UInt8] = []
    /// A write or sync failed and the error went to a caller: close() then drops what is
    /// pending instead of failing, and reporting, the same way again.
    private var failed = false
    private static let bufferLimit = 1 << 20
    private static let counterLock = NSLock()
    private nonisolated(unsafe) static var counter = 0

    private static func nextNumber() -> Int {
        counterLock.lock()
        defer { counterLock.unlock() }
        counter += 1
        return counter - 1
    }

    private static func hostname() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(cString: name).replacingOccurrences(of: "/", with: "_")
    }

    /// Creates `directory` if needed and a new event file in it, and writes the file_version event.
    public init(directory: String) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw TensorBoardError(path: directory, reason: "cannot create the folder (\(FileIO.describe(error)))")
        }
        let stem = "\(directory)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(Self.hostname()).\(getpid())."
        var path: String, fd: Int32
        // O_EXCL: never append to another writer's file, even one from a process with our pid.
        repeat {
            path = stem + String(format: "%03d", Self.nextNumber())
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        } while fd < 0 && errno == EEXIST
        guard fd >= 0 else { throw Self.failure(path, "cannot create") }
        self.path = path
        self.fd = fd
        var event = Tensorflow_Event()
        event.fileVersion = "brain.Event:2"
        try append(event, step: 0)
        try flush()
        // The new name must survive a crash too: fsync the folder that holds it.
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw Self.failure(directory, "cannot open the folder to sync it") }
        defer { Foundation.close(dir) }
        guard fsync(dir) == 0 else { throw Self.failure(directory, "cannot sync the folder") }
    }

    deinit { close() }

    public func scalar(_ tag: String, _ value: Double, step: Int) throws {
        var v = Tensorflow_Summary.Value()
        v.tag = tag
        v.simpleValue = Float(value)   // simple_value is a float in summary.proto
        try append(summary: v, step: step)
    }

    /// A histogram of `values` over TensorFlow's default buckets (see TensorBoardHistogram).
    public func histogram(_ tag: String, _ values: UnsafeBufferPointer<Float>, step: Int) throws {
        var v = Tensorflow_Summary.Value()
        v.tag = tag
        v.histo = TensorBoardHistogram(values).proto
        try append(summary: v, step: step)
    }

    /// SessionLog START at `step`: TensorBoard then discards the events written earlier with a
    /// step >= `step`, so a run resumed from a checkpoint replaces what it logged after it.
    public func sessionStart(step: Int) throws {
        var event = Tensorflow_Event()
        event.sessionLog.status = .start
        try append(event, step: step)
    }

    /// Writes the buffered records and fsyncs the file.
    public func flush() throws {
        try writePending()
        guard fsync(fd) == 0 else { failed = true; throw Self.failure(path, "cannot sync") }
    }

    /// Flushes and closes the file; later calls throw. Since this cannot throw, a failure is
    /// reported on stderr (unless an earlier call already threw one): call `flush()` first to
    /// handle it.
    public func close() {
        guard fd >= 0 else { return }
        var problems: [String] = []
        if !failed { do { try flush() } catch { problems.append("\(error)") } }
        if Foundation.close(fd) != 0 { problems.append("\(Self.failure(path, "cannot close"))") }
        fd = -1
        for p in problems { FileHandle.standardError.write(Data("TensorBoardWriter: \(p)\n".utf8)) }
    }

    private func append(summary value: Tensorflow_Summary.Value, step: Int) throws {
        var event = Tensorflow_Event()
        event.summary.value = [value]
        try append(event, step: step)
    }

    private func append(_ event: Tensorflow_Event, step: Int) throws {
        guard fd >= 0 else { throw TensorBoardError(path: path, reason: "the writer is closed") }
        var event = event
        event.wallTime = Date().timeIntervalSince1970
        event.step = Int64(step)
        let payload: [UInt8]
        do { payload = try event.serializedBytes() } catch {
            throw TensorBoardError(path: path, reason: "cannot encode an event (\(error))")
        }
        func appendLE<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { pending += $0 } }
        let length = UInt64(payload.count)
        appendLE(length)
        appendLE(withUnsafeBytes(of: length.littleEndian) { CRC32C.mask(CRC32C.checksum($0)) })
        pending += payload
        appendLE(CRC32C.mask(CRC32C.checksum(payload)))
        if pending.count >= Self.bufferLimit { try writePending() }
    }

    private func writePending() throws {
        guard fd >= 0 else { throw TensorBoardError(path: path, reason: "the writer is closed") }
        var done = 0
        // What did reach the file leaves the buffer even on failure, so a retry does not repeat it.
        defer { pending.removeFirst(done) }
        try pending.withUnsafeBytes { raw in
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { failed = true; throw Self.failure(path, "cannot write") }
                done += n
            }
        }
    }

    private static func failure(_ path: String, _ what: String) -> TensorBoardError {
        TensorBoardError(path: path, reason: "\(what) (\(String(cString: strerror(errno))))")
    }
}

/// A `tensorflow.HistogramProto` over TensorFlow's default bucket limits: ±1e-12 growing by ×1.1
/// while below 1e20, ±DBL_MAX and 0. Bucket i counts the values in (limit[i-1], limit[i]]; only
/// the buckets from the first to the last non-empty one are kept, as TensorBoard then spans them
/// from min to max. NaNs are left out (of num too); ±infinity falls in the outermost buckets.
public struct TensorBoardHistogram: Equatable, Sendable {
    public var min = 0.0, max = 0.0, num = 0.0, sum = 0.0, sumSquares = 0.0
    public var bucketLimits: [Double] = [], buckets: [Double] = []

    public static let defaultLimits: [Double] = {
        var positive: [Double] = []
        var v = 1e-12
        while v < 1e20 { positive.append(v); v *= 1.1 }
        positive.append(.greatestFiniteMagnitude)
        return positive.reversed().map { -$0 } + [0] + positive
    }()

    /// The default limits and +infinity, so that every non-NaN float has a first limit >= it.
    private static let searchLimits = defaultLimits + [.infinity]

    /// For each top 16 bits of a float (sign, exponent, 7 mantissa bits): the first limit >= the
    /// lowest float with those bits. The floats sharing them span a factor of at most 1 + 2⁻⁷,
    /// under the limits' 1.1, so a value's bucket is that one or the next: the float's own binary
    /// logarithm finds it, with no search.
    private static let firstBucket: [UInt16] = (0..<(1 << 16)).map { (key: UInt32) in
        let bits = key << 16
        var lowest = Float(bitPattern: key & 0x8000 == 0 ? bits : bits | 0xFFFF)
        if lowest.isNaN { lowest = Float(bitPattern: bits) }   // ±inf shares its bits with NaNs
        if lowest.isNaN { return 0 }   // NaNs only: never looked up
        let x = Double(lowest)
        var lo = 0, hi = searchLimits.count - 1
        while lo < hi { let mid = (lo + hi) / 2; if searchLimits[mid] >= x { hi = mid } else { lo = mid + 1 } }
        return UInt16(lo)
    }

    public init() {}

    public init(_ values: UnsafeBufferPointer<Float>) {
        var counts = [Int](repeating: 0, count: Self.searchLimits.count)
        var low = Double.infinity, high = -Double.infinity, sum = 0.0, squares = 0.0, n = 0
        Self.firstBucket.withUnsafeBufferPointer { first in
            Self.searchLimits.withUnsafeBufferPointer { limits in
                counts.withUnsafeMutableBufferPointer { counts in
                    for v in values where !v.isNaN {
                        let x = Double(v)
                        var i = Int(first[Int(v.bitPattern >> 16)])
                        while x > limits[i] { i += 1 }
                        counts[i] += 1
                        low = Swift.min(low, x)
                        high = Swift.max(high, x)
                        sum += x
                        squares += x * x
                        n += 1
                    }
                }
            }
        }
        // +infinity was counted past the last limit, DBL_MAX, whose bucket it belongs to.
        counts[counts.count - 2] += counts.removeLast()
        guard let first = counts.firstIndex(where: { $0 > 0 }), let last = counts.lastIndex(where: { $0 > 0 }) else {
            // No values: TensorFlow's encoding of an empty histogram, one empty bucket.
            bucketLimits = [.greatestFiniteMagnitude]
            buckets = [0]
            return
        }
        (min, max, num, self.sum, sumSquares) = (low, high, Double(n), sum, squares)
        bucketLimits = Array(Self.defaultLimits[first...last])
        buckets = counts[first...last].map(Double.init)
    }

    init(_ p: Tensorflow_HistogramProto) {
        (min, max, num, sum, sumSquares) = (p.min, p.max, p.num, p.sum, p.sumSquares)
        (bucketLimits, buckets) = (p.bucketLimit, p.bucket)
    }

    var proto: Tensorflow_HistogramProto {
        var p = Tensorflow_HistogramProto()
        (p.min, p.max, p.num, p.sum, p.sumSquares) = (min, max, num, sum, sumSquares)
        (p.bucketLimit, p.bucket) = (bucketLimits, buckets)
        return p
    }
}

/// One event of a file TensorBoardWriter wrote, as `read(path:)` returns it (for tests and tools).
public struct TensorBoardEvent: Equatable, Sendable {
    public enum Content: Equatable, Sendable {
        case fileVersion(String)
        case scalar(tag: String, value: Float)
        case histogram(tag: String, TensorBoardHistogram)
        case sessionStart
    }

    public let wallTime: Double
    public let step: Int
    public let content: Content

    /// Reads every record strictly: a short record, a wrong CRC of a length or of a payload, an
    /// undecodable Event or a kind of event the writer does not write is an error naming the file,
    /// the record and its byte offset.
    public static func read(path: String) throws -> [TensorBoardEvent] {
        var bytes: [UInt8] = []
        let size = try FileIO.read(path, into: &bytes)
        var events: [TensorBoardEvent] = []
        var offset = 0
        func fail(_ reason: String) -> TensorBoardError {
            TensorBoardError(path: path, reason: "record \(events.count) at byte \(offset): \(reason)")
        }
        func uint<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
        }
        func crc(_ range: Range<Int>) -> UInt32 {
            bytes.withUnsafeBytes { CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range]))) }
        }
        while offset < size {
            guard size - offset >= 12 else { throw fail("truncated: \(size - offset) bytes, less than a length and its CRC") }
            guard crc(offset..<offset + 8) == uint(offset + 8, UInt32.self) else { throw fail("the length's CRC does not match") }
            let length = uint(offset, UInt64.self)
            let room = size - offset - 16   // after the length, its CRC and the data's CRC
            guard room >= 0, length <= UInt64(room) else {
                throw fail("truncated: the length says \(length) bytes but the file has \(Swift.max(room, 0)) left for them")
            }
            let data = offset + 12..<offset + 12 + Int(length)
            guard crc(data) == uint(data.upperBound, UInt32.self) else { throw fail("the data's CRC does not match") }
            let event: Tensorflow_Event
            do { event = try Tensorflow_Event(serializedBytes: Array(bytes[data])) } catch {
                throw fail("not a tensorflow.Event (\(error))")
            }
            let content: Content
            switch event.what {
            case .fileVersion(let v): content = .fileVersion(v)
            case .sessionLog(let log) where log.status == .start: content = .sessionStart
            case .summary(let s) where s.value.count == 1:
                switch s.value[0].value {
                case .simpleValue(let v): content = .scalar(tag: s.value[0].tag, value: v)
                case .histo(let h): content = .histogram(tag: s.value[0].tag, TensorBoardHistogram(h))
                case nil: throw fail("a summary value without a value")
                }
            default: throw fail("an event of a kind the writer does not write")
            }
            events.append(TensorBoardEvent(wallTime: event.wallTime, step: Int(event.step), content: content))
            offset = data.upperBound + 4
        }
        return events
    }
}
