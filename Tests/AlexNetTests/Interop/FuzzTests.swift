import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// The fuzz test: mutated JPEGs, PNGs, safetensors files and pickles go through the decoders
/// and the readers; none may crash or hang, and every failure must be the reader's own
/// thrown error.
///
/// Case k of a format is a pure function of (format, k): its generator is
/// `RandomGenerator(seed: 0xF022, stream: format, k)`, so a failure names a case that any run
/// reproduces. Each format runs until its time budget (18 s in CI, so the three stay within a
/// minute; 5 s elsewhere; or ALEXNET_FUZZ_SECONDS) or `maxCases`, whichever comes first. A case running past 30 s is a hang:
/// the input is written to a file and the test stops. With ALEXNET_FUZZ_TRACE=FILE each input is
/// written there before it runs, so after a crash FILE holds the input that crashed.
final class FuzzTests: XCTestCase {
    static let maxCases = 100_000
    static let hangSeconds = 30.0

    static let budget: Double = {
        let env = ProcessInfo.processInfo.environment
        if let s = env["ALEXNET_FUZZ_SECONDS"].flatMap(Double.init) { return s }
        return env["CI"] != nil ? 18 : 5
    }()

    // MARK: - Generic byte mutations

    static func pick<T>(_ options: [T], _ rng: inout RandomGenerator) -> T { options[Int(rng.next() % UInt64(options.count))] }
    static func below(_ n: Int, _ rng: inout RandomGenerator) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    /// Bit flips, byte runs, truncation, insertion, deletion, duplication, splicing: what any
    /// file format meets. Returns a short description of what was done.
    static func mutateBytes(_ b: inout [UInt8], others: [[UInt8]], _ rng: inout RandomGenerator) -> String {
        switch below(7, &rng) {
        case 0:
            let flips = 1 + below(16, &rng)
            for _ in 0..<flips where !b.isEmpty { b[below(b.count, &rng)] ^= UInt8(1) << UInt8(below(8, &rng)) }
            return "flip \(flips) bits"
        case 1:
            guard !b.isEmpty else { return "nothing" }
            let at = below(b.count, &rng), n = min(b.count - at, 1 + below(64, &rng))
            let fill = pick([0x00, 0xFF, -1], &rng)
            for i in at..<(at + n) { b[i] = fill < 0 ? UInt8(truncatingIfNeeded: rng.next()) : UInt8(fill) }
            return "run of \(n) at \(at)"
        case 2:
            let n = below(b.count + 1, &rng)
            b.removeSubrange(n...)
            return "truncate to \(n)"
        case 3:
            let at = below(b.count + 1, &rng), n = 1 + below(32, &rng)
            b.insert(contentsOf: (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            return "insert \(n) at \(at)"
        case 4:
            guard !b.isEmpty else { return "nothing" }
            let at = below(b.count, &rng), n = min(b.count - at, 1 + below(256, &rng))
            b.removeSubrange(at..<(at + n))
            return "delete \(n) at \(at)"
        case 5:
            guard !b.isEmpty else { return "nothing" }
            let from = below(b.count, &rng), n = min(b.count - from, 1 + below(512, &rng)), to = below(b.count + 1, &rng)
            b.insert(contentsOf: Array(b[from..<(from + n)]), at: to)
            return "duplicate \(n) from \(from) to \(to)"
        default:
            let other = pick(others, &rng)
            let cut = below(b.count + 1, &rng), from = below(other.count + 1, &rng)
            b = Array(b[..<cut]) + Array(other[from...])
            return "splice at \(cut) with another seed from \(from)"
        }
    }

    static let interestingDimensions = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 255, 256, 4095, 8191, 13377, 16384, 26755, 32767, 40000, 65500, 65535]

    // MARK: - JPEG

    /// Marker segments before the scan: (offset of the 0xFF, marker, length field).
    static func jpegSegments(_ b: [UInt8]) -> [(at: Int, marker: UInt8, length: Int)] {
        var out: [(Int, UInt8, Int)] = []
        var i = 2
        while i + 4 <= b.count, b[i] == 0xFF {
            let marker = b[i + 1], length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            out.append((i, marker, length))
            if marker == 0xDA { break }
            i += 2 + length
        }
        return out
    }

    static func mutateJPEG(_ b: inout [UInt8], others: [[UInt8]], _ rng: inout RandomGenerator) -> String {
        let segments = jpegSegments(b)
        let sof = segments.first { [0xC0, 0xC1, 0xC2].contains($0.marker) }
        switch below(6, &rng) {
        case 0 where sof != nil && sof!.at + 9 <= b.count:
            let s = sof!.at
            let w = rng.uniform() < 0.8 ? pick(interestingDimensions, &rng) : below(65536, &rng)
            let h = rng.uniform() < 0.8 ? pick(interestingDimensions, &rng) : below(65536, &rng)
            b[s + 5] = UInt8(h >> 8); b[s + 6] = UInt8(h & 0xFF); b[s + 7] = UInt8(w >> 8); b[s + 8] = UInt8(w & 0xFF)
            return "SOF claims \(w)×\(h)"
        case 1 where sof != nil && sof!.at + 10 <= b.count:
            let s = sof!.at
            // Precision, component count, or one component's sampling factors / table index.
            let field = pick([4, 9, 11, 12, 14, 15], &rng)
            guard s + field < b.count else { return "nothing" }
            let value = UInt8(truncatingIfNeeded: pick([0, 1, 2, 3, 4, 5, 0x11, 0x22, 0x44, 0x41, 0x14, 0xFF, Int(rng.next() & 0xFF)], &rng))
            b[s + field] = value
            return "SOF byte \(field) = \(value)"
        case 2 where !segments.isEmpty:
            let seg = pick(segments, &rng)
            let length = pick([0, 1, 2, 3, 0xFFFF, seg.length + 1, max(0, seg.length - 1), below(65536, &rng)], &rng)
            if seg.at + 4 <= b.count { b[seg.at + 2] = UInt8(truncatingIfNeeded: length >> 8); b[seg.at + 3] = UInt8(length & 0xFF) }
            return "marker \(String(format: "%02X", seg.marker)) length \(length)"
        case 3 where !segments.isEmpty:
            // Scramble a table (DQT, DHT) or any segment's body.
            let seg = pick(segments, &rng)
            let end = min(b.count, seg.at + 2 + seg.length)
            for i in (seg.at + 4)..<max(seg.at + 4, end) where rng.uniform() < 0.1 { b[i] = UInt8(truncatingIfNeeded: rng.next()) }
            return "scramble segment \(String(format: "%02X", seg.marker))"
        case 4 where segments.count > 1:
            let seg = pick(Array(segments.dropFirst()), &rng)
            let end = min(b.count, seg.at + 2 + seg.length)
            b.removeSubrange(seg.at..<end)
            return "drop segment \(String(format: "%02X", seg.marker))"
        default:
            return mutateBytes(&b, others: others, &rng)
        }
    }

    // MARK: - PNG

    static func pngChunks(_ b: [UInt8]) -> [(at: Int, length: Int, type: String)] {
        var out: [(Int, Int, String)] = []
        var i = 8
        while i + 12 <= b.count {
            let length = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            out.append((i, length, String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)))
            guard length <= b.count - i - 12 else { break }
            i += 12 + length
        }
        return out
    }

    /// Recomputes every whole chunk's CRC, so that libpng looks past it at the edited fields.
    static func fixCRCs(_ b: inout [UInt8]) {
        for c in pngChunks(b) where c.at + 12 + c.length <= b.count {
            let crc = HostileImages.crc32(b[(c.at + 4)..<(c.at + 8 + c.length)])
            b.replaceSubrange((c.at + 8 + c.length)..<(c.at + 12 + c.length), with: HostileImages.be32(crc))
        }
    }

    static func mutatePNG(_ b: inout [UInt8], others: [[UInt8]], _ rng: inout RandomGenerator) -> String {
        let chunks = pngChunks(b)
        var what: String
        switch below(6, &rng) {
        case 0 where b.count >= 33:
            let big = [0, 1, 2, 3, 7, 8, 255, 256, 26755, 40000, 1_000_001, Int(Int32.max), 1 << 31, Int(UInt32.max)]
            let w = rng.uniform() < 0.8 ? pick(big, &rng) : Int(UInt32(truncatingIfNeeded: rng.next()))
            let h = rng.uniform() < 0.8 ? pick(big, &rng) : Int(UInt32(truncatingIfNeeded: rng.next()))
            b.replaceSubrange(16..<24, with: HostileImages.be32(UInt32(w)) + HostileImages.be32(UInt32(h)))
            what = "IHDR claims \(w)×\(h)"
        case 1 where b.count >= 33:
            // Bit depth, colour type, compression, filter, interlace.
            let field = 24 + below(5, &rng)
            let value = UInt8(pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255], &rng))
            b[field] = value
            what = "IHDR byte \(field) = \(value)"
        case 2 where !chunks.isEmpty:
            let c = pick(chunks, &rng)
            let length = pick([0, 1, c.length + 1, max(0, c.length - 1), 0x7FFF_FFFF, Int(UInt32.max), below(1 << 20, &rng)], &rng)
            b.replaceSubrange(c.at..<(c.at + 4), with: HostileImages.be32(UInt32(truncatingIfNeeded: length)))
            what = "chunk \(c.type) length \(length)"
        case 3 where chunks.count > 1:
            // Drop, duplicate or move a chunk (IHDR twice, PLTE missing, IEND first...).
            let c = pick(Array(chunks.dropFirst()), &rng)
            let end = min(b.count, c.at + 12 + c.length)
            let bytes = Array(b[c.at..<end])
            let op = below(3, &rng)
            if op != 1 { b.removeSubrange(c.at..<end) }
            if op != 0 { b.insert(contentsOf: bytes, at: min(b.count, pick(chunks, &rng).at)) }
            what = ["drop", "duplicate", "move"][op] + " \(c.type)"
        case 4:
            let type = pick(["tRNS", "PLTE", "IHDR", "IDAT", "sBIT", "gAMA", "iCCP", "zTXt"], &rng)
            let data = (0..<below(800, &rng)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let at = chunks.count > 1 ? pick(Array(chunks.dropFirst()), &rng).at : min(b.count, 33)
            b.insert(contentsOf: HostileImages.chunk(type, data), at: at)
            what = "insert \(type) of \(data.count)"
        default:
            what = mutateBytes(&b, others: others, &rng)
        }
        if rng.uniform() < 0.7 {
            fixCRCs(&b)
            what += ", CRCs fixed"
        }
        return what
    }

    // MARK: - Driver

    /// Writes a case to `path` with plain POSIX calls: Foundation's `Data.write` flushes to disk,
    /// which made a safetensors case cost 15 ms instead of a fraction of one.
    static func writeCase(_ bytes: [UInt8], to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "cannot create \(path)" }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? nil : "cannot write \(path)"
    }

    /// Stops the test when one case runs past `hangSeconds`, writing its input to a file.
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var started: Date?
        private var label = ""
        private var input: [UInt8] = []
        private var done = false

        init(hangSeconds: Double) {
            Thread {
                while true {
                    Thread.sleep(forTimeInterval: 0.5)
                    self.lock.lock()
                    if self.done { self.lock.unlock(); return }
                    if let s = self.started, Date().timeIntervalSince(s) > hangSeconds {
                        let file = FileManager.default.temporaryDirectory.appendingPathComponent("alexnet-fuzz-hang-\(getpid())")
                        try? Data(self.input).write(to: file)
                        fatalError("fuzz case \(self.label) has run for more than \(hangSeconds) s (a hang); its input is in \(file.path)")
                    }
                    self.lock.unlock()
                }
            }.start()
        }

        func begin(_ label: String, _ input: [UInt8]) {
            lock.lock(); (started, self.label, self.input) = (Date(), label, input); lock.unlock()
        }
        func end() { lock.lock(); started = nil; lock.unlock() }
        func stop() { lock.lock(); done = true; lock.unlock() }
    }

    /// Runs cases 0, 1, … of `format` until the budget or `maxCases`; `run` returns nil when the
    /// outcome is allowed, else what went wrong. Returns the number of cases run.
    @discardableResult
    func fuzz(_ format: String, stream: UInt64, seeds: [[UInt8]], mutate: (inout [UInt8], [[UInt8]], inout RandomGenerator) -> String,
              run: ([UInt8]) -> String?) -> Int {
        precondition(!seeds.isEmpty)
        let watchdog = Watchdog(hangSeconds: Self.hangSeconds)
        defer { watchdog.stop() }
        let trace = ProcessInfo.processInfo.environment["ALEXNET_FUZZ_TRACE"]
        let start = Date()
        var k = 0, failures = 0
        while k < Self.maxCases && Date().timeIntervalSince(start) < Self.budget {
            var rng = RandomGenerator(seed: 0xF022, stream: stream, UInt64(k))
            let seed = Self.below(seeds.count, &rng)
            var bytes = seeds[seed]
            var steps: [String] = []
            for _ in 0..<(1 + Self.below(3, &rng)) { steps.append(mutate(&bytes, seeds, &rng)) }
            let label = "\(format) case \(k) (seed \(seed): \(steps.joined(separator: "; ")))"
            if let trace { _ = Self.writeCase(bytes, to: trace) }
            watchdog.begin(label, bytes)
            if let problem = run(bytes) {
                failures += 1
                if failures <= 10 { XCTFail("\(label): \(problem)") }
            }
            watchdog.end()
            k += 1
        }
        XCTAssertGreaterThan(k, 0)
        print("fuzz \(format): \(k) cases in \(String(format: "%.1f", Date().timeIntervalSince(start))) s, \(failures) failing")
        return k
    }

    /// A codec whose pixel cap keeps every case small: the fixtures are at most 0.1 M pixels,
    /// and claims above the cap (refused from the header) are exercised all the same.
    func imageRunner(_ folder: URL) -> ([UInt8]) -> String? {
        let codec = ImageCodec(limits: ImageLimits(warnPixels: 1_000_000, maxPixels: 4_000_000))
        let file = folder.appendingPathComponent("case").path
        var k = 0
        return { bytes in
            k += 1
            func check(_ what: String, _ body: () throws -> RGBImage) -> String? {
                do {
                    let image = try body()
                    if image.width <= 0 || image.height <= 0 || image.pixels.count != image.width * image.height * 3 {
                        return "\(what): an image of \(image.width)×\(image.height) with \(image.pixels.count) bytes"
                    }
                } catch is ImageError {
                } catch {
                    return "\(what): threw \(type(of: error)), not an ImageError: \(error)"
                }
                return nil
            }
            let problems: [String?] = bytes.withUnsafeBytes { raw in
                [check("decode") { try codec.decode(raw, path: "case").image },
                 check("decode at 1/8") { try codec.decode(raw, path: "case", minimumSize: 4, oversampling: 1).image },
                 { () -> String? in _ = codec.decodePlanes(raw, minimumSize: nil); _ = codec.decodePlanes(raw, minimumSize: 8); return nil }()]
            }
            _ = codec.takeWarnings()
            // One case in eight also goes through the file path (signature and size checks first).
            if k % 8 == 0 {
                if let failure = Self.writeCase(bytes, to: file) { return failure }
                if let p = check("decode(file:)", { try codec.decode(file: file) }) { return p }
                do { _ = try codec.decode(file: file, minimumSize: 16, preferPlanes: true) } catch is ImageError {} catch {
                    return "decode(file:preferPlanes:) threw \(type(of: error))"
                }
            }
            return problems.compactMap { $0 }.first
        }
    }

    func imageSeeds(_ ext: String) throws -> [[UInt8]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: HostileImages.fixtures.path).filter { $0.hasSuffix(".\(ext)") }.sorted()
        XCTAssertFalse(names.isEmpty)
        return try names.map { [UInt8](try Data(contentsOf: HostileImages.fixtures.appendingPathComponent($0))) }
    }

    func testFuzzJPEGDecoding() throws {
        var seeds = try imageSeeds("jpg")
        // Gray, progressive and CMYK JPEGs (the sample photos) and a small 4:1:1 one widen the decoder paths.
        for name in ["gray.jpg", "progressive.jpg", "cmyk.jpg"] {
            seeds.append([UInt8](try Data(contentsOf: Paths.photos.appendingPathComponent(name))))
        }
        try ImageCodec().encodeJPEG(syntheticImage(width: 37, height: 29, seed: 3), quality: 80, subsampling: .s411) { seeds.append([UInt8]($0)) }
        fuzz("JPEG", stream: 1, seeds: seeds, mutate: Self.mutateJPEG, run: imageRunner(try Paths.temporaryDirectory()))
    }

    func testFuzzPNGDecoding() throws {
        var seeds = try imageSeeds("png").filter { $0.count < 200_000 }
        seeds.append([UInt8](HostileImages.png(width: 3, height: 2, bitDepth: 8, colorType: 3, rows: [[0, 1, 2], [2, 1, 0]],
                                               extra: [("PLTE", [1, 2, 3, 4, 5, 6, 7, 8, 9]), ("tRNS", [0])])))
        seeds.append([UInt8](HostileImages.png(width: 2, height: 2, bitDepth: 16, colorType: 4, rows: [[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]])))
        fuzz("PNG", stream: 2, seeds: seeds, mutate: Self.mutatePNG, run: imageRunner(try Paths.temporaryDirectory()))
    }

    // MARK: - safetensors

    /// Raw JSON values that JSONSerialization cannot write (beyond Int64, huge exponents): put in
    /// as a placeholder string, then substituted in the text.
    static let rawPlaceholder = "@@RAW@@"

    static func safetensorsHeader(_ b: [UInt8]) -> (json: [String: Any], payload: [UInt8])? {
        guard b.count >= 8 else { return nil }
        let n = b[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(b.count - 8),
              let json = try? JSONSerialization.jsonObject(with: Data(b[8..<(8 + Int(n))])) as? [String: Any] else { return nil }
        return (json, Array(b[(8 + Int(n))...]))
    }

    static func safetensorsFile(header: Any, payload: [UInt8], raw: String?, lengthDelta: Int = 0) -> [UInt8] {
        var text = (try? JSONSerialization.data(withJSONObject: header)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        if let raw { text = text.replacingOccurrences(of: "\"\(rawPlaceholder)\"", with: raw) }
        let json = [UInt8](text.utf8)
        let n = UInt64(max(0, json.count + lengthDelta))
        return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + json + payload
    }

    static func mutateSafetensors(_ b: inout [UInt8], others: [[UInt8]], _ rng: inout RandomGenerator) -> String {
        guard below(4, &rng) != 0, let parsed = safetensorsHeader(b) else {
            if b.count >= 8 && below(3, &rng) == 0 {
                let n = pick([0, 1, 2, UInt64(b.count), UInt64(b.count - 7), UInt64(Int64.max), UInt64.max, 1 << 32], &rng)
                for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
                return "header length \(n)"
            }
            return mutateBytes(&b, others: others, &rng)
        }
        let payload = parsed.payload
        var header = parsed.json
        var raw: String? = nil
        let names = header.keys.filter { $0 != "__metadata__" }.sorted()
        var what = ""
        let huge = ["18446744073709551616", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e400", "1e30", "-1e30",
                    "4294967296", "1.5", "-0.0", "null", "\"3\"", "true", "[]", "{}"]
        if names.isEmpty || below(8, &rng) == 0 {
            switch below(4, &rng) {
            case 0: header["__metadata__"] = pick([["k": 1] as [String: Any], ["k": ["x"]], [:]], &rng); what = "metadata not strings"
            case 1: header[pick(["x", "", "__metadata__", "\u{0}"], &rng)] = pick([1, "F32", [1, 2], NSNull()] as [Any], &rng); what = "odd entry"
            case 2: header = [:]; what = "empty header"
            default:
                var entry: [String: Any] = ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]]
                entry["shape"] = pick([[2], [0], [], [Int.max], [1 << 32, 1 << 32]], &rng)
                header["extra\(below(3, &rng))"] = entry
                what = "extra tensor"
            }
        } else {
            let name = pick(names, &rng)
            guard var entry = header[name] as? [String: Any] else { return mutateBytes(&b, others: others, &rng) }
            switch below(7, &rng) {
            case 0, 1:
                let shapes: [[Any]] = [[], [0], [-1], [1 << 32, 1 << 32], [3, 6_148_914_691_236_517_206], [Int.max, 2], [1 << 62, 4], [1 << 62, 2],
                                       [Int.max], [2, -3], [(1 << 62) + 1], [(1 << 61) + 1], [1 << 61, 2, 3], Array(repeating: 1, count: 100), [[2]], ["2"], [2.5], [rawPlaceholder],
                                       Array(repeating: 2, count: 64), [1 << 31, 1 << 31, 1 << 2]]
                entry["shape"] = pick(shapes, &rng)
                if (entry["shape"] as? [Any])?.contains(where: { ($0 as? String) == rawPlaceholder }) == true { raw = pick(huge, &rng) }
                what = "shape of \(name)"
            case 2, 3:
                let offsets = (entry["data_offsets"] as? [Int]) ?? [0, 0]
                let (b0, e0) = (offsets.first ?? 0, offsets.last ?? 0)
                // Wrapping arithmetic: an earlier step of the same case may have left Int.max here.
                let choices: [[Any]] = [[e0, b0], [b0, e0 &+ 1], [b0 &+ 1, e0], [-1, e0], [0, Int.max], [Int.max, Int.max], [Int.min, 0],
                                        [b0], [b0, e0, e0], [], [rawPlaceholder, e0], [b0, rawPlaceholder], ["0", e0], [NSNull(), e0],
                                        [b0 &+ payload.count, e0 &+ payload.count], [b0, payload.count + 1]]
                entry["data_offsets"] = pick(choices, &rng)
                if (entry["data_offsets"] as? [Any])?.contains(where: { ($0 as? String) == rawPlaceholder }) == true { raw = pick(huge, &rng) }
                what = "data_offsets of \(name)"
            case 4:
                entry["dtype"] = pick(["F32", "F64", "I64", "I32", "F16", "BF16", "U8", "BOOL", "I8", "I16", "f32", "F128", "", 4, NSNull()] as [Any], &rng)
                what = "dtype of \(name)"
            case 5:
                entry.removeValue(forKey: pick(["dtype", "shape", "data_offsets"], &rng))
                what = "key removed from \(name)"
            default:
                header[name] = pick([NSNull(), "F32", [1, 2, 3], 7] as [Any], &rng)
                b = safetensorsFile(header: header, payload: payload, raw: nil)
                return "entry \(name) not an object"
            }
            header[name] = entry
        }
        let delta = below(6, &rng) == 0 ? pick([-1, 1, -8, 1000], &rng) : 0
        b = safetensorsFile(header: header, payload: payload, raw: raw, lengthDelta: delta)
        return what + (delta != 0 ? ", header length off by \(delta)" : "")
    }

    func testFuzzSafetensorsReading() throws {
        var one = SafetensorsWriter(metadata: ["format": "pt", "note": "fuzz"])
        one.add("weight", Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]))
        one.add("counts", integers: [1, -2, 3, 40], shape: [4])
        one.add("scale", doubles: [0.5, 0.25, -1], shape: [3])
        one.add("scalar", Tensor(shape: [], data: [7]))
        var two = SafetensorsWriter()
        two.add("empty", Tensor(shape: [0, 4], data: []))
        two.add("x", Tensor(shape: [1, 1, 2], data: [1, 2]))
        let seeds = [[UInt8](try one.serialized()), [UInt8](try two.serialized())]
        let file = try Paths.temporaryDirectory().appendingPathComponent("case.safetensors").path
        fuzz("safetensors", stream: 3, seeds: seeds, mutate: Self.mutateSafetensors) { bytes in
            if let failure = Self.writeCase(bytes, to: file) { return failure }
            let reader: SafetensorsFile
            do { reader = try SafetensorsFile(path: file) } catch is SafetensorsError { return nil } catch {
                return "threw \(type(of: error)), not a SafetensorsError: \(error)"
            }
            for name in reader.names {
                for read in [{ _ = try reader.tensor(name) }, { _ = try reader.integers(name) }, { _ = try reader.doubles(name) }] {
                    do { try read() } catch is SafetensorsError {} catch { return "'\(name)': threw \(type(of: error)): \(error)" }
                }
                guard let info = reader.tensors[name] else { return "'\(name)' listed but not in tensors" }
                if info.range.count > bytes.count { return "'\(name)': range \(info.range) beyond a file of \(bytes.count) bytes" }
            }
            return nil
        }
    }

    // MARK: - pickle (PyTorch files)

    /// Opcodes that open and close one level of nesting around a value: the prefix goes before
    /// it, the suffix after it (a MARK and TUPLE, LIST, or DICT with a key; or TUPLE1 alone).
    static let nestingLevels: [(kind: String, prefix: [UInt8], suffix: [UInt8])] = [
        ("tuple", [], [0x85]), ("tuple", [0x28], [0x74]), ("list", [0x28], [0x6C]),
        ("dict", [0x28, 0x8C, 0x01, 0x6B], [0x64]),
    ]

    /// The value of pickle `b` (PROTO, …, STOP) wrapped in `levels` of nesting, each of a kind
    /// drawn from `kinds` (outermost first).
    static func nested(_ b: [UInt8], levels: Int, kinds: [Int]) -> [UInt8] {
        var prefix: [UInt8] = [], suffix: [UInt8] = []
        for i in 0..<levels {
            let level = nestingLevels[kinds[i % kinds.count]]
            prefix += level.prefix
            suffix = level.suffix + suffix
        }
        return Array(b[..<2]) + prefix + Array(b[2..<(b.count - 1)]) + suffix + [0x2E]
    }

    /// A list or dict chain built bottom-up without MARKs: `n` empty containers, then `n − 1`
    /// APPENDs (or key and SETITEM pairs), each putting the top one into the one below it.
    static func chain(_ n: Int, dict: Bool) -> [UInt8] {
        dict ? [0x80, 0x02, 0x7D] + Array(repeating: [0x8C, 0x01, 0x6B, 0x7D], count: n - 1).joined() + Array(repeating: 0x73, count: n - 1) + [0x2E]
             : [0x80, 0x02] + Array(repeating: 0x5D, count: n) + Array(repeating: 0x61, count: n - 1) + [0x2E]
    }

    static func mutatePickle(_ b: inout [UInt8], others: [[UInt8]], _ rng: inout RandomGenerator) -> String {
        switch below(4, &rng) {
        case 0 where b.count >= 3 && b[0] == 0x80 && b.last == 0x2E:
            let levels = pick([10, 999, 1000, 1001, 5000, 50_000], &rng)
            let kinds = (0..<(1 + below(3, &rng))).map { _ in below(nestingLevels.count, &rng) }
            b = nested(b, levels: levels, kinds: kinds)
            return "nested \(levels) deep in \(kinds.map { nestingLevels[$0].kind })"
        case 1:
            let n = pick([999, 1000, 1001, 50_000], &rng), dict = below(2, &rng) == 0
            b = chain(n, dict: dict)
            return "a chain of \(n) \(dict ? "dicts" : "lists")"
        default:
            return mutateBytes(&b, others: others, &rng)
        }
    }

    /// One short line: what a message quoting a hostile value must stay.
    static func shortLine(_ message: String) -> String? {
        message.contains("\n") || message.count > 300 ? "the message is not one short line (\(message.count) characters): \(message.prefix(300))" : nil
    }

    func pickleSeeds() -> [[UInt8]] {
        var stateDict = Pickler()
        stateDict.write(.dict([(.string("conv1.weight"), .tensor(storageKey: "0", count: 6, shape: [2, 3])),
                               (.string("conv1.bias"), .tensor(storageKey: "1", count: 2, shape: [2]))], ordered: true))
        var checkpoint = Pickler()
        checkpoint.write(.dict([
            (.string("epoch"), .int(3)),
            (.string("model"), .dict([(.string("block1.0.weight"), .tensor(storageKey: "0", count: 4, shape: [1, 1, 2, 2]))], ordered: true)),
            (.string("optimizer"), .dict([
                (.string("state"), .dict([(.int(0), .dict([(.string("momentum_buffer"), .tensor(storageKey: "1", count: 4, shape: [1, 1, 2, 2]))], ordered: false))], ordered: false)),
                (.string("param_groups"), .list([.dict([(.string("lr"), .float(0.01)), (.string("params"), .list([.int(0)]))], ordered: false)])),
            ], ordered: false)),
            (.string("scheduler"), .dict([(.string("best"), .float(.infinity)), (.string("_last_lr"), .list([.float(0.01)]))], ordered: false)),
            (.string("names"), .tuple([.string("a"), .none, .bool(true), .tuple([.int(-1), .int(1 << 40)])])),
        ], ordered: false))
        return [stateDict.finish(), checkpoint.finish(), Self.chain(3, dict: false), Self.chain(3, dict: true)]
    }

    /// Mutated pickles, and pickles nested 1000 deep and more (tuples, lists, dicts, mixed, with
    /// and without MARKs) through the reader, and one case in eight as a .pt through the weights
    /// loader: none may crash (a value nested 50 000 deep used to overflow the stack), and every
    /// failure is the reader's own error, on one short line.
    func testFuzzPickleReading() throws {
        let dir = try Paths.temporaryDirectory()
        var k = 0
        fuzz("pickle", stream: 4, seeds: pickleSeeds(), mutate: Self.mutatePickle) { bytes in
            k += 1
            do { _ = try Unpickler.load(bytes, path: "case.pkl") } catch let e as PickleError {
                if let problem = Self.shortLine("\(e)") { return problem }
            } catch {
                return "threw \(type(of: error)), not a PickleError: \(error)"
            }
            guard k % 8 == 0 else { return nil }
            do {
                var zip = ZipWriter()
                try zip.add("case/data.pkl", Data(bytes))
                try zip.add("case/data/0", Data(count: 24))
                try zip.add("case/data/1", Data(count: 16))
                let path = dir.appendingPathComponent("case.pt").path
                try zip.finish().write(to: URL(fileURLWithPath: path))
                _ = try LoadedWeights(path: path)
            } catch {
                return Self.shortLine("\(error)")
            }
            return nil
        }
    }

    /// Each kind of deep nesting, 50 000 levels in about 50 KB: refused with one short line that
    /// names the file and the bound; 1000 levels (the bound) are read and torn down.
    func testDeepNestingIsRefusedOnOneShortLine() throws {
        let empty: [UInt8] = [0x80, 0x02, 0x29, 0x2E]   // ()
        var cases: [(String, [UInt8])] = Self.nestingLevels.indices.map { i in
            ("\(Self.nestingLevels[i].kind) \(i)", Self.nested(empty, levels: 50_000, kinds: [i]))
        }
        cases.append(("mixed", Self.nested(empty, levels: 50_000, kinds: [0, 2, 3, 1])))
        cases.append(("list chain", Self.chain(50_000, dict: false)))
        cases.append(("dict chain", Self.chain(50_000, dict: true)))
        for (what, bytes) in cases {
            XCTAssertLessThan(bytes.count, 300_000, what)
            XCTAssertThrowsError(try Unpickler.load(bytes, path: "deep.pkl"), what) { error in
                XCTAssertTrue("\(error)".hasPrefix("deep.pkl: pickle byte "), "\(what): \(error)")
                XCTAssertTrue("\(error)".contains("nested more than 1000 deep"), "\(what): \(error)")
                XCTAssertNil(Self.shortLine("\(error)"), what)
            }
        }
        // The empty tuple is one level: 999 more make the bound, 1000 more pass it.
        for kinds in [[0], [1], [2], [3], [3, 2, 1, 0]] {
            let limit = try Unpickler.load(Self.nested(empty, levels: 999, kinds: kinds), path: "ok.pkl")
            XCTAssertLessThanOrEqual(limit.description.count, 30, "\(kinds): \(limit)")
            XCTAssertThrowsError(try Unpickler.load(Self.nested(empty, levels: 1000, kinds: kinds), path: "deep.pkl"), "\(kinds)")
        }
        XCTAssertNoThrow(try Unpickler.load(Self.chain(1000, dict: false), path: "ok.pkl"))
        XCTAssertThrowsError(try Unpickler.load(Self.chain(1001, dict: true), path: "deep.pkl"))

        // A list filled after it was put in another would hide its growth from its holders (and
        // is how a list comes to hold itself): lists 0, 1, 2 memoised, then 1 into 0, 2 into 1.
        var late: [UInt8] = [0x80, 0x02]
        for i: UInt8 in 0..<3 { late += [0x5D, 0x71, i, 0x30] }
        late += [0x68, 0, 0x68, 1, 0x61, 0x30, 0x68, 1, 0x68, 2, 0x61, 0x2E]
        XCTAssertThrowsError(try Unpickler.load(late, path: "late.pkl")) { XCTAssertTrue("\($0)".contains("already inside another container"), "\($0)") }
        let itself: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E]
        XCTAssertThrowsError(try Unpickler.load(itself, path: "self.pkl")) { XCTAssertTrue("\($0)".contains("inside itself"), "\($0)") }
    }

    /// A value quoted in an error stays short whatever it holds: a long string, a wide tuple,
    /// control characters.
    func testQuotedValuesStayShort() throws {
        var p = Pickler()
        p.write(.tuple([.string(String(repeating: "x", count: 100_000) + "\n"), .tuple((0..<100).map { .int($0) })]))
        var bytes = p.finish()
        // REDUCE with a string where a callable belongs: the message quotes both.
        bytes.removeLast()
        bytes = [0x80, 0x02, 0x8C, 0x02, 0x61, 0x0A] + Array(bytes[2...]) + [0x52, 0x2E]
        XCTAssertThrowsError(try Unpickler.load(bytes, path: "wide.pkl")) { error in
            XCTAssertTrue("\(error)".contains("REDUCE of 'a\\n' on ('xxxx"), "\(error)")
            XCTAssertNil(Self.shortLine("\(error)"))
        }
    }
}
